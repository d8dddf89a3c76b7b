/**
 * The domain values as the service shows them to the world: HTTP answers and
 * webhook `data`. Inside the service every time is epoch ms (what the Lua
 * scripts answer, what the engine and workers compute with); the contract
 * writes times as ISO 8601 UTC strings, so this is the one place that turns
 * the one into the other. Each value keeps its fields in their order (a time
 * is replaced where it stands), so an answer's bytes are what they were.
 */
import type { ReservationEvent } from './engine/queries.js';
import type { LineSnapshot, PoolSnapshot, Reservation } from './engine/types.js';

export const isoTime = (ms: number): string => new Date(ms).toISOString();

/** T with the fields K (epoch ms, or null) as ISO 8601 strings (or null). */
export type WithIsoTimes<T, K extends keyof T> = Omit<T, K> & { [P in K]: null extends T[P] ? string | null : string };

function withIsoTimes<T extends Record<K, number | null>, K extends keyof T>(
  value: T,
  times: readonly K[],
): WithIsoTimes<T, K> {
  const out: Record<PropertyKey, unknown> = { ...value };
  for (const key of times) {
    const ms: number | null = value[key];
    out[key] = ms === null ? null : isoTime(ms);
  }
  return out as WithIsoTimes<T, K>;
}

const POOL_TIMES = ['opensAt', 'closesAt', 'resumeAt', 'createdAt', 'updatedAt'] as const;
const LINE_TIMES = ['retryAt', 'createdAt', 'updatedAt'] as const;
const RESERVATION_TIMES = ['createdAt', 'expiresAt', 'committedAt', 'endedAt', 'settlementUpdatedAt'] as const;

export type PoolJson = WithIsoTimes<PoolSnapshot, (typeof POOL_TIMES)[number]>;
export type LineJson = WithIsoTimes<LineSnapshot, (typeof LINE_TIMES)[number]>;
export type ReservationJson = WithIsoTimes<Reservation, (typeof RESERVATION_TIMES)[number]>;
export type ReservationEventJson = WithIsoTimes<ReservationEvent, 'at'>;

export const poolJson = (pool: PoolSnapshot): PoolJson => withIsoTimes(pool, POOL_TIMES);
export const lineJson = (line: LineSnapshot): LineJson => withIsoTimes(line, LINE_TIMES);
export const reservationJson = (reservation: Reservation): ReservationJson =>
  withIsoTimes(reservation, RESERVATION_TIMES);
export const reservationEventJson = (event: ReservationEvent): ReservationEventJson => withIsoTimes(event, ['at']);

/** A page of a listing with its items shown. */
export const pageJson = <T, J, P extends { items: T[] }>(
  page: P,
  itemJson: (item: T) => J,
): Omit<P, 'items'> & { items: J[] } => ({
  ...page,
  items: page.items.map(itemJson),
});
