/**
 * Turns script payloads (JSON objects whose numbers travel as strings, see
 * lua/includes/numbers.lua) into the domain types; times stay epoch ms.
 */
import type {
  LineSnapshot,
  LineStatus,
  PoolSnapshot,
  ProductStatus,
  RefusalCode,
  RefusalContext,
  Reservation,
  ReservationStatus,
} from './types.js';

type Raw = Record<string, unknown>;

const num = (v: unknown): number => Number(v ?? 0);
const optNum = (v: unknown): number | null => (v === undefined || v === null || v === '' ? null : Number(v));
const optStr = (v: unknown): string | null => (v === undefined || v === null || v === '' ? null : String(v));
/** cjson encodes an empty Lua table as {}; a list field is then empty. */
const list = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);

export function decodePool(productId: string, r: Raw): PoolSnapshot {
  const reserveAmount = num(r.reserveAmount);
  return {
    productId,
    capacity: num(r.capacity),
    held: num(r.held),
    committed: num(r.committed),
    settled: num(r.settled),
    available: num(r.available),
    availableToAllTiers: num(r.availableToAllTiers),
    minAmount: num(r.minAmount),
    maxAmount: optNum(r.maxAmount),
    holdTtlSeconds: num(r.holdTtlSeconds),
    opensAt: optNum(r.opensAt),
    closesAt: optNum(r.closesAt),
    status: String(r.status) as ProductStatus,
    pauseReason: optStr(r.pauseReason),
    resumeAt: optNum(r.resumeAt),
    priorityReserve:
      reserveAmount > 0 ? { tiers: String(r.reserveTiers).split(',').filter(Boolean), amount: reserveAmount } : null,
    createdAt: num(r.createdAt),
    updatedAt: num(r.updatedAt),
  };
}

export function decodeLine(productId: string, r: Raw): LineSnapshot {
  return {
    productId,
    customerId: String(r.customerId),
    limit: num(r.limit),
    status: String(r.status) as LineStatus,
    statusReason: optStr(r.statusReason),
    tier: optStr(r.tier),
    held: num(r.held),
    drawn: num(r.drawn),
    settling: num(r.settling),
    available: num(r.available),
    drawable: num(r.drawable),
    blockers: list<RefusalCode>(r.blockers),
    retryAt: optNum(r.retryAt),
    createdAt: num(r.createdAt),
    updatedAt: num(r.updatedAt),
  };
}

export function decodeReservation(r: Raw): Reservation {
  return {
    reservationId: String(r.reservationId),
    productId: String(r.productId),
    customerId: String(r.customerId),
    amount: num(r.amount),
    status: String(r.status) as ReservationStatus,
    createdAt: num(r.createdAt),
    expiresAt: num(r.expiresAt),
    committedAmount: num(r.committedAmount),
    committedAt: optNum(r.committedAt),
    endedAt: optNum(r.endedAt),
    metadata: r.metadata ? (JSON.parse(String(r.metadata)) as Record<string, unknown>) : null,
    attempts: num(r.attempts),
    lastError: optStr(r.lastError),
    settlementUpdatedAt: optNum(r.settlementUpdatedAt),
  };
}

export function decodeRefusalContext(productId: string, r: Raw): RefusalContext {
  const ctx: RefusalContext = {};
  if (r.drawable !== undefined) ctx.drawable = num(r.drawable);
  if (r.retryAt !== undefined) ctx.retryAt = num(r.retryAt);
  if (r.line && typeof r.line === 'object') ctx.line = decodeLine(productId, r.line as Raw);
  if (r.reservation && typeof r.reservation === 'object') ctx.reservation = decodeReservation(r.reservation as Raw);
  if (r.statusReason !== undefined) ctx.statusReason = optStr(r.statusReason);
  if (r.pauseReason !== undefined) ctx.pauseReason = optStr(r.pauseReason);
  if (r.minAmount !== undefined) ctx.minAmount = num(r.minAmount);
  if (r.maxAmount !== undefined) ctx.maxAmount = optNum(r.maxAmount);
  if (r.holdTtlSeconds !== undefined) ctx.holdTtlSeconds = num(r.holdTtlSeconds);
  if (r.repayable !== undefined) ctx.repayable = num(r.repayable);
  if (r.field !== undefined) ctx.field = String(r.field);
  if (r.reason !== undefined) ctx.reason = String(r.reason);
  return ctx;
}
