/**
 * Plain reads of the JSON the scripts store (lua/includes/records.lua and
 * lines.lua): reservation records and lines are fields of one hash per
 * product. For admin listings, tests and benchmarks; decisions read them
 * only inside scripts.
 */
import type { RedisClient } from './topology.js';
import type { Keys } from './keys.js';

export type StoredRecord = Record<string, string>;

const parse = (json: string | null): StoredRecord | null => (json === null ? null : (JSON.parse(json) as StoredRecord));

export async function readRecord(
  redis: RedisClient,
  keys: Keys,
  productId: string,
  reservationId: string,
): Promise<StoredRecord | null> {
  return parse(await redis.hget(keys.records(productId), reservationId));
}

/** Records by id, in order (null where none). */
export async function readRecords(
  redis: RedisClient,
  keys: Keys,
  productId: string,
  ids: string[],
): Promise<(StoredRecord | null)[]> {
  if (ids.length === 0) return [];
  return (await redis.hmget(keys.records(productId), ...ids)).map(parse);
}

/** Every record of a product (HGETALL: for tests and small products only). */
export async function readAllRecords(redis: RedisClient, keys: Keys, productId: string): Promise<StoredRecord[]> {
  return Object.values(await redis.hgetall(keys.records(productId))).map((json) => JSON.parse(json) as StoredRecord);
}

export async function readLine(
  redis: RedisClient,
  keys: Keys,
  productId: string,
  customerId: string,
): Promise<StoredRecord | null> {
  return parse(await redis.hget(keys.lines(productId), customerId));
}
