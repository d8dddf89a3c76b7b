/**
 * Which Redis to use when none is configured: a private redis-server of our
 * own with AOF on, its data under DATA_DIR, so a lone `npm start` works on a
 * laptop. Never a Redis the service was not told about (a Redis answering
 * on localhost:6379 may be someone else's: writing quota state into it
 * silently is what CONTRACT.md forbids).
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from '../logger.js';
import { startRedisServer, type RedisServerHandle } from './redisServer.js';

export interface ResolvedRedis {
  url: string;
  privateServer?: RedisServerHandle;
}

export async function resolveRedis(
  redisUrl: string | undefined,
  dataDir: string,
  logger: Logger,
): Promise<ResolvedRedis> {
  if (redisUrl) return { url: redisUrl };
  const dir = resolve(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const privateServer = await startRedisServer({ appendOnly: true, dir });
  logger.warn(
    { url: privateServer.url, dir },
    'no REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS: started a private redis-server (AOF ' +
      'on, appendfsync always, data in DATA_DIR); configure a Redis in production',
  );
  return { url: privateServer.url, privateServer };
}
