/**
 * Plants inconsistencies behind the scripts' back (audit tests): edits the
 * JSON of a line or a reservation record in its product hash.
 */
import type { Redis } from 'ioredis';
import type { Keys } from '../../src/redis/keys.js';

async function edit(redis: Redis, hash: string, field: string, change: (v: Record<string, string>) => void) {
  const json = await redis.hget(hash, field);
  if (json === null) throw new Error(`no field ${field} in ${hash}`);
  const value = JSON.parse(json) as Record<string, string>;
  change(value);
  await redis.hset(hash, field, JSON.stringify(value));
}

/** Adds `delta` to a line counter, like HINCRBY on the old per-line hash. */
export const addToLineField = (redis: Redis, keys: Keys, p: string, customerId: string, field: string, delta: number) =>
  edit(redis, keys.lines(p), customerId, (l) => {
    l[field] = String(Number(l[field] ?? 0) + delta);
  });

export const setRecordField = (
  redis: Redis,
  keys: Keys,
  p: string,
  reservationId: string,
  field: string,
  value: string,
) =>
  edit(redis, keys.records(p), reservationId, (r) => {
    r[field] = value;
  });

export const deleteLine = (redis: Redis, keys: Keys, p: string, customerId: string) =>
  redis.hdel(keys.lines(p), customerId);

/** Adds `delta` to a pool counter (held, committed, settled) behind the scripts' back. */
export const addToPoolField = (
  redis: Redis,
  keys: Keys,
  p: string,
  field: 'held' | 'committed' | 'settled',
  delta: number,
) => redis.hincrby(keys.pool(p), field, delta);
