/**
 * HMAC-SHA256 signature of an outgoing body, as the contract puts it in
 * `X-Signature: sha256=<hex>`. The settlement worker and the webhook sender
 * sign with it; the test ledger and the tests' webhook receiver verify with
 * it. A module of its own (node:crypto only), so production code never
 * imports the test ledger, and the test ledger checks the very scheme
 * production signs with.
 *
 * Always sign and verify the exact bytes sent on the wire: re-serialising the
 * JSON on either side could reorder keys or change spacing and break the HMAC.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const PREFIX = 'sha256=';
const HEX_DIGEST = /^[0-9a-f]{64}$/i;

function digest(secret: string, rawBody: Buffer | string): Buffer {
  return createHmac('sha256', secret).update(rawBody).digest();
}

/** `sha256=<hex HMAC-SHA256 of rawBody with secret>` (a string body is signed as UTF-8). */
export function signBody(secret: string, rawBody: Buffer | string): string {
  return PREFIX + digest(secret, rawBody).toString('hex');
}

/** True when `header` is the signature of exactly these bytes; constant time in the digest. */
export function verifySignature(secret: string, rawBody: Buffer | string, header: string | null | undefined): boolean {
  if (typeof header !== 'string' || !header.startsWith(PREFIX)) return false;
  const hex = header.slice(PREFIX.length).trim();
  // Checked first so timingSafeEqual gets two 32-byte buffers (it throws on a length mismatch).
  if (!HEX_DIGEST.test(hex)) return false;
  return timingSafeEqual(Buffer.from(hex, 'hex'), digest(secret, rawBody));
}
