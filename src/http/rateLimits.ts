/**
 * Optional request-rate limits (off unless configured): per API key, and per
 * customer for the operations that name one (reserve, repayment). Fixed
 * one-second windows counted in Redis, so every instance shares the count.
 * Not a quota decision: the window follows this instance's clock.
 */
import type { RedisClient } from '../redis/topology.js';
import type { Keys } from '../redis/keys.js';
import { problem } from './problems.js';
import { HttpProblem } from './respond.js';

export interface RateLimitSettings {
  /** Requests per second per API key; 0: off. */
  perKeyPerSecond: number;
  /** Reserves and repayments per second per customer and product; 0: off. */
  perCustomerPerSecond: number;
}

export function createRateLimits(redis: RedisClient, keys: Keys, settings: RateLimitSettings) {
  async function count(key: string, limit: number, what: string): Promise<void> {
    const second = Math.floor(Date.now() / 1000);
    const windowKey = `${key}:${second}`;
    const replies = await redis.multi().incr(windowKey).expire(windowKey, 2).exec();
    const used = Number(replies?.[0]?.[1] ?? 0);
    if (used > limit) {
      throw new HttpProblem(
        problem('RATE_LIMITED', { message: `more than ${limit} requests per second for this ${what}` }),
        { retryAfterSeconds: 1 },
      );
    }
  }
  return {
    enabled: settings.perKeyPerSecond > 0 || settings.perCustomerPerSecond > 0,
    async checkKey(keyId: string): Promise<void> {
      if (settings.perKeyPerSecond > 0) await count(keys.rateLimitKey(keyId), settings.perKeyPerSecond, 'API key');
    },
    async checkCustomer(productId: string, customerId: string): Promise<void> {
      if (settings.perCustomerPerSecond > 0) {
        await count(keys.rateLimitCustomer(productId, customerId), settings.perCustomerPerSecond, 'customer');
      }
    },
  };
}

export type RateLimits = ReturnType<typeof createRateLimits>;
