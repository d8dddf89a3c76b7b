import type { RedisClient } from './topology.js';

/**
 * The Redis server's clock in milliseconds: the one clock expiry decisions and
 * the relay's grace period use. On a Cluster any node answers; their clocks
 * are the hosts' (NTP-synchronised in any sane deployment).
 */
export async function redisNowMs(redis: RedisClient): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
