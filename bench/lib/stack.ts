/**
 * The launch stack, started as production runs it: a private redis-server
 * (AOF on, appendfsync always: src/redis/redisServer.ts), the repo's test
 * ledger as its own process, one background-jobs process (ROLE=worker:
 * settlement, outbox relay, expiry sweeper, invariant audit) and the API as
 * node:cluster workers (ROLE=api) of `node dist/src/main.js`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createQuotaEngine, type QuotaEngine } from '../../src/engine/quotaEngine.js';
import { createKeys, type Keys } from '../../src/redis/keys.js';
import { freePort, startRedisServer, type RedisServerHandle } from '../../src/redis/redisServer.js';
import { waitFor } from '../../test/support/wait.js';
import { API_KEYS, apiClient, type ApiClient } from './api.js';
import { onCleanup } from './cleanup.js';
import { ledgerMain, serviceMain } from './paths.js';
import { startCluster, startNodeChild, type ChildHandle, type ClusterHandle } from './processes.js';

export const KEY_PREFIX = 'qa';

export interface RedisStack {
  server: RedisServerHandle;
  redis: Redis;
  keys: Keys;
  engine: QuotaEngine;
  version: string;
  appendfsync: string;
}

export async function startRedis(): Promise<RedisStack> {
  const server = await startRedisServer({ appendOnly: true });
  const stopServer = onCleanup('redis-server', () => server.stop());
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  onCleanup('redis client', () => {
    redis.disconnect();
  });
  // An AOF rewrite (a fork copying the whole data set) in the middle of a
  // measurement would take a core from whatever is being measured.
  await redis.config('SET', 'auto-aof-rewrite-percentage', '0');
  const info = await redis.info('server');
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  const appendfsync = ((await redis.config('GET', 'appendfsync')) as string[])[1] ?? 'unknown';
  const keys = createKeys(KEY_PREFIX);
  const engine = createQuotaEngine({ redis, keys });
  void stopServer;
  return { server, redis, keys, engine, version, appendfsync };
}

export interface LedgerProcess {
  url: string;
  secret: string;
  child: ChildHandle;
  stats(): Promise<Record<string, number>>;
  deliveries(): Promise<Record<string, { body: { productId: string; amount: number }; deliveries: number }>>;
}

export async function startLedger(
  workDir: string,
  failRate: number,
  rejectRate: number,
  seed: number,
): Promise<LedgerProcess> {
  const port = await freePort();
  const secret = randomBytes(24).toString('hex');
  const child = startNodeChild(
    'test ledger',
    ledgerMain,
    {
      LEDGER_PORT: String(port),
      LEDGER_HOST: '127.0.0.1',
      SETTLEMENT_SECRET: secret,
      LEDGER_FAIL_RATE: String(failRate),
      LEDGER_REJECT_RATE: String(rejectRate),
      LEDGER_SEED: String(seed),
      LOG_LEVEL: 'warn',
    },
    join(workDir, 'ledger.log'),
  );
  const url = `http://127.0.0.1:${port}`;
  const get = async (path: string) => {
    const res = await fetch(url + path);
    if (res.status !== 200) throw new Error(`ledger ${path}: ${res.status}`);
    return res.json();
  };
  await waitFor('the test ledger to start', () => get('/_stats').then(() => true), {
    timeoutMs: 15_000,
    explain: () => `see ${join(workDir, 'ledger.log')}`,
  });
  return { url, secret, child, stats: () => get('/_stats'), deliveries: () => get('/_deliveries') };
}

/** The service's environment, common to the API and the jobs process. */
export function serviceEnv(
  redisUrl: string,
  ledger: LedgerProcess,
  workDir: string,
  logLevel: string,
): Record<string, string> {
  return {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    REDIS_URL: redisUrl,
    QUOTA_API_KEYS: API_KEYS,
    KEY_PREFIX,
    LOG_LEVEL: logLevel,
    DATA_DIR: join(workDir, 'data'),
    SETTLEMENT_URL: ledger.url,
    SETTLEMENT_SECRET: ledger.secret,
    // Quicker retries than production's 1 s, so a failed attempt is retried within the drain period.
    SETTLEMENT_BACKOFF_MS: '100',
    SETTLEMENT_ATTEMPTS: '8',
    SETTLEMENT_TIMEOUT_MS: '2000',
    SETTLEMENT_CONCURRENCY: '32',
    RELAY_INTERVAL_MS: '1000',
    RELAY_GRACE_MS: '3000',
  };
}

/** The background-jobs process (ROLE=worker); resolves once it logged its start. */
export async function startJobsProcess(env: Record<string, string>, workDir: string): Promise<ChildHandle> {
  const logFile = join(workDir, 'jobs.log');
  const child = startNodeChild(
    'jobs process (ROLE=worker)',
    serviceMain,
    { ...env, ROLE: 'worker', PORT: '0' },
    logFile,
  );
  await waitFor(
    'the jobs process to start',
    () => {
      if (child.process.exitCode !== null)
        throw new Error(`the jobs process exited with ${child.process.exitCode} (see ${logFile})`);
      return existsSync(logFile) && readFileSync(logFile, 'utf8').includes('quota-allocator started');
    },
    { timeoutMs: 30_000, explain: () => `see ${logFile}` },
  );
  return child;
}

export interface ApiProcesses {
  cluster: ClusterHandle;
  api: ApiClient;
  baseUrl: string;
  /** One per port (several only with separatePorts). */
  baseUrls: string[];
}

/**
 * `workers` API processes (ROLE=api) under node:cluster, behind one port (or
 * one port each with `separatePorts`); resolves once they answer /readyz.
 */
export async function startApi(
  env: Record<string, string>,
  workers: number,
  workDir: string,
  name: string,
  options: { execArgv?: string[]; separatePorts?: boolean; exec?: string } = {},
): Promise<ApiProcesses> {
  const port = await freePort();
  const separatePorts = options.separatePorts
    ? await Promise.all(Array.from({ length: workers }, () => freePort()))
    : undefined;
  const cluster = await startCluster({
    name,
    exec: options.exec ?? serviceMain,
    workers,
    port,
    separatePorts,
    env: { ...env, ROLE: 'api' },
    execArgv: options.execArgv,
    logFile: join(workDir, `${name}.log`),
  });
  const baseUrls = [...new Set(cluster.ports)].map((p) => `http://127.0.0.1:${p}`);
  for (const url of baseUrls) await apiClient(url).waitReady();
  return { cluster, api: apiClient(baseUrls[0]!), baseUrl: baseUrls[0]!, baseUrls };
}
