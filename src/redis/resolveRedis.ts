/**
 * Which Redis to use: REDIS_URL when given; else a Redis on localhost if one
 * answers; else a private redis-server of our own with AOF on, its data under
 * DATA_DIR, so a lone `npm start` works on a laptop.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';
import { startRedisServer, type RedisServerHandle } from './redisServer.js';

export const LOCAL_REDIS_URL = 'redis://127.0.0.1:6379';

export interface ResolvedRedis {
  url: string;
  privateServer?: RedisServerHandle;
}

export async function resolveRedis(
  redisUrl: string | undefined,
  dataDir: string,
  logger: Logger,
  localUrl = LOCAL_REDIS_URL,
): Promise<ResolvedRedis> {
  if (redisUrl) return { url: redisUrl };
  if (await answers(localUrl)) {
    logger.info({ url: localUrl }, 'REDIS_URL not set: using the Redis on localhost');
    return { url: localUrl };
  }
  const dir = resolve(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const privateServer = await startRedisServer({ appendOnly: true, dir });
  logger.warn(
    { url: privateServer.url, dir: join(dir) },
    'REDIS_URL not set and no Redis on localhost: started a private redis-server (AOF on, appendfsync always); set REDIS_URL in production',
  );
  return { url: privateServer.url, privateServer };
}

async function answers(url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}
