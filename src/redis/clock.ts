import type { Redis } from 'ioredis';

/** The Redis server's clock in milliseconds: the one clock expiry decisions and the relay's grace period use. */
export async function redisNowMs(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
