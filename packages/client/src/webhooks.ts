/**
 * The receiving side of the service's webhooks (README "Webhooks"): each
 * delivery carries `X-Signature: sha256=<hex HMAC-SHA256 of the exact body
 * bytes with WEBHOOK_SECRET>`. Verify the bytes that arrived, before any JSON
 * parsing: re-serialising could reorder keys or change spacing.
 *
 * Its own entry point (`@quota-allocator/client/webhooks`), because it needs
 * node:crypto and the main entry must stay loadable in a browser (the console
 * bundles it).
 *
 * The scheme has no timestamp, so there is no tolerance window to check: a
 * replayed delivery verifies, and is harmless because a receiver dedupes by
 * the event's `id` (delivery is at least once anyway).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header carrying the signature (lower case, as Node's `req.headers` spells it). */
export const WEBHOOK_SIGNATURE_HEADER = 'x-signature';

const SIGNATURE = /^sha256=([0-9a-f]{64})$/i;

/**
 * True when `signature` (the `X-Signature` header) is the service's signature
 * of exactly these bytes with `secret`; false for anything else, a missing or
 * malformed header included. Constant time in the digest. A string body is
 * taken as UTF-8; pass the raw bytes when you have them
 * (`express.raw({ type: 'application/json' })`).
 */
export function verifyWebhookSignature(
  rawBody: Uint8Array | string,
  signature: string | null | undefined,
  secret: string,
): boolean {
  // An empty key would make every signature forgeable: a configuration error, not a failed check.
  if (typeof secret !== 'string' || secret.length === 0) throw new TypeError('verifyWebhookSignature: empty secret');
  const given = typeof signature === 'string' ? SIGNATURE.exec(signature.trim()) : null;
  if (!given) return false;
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  return timingSafeEqual(Buffer.from(given[1]!, 'hex'), expected);
}
