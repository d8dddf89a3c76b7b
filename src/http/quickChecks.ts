/**
 * Quick checks for the hot routes' inputs (issue 11): each takes the one
 * common valid shape of a value (a reserve body of customerId, amount and
 * maybe ttlSeconds; a commit body of nothing or an amount; path ids;
 * Idempotency-Key) and answers exactly what zod's parse of the same schema
 * (src/http/schemas.ts) would, or undefined for anything else, which then
 * goes to zod as before (so every 400 is zod's, word for word). zod's parse
 * with its __proto__ walk was about 3% of a reserve's CPU; these are a few
 * typeof tests and one regular expression per id.
 *
 * test/unit/quick-checks.test.ts holds each against zod on valid and invalid values.
 */
import { ID_PATTERN, MAX_HOLD_TTL_SECONDS } from './schemas.js';

const isId = (v: unknown): v is string => typeof v === 'string' && ID_PATTERN.test(v);
/** z.int().min(min): a safe integer at least min. */
const isIntAtLeast = (v: unknown, min: number): v is number => Number.isSafeInteger(v) && (v as number) >= min;

/** A plain object as JSON.parse builds it (no prototype tricks, no __proto__ key: those go to zod's path). */
function plainObject(v: unknown): Record<string, unknown> | undefined {
  if (typeof v !== 'object' || v === null || Object.getPrototypeOf(v) !== Object.prototype) return undefined;
  return v as Record<string, unknown>;
}

export function quickProductParams(v: { productId?: unknown }): { productId: string } | undefined {
  return isId(v.productId) ? { productId: v.productId } : undefined;
}

export function quickReservationParams(v: {
  productId?: unknown;
  reservationId?: unknown;
}): { productId: string; reservationId: string } | undefined {
  return isId(v.productId) && isId(v.reservationId)
    ? { productId: v.productId, reservationId: v.reservationId }
    : undefined;
}

export function quickIdempotencyKey(v: unknown): string | undefined {
  return isId(v) ? v : undefined;
}

export type QuickReserveBody = { customerId: string; amount: number; ttlSeconds?: number };

/** reserveBody without metadata (a body with metadata takes zod's path). */
export function quickReserveBody(v: unknown): QuickReserveBody | undefined {
  const o = plainObject(v);
  if (!o) return undefined;
  let fields = 0;
  for (const key in o) {
    if (key !== 'customerId' && key !== 'amount' && key !== 'ttlSeconds') return undefined;
    fields++;
  }
  const { customerId, amount, ttlSeconds } = o;
  if (!isId(customerId) || !isIntAtLeast(amount, 1)) return undefined;
  if (fields === 2) return { customerId, amount };
  if (isIntAtLeast(ttlSeconds, 1) && ttlSeconds <= MAX_HOLD_TTL_SECONDS) return { customerId, amount, ttlSeconds };
  return undefined;
}

/** commitBody: {} or { amount }. */
export function quickCommitBody(v: unknown): { amount?: number } | undefined {
  const o = plainObject(v);
  if (!o) return undefined;
  let fields = 0;
  for (const key in o) {
    if (key !== 'amount') return undefined;
    fields++;
  }
  if (fields === 0) return {};
  return isIntAtLeast(o.amount, 1) ? { amount: o.amount } : undefined;
}

/** emptyBody: {}. */
export function quickEmptyBody(v: unknown): Record<string, never> | undefined {
  const o = plainObject(v);
  if (!o) return undefined;
  for (const _key in o) return undefined;
  return {};
}
