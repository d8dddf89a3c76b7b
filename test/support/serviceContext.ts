/**
 * The whole service (API + sweeper, as `npm start` wires it) running
 * in-process on a free port, against the run's private redis-server, in a
 * key prefix of its own; with the harness's HTTP client (./http.ts) on it.
 */
import { inject } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { startService, type RunningService } from '../../src/main.js';
import { uniqueId } from './engineContext.js';
import { apiClient, apiKeysEnv, type HttpAnswer, type HttpOptions } from './http.js';

export const ADMIN_KEY = 'test-admin-key-0001';
export const CLIENT_KEY = 'test-client-key-0001';

export interface ServiceContext {
  service: RunningService;
  baseUrl: string;
  keyPrefix: string;
  call<T = any>(method: string, path: string, options?: HttpOptions): Promise<HttpAnswer<T>>;
  admin<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<HttpAnswer<T>>;
  client<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<HttpAnswer<T>>;
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
    QUOTA_API_KEYS: apiKeysEnv({ admin: ADMIN_KEY, client: CLIENT_KEY }),
    LOG_LEVEL: 'silent',
    ...env,
  });
  const service = await startService(config, createLogger(config.logLevel));
  const baseUrl = `http://127.0.0.1:${service.port}`;

  const api = apiClient(baseUrl, { admin: ADMIN_KEY, client: CLIENT_KEY });

  return {
    service,
    baseUrl,
    keyPrefix,
    call: api.call,
    admin: api.admin,
    client: api.client,
    stop: () => service.stop(),
  };
}
