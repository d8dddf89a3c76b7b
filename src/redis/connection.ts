/**
 * Redis connections. The API's connection fails fast: no offline queue and no
 * re-sending of unanswered commands after a reconnect (a write must never be
 * replayed behind the caller's back), and a command timeout so a request is
 * answered 503 within 2 seconds when Redis hangs. BullMQ gets the settings
 * its production guide asks for.
 */
import { Redis, type RedisOptions } from 'ioredis';

export const COMMAND_TIMEOUT_MS = 1_500;

const reconnectBackoff = (attempt: number) => Math.min(50 * 2 ** attempt, 1_000);

export function apiRedisOptions(): RedisOptions {
  return {
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: reconnectBackoff,
    lazyConnect: true,
  };
}

/** Connects the API's client; resolves once Redis answers. */
export async function connectApiRedis(url: string): Promise<Redis> {
  const redis = new Redis(url, apiRedisOptions());
  redis.on('error', () => {}); // connection state is reported by readiness and logs, not by crashing
  await redis.connect();
  return redis;
}

/** For BullMQ Workers: block and retry forever rather than drop a job on a blip. */
export function workerConnectionOptions(url: string): RedisOptions {
  return {
    ...redisUrlOptions(url),
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    retryStrategy: reconnectBackoff,
  };
}

/** For BullMQ Queues (producers): fail fast, as the API does, and never wait on a hung Redis. */
export function queueConnectionOptions(url: string): RedisOptions {
  return {
    ...redisUrlOptions(url),
    enableOfflineQueue: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    retryStrategy: reconnectBackoff,
  };
}

function redisUrlOptions(url: string): RedisOptions {
  const u = new URL(url);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db,
    tls: u.protocol === 'rediss:' ? {} : undefined,
  };
}

/** BullMQ connections for one node given by URL (tests and tools; the service gets them from src/redis/topology.ts). */
export function bullmqConnectionsForUrl(url: string) {
  return { queue: () => queueConnectionOptions(url), worker: () => workerConnectionOptions(url) };
}
