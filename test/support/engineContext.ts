/**
 * An engine on the run's private redis-server, in a key space of its own, or
 * in a running service's (pass its keyPrefix) to act behind its back.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { inject } from 'vitest';
import { createQuotaEngine, type QuotaEngine } from '../../src/engine/quotaEngine.js';
import { connectApiRedis } from '../../src/redis/connection.js';
import { createKeys, type Keys } from '../../src/redis/keys.js';

export interface EngineContext {
  redis: Redis;
  keys: Keys;
  engine: QuotaEngine;
  close(): Promise<void>;
}

export const uniqueId = (label = 'id') => `${label}-${randomBytes(5).toString('hex')}`;

export async function createEngineContext(keyPrefix = uniqueId('t')): Promise<EngineContext> {
  const redis = await connectApiRedis(inject('redisUrl'));
  const keys = createKeys(keyPrefix);
  const engine = createQuotaEngine({ redis, keys });
  return {
    redis,
    keys,
    engine,
    async close() {
      redis.disconnect();
    },
  };
}
