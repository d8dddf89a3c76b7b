/**
 * The whole service (API + sweeper, as `npm start` wires it) running
 * in-process on a free port, against the run's private redis-server, in a
 * key prefix of its own; plus a small fetch-based client for real HTTP calls.
 */
import { inject } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startService, type RunningService } from '../../src/main.js';
import { uniqueId } from './engineContext.js';

export const ADMIN_KEY = 'test-admin-key-0001';
export const CLIENT_KEY = 'test-client-key-0001';

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface CallOptions {
  body?: unknown;
  /** Raw body string (sent as is, with Content-Type application/json unless headers say otherwise). */
  rawBody?: string;
  key?: string | null;
  headers?: Record<string, string>;
}

export interface ServiceContext {
  service: RunningService;
  baseUrl: string;
  keyPrefix: string;
  call<T = any>(method: string, path: string, options?: CallOptions): Promise<ApiResponse<T>>;
  admin<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>>;
  client<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<ApiResponse<T>>;
  stop(): Promise<void>;
}

/** `env` overrides the defaults; a KEY_PREFIX in it lets several services share one key space. */
export async function startServiceContext(env: Record<string, string> = {}): Promise<ServiceContext> {
  const keyPrefix = env.KEY_PREFIX ?? uniqueId('svc');
  const config = parseConfig({
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    // The run's private Redis, unless the test names another topology.
    ...(env.REDIS_CLUSTER_NODES || env.REDIS_SENTINELS ? {} : { REDIS_URL: inject('redisUrl') }),
    KEY_PREFIX: keyPrefix,
    QUOTA_API_KEYS: `admin:${ADMIN_KEY},client:${CLIENT_KEY}`,
    LOG_LEVEL: 'silent',
    ...env,
  });
  const service = await startService(config, createLogger(config.logLevel));
  const baseUrl = `http://127.0.0.1:${service.port}`;

  async function call<T>(method: string, path: string, options: CallOptions = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key !== null) headers.authorization ??= `Bearer ${options.key ?? CLIENT_KEY}`;
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(baseUrl + path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (e.g. /metrics): keep the text
    }
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  return {
    service,
    baseUrl,
    keyPrefix,
    call,
    admin: (method, path, body, headers) => call(method, path, { body, headers, key: ADMIN_KEY }),
    client: (method, path, body, headers) => call(method, path, { body, headers, key: CLIENT_KEY }),
    stop: () => service.stop(),
  };
}
