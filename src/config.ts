/**
 * Configuration: the environment, parsed once at start by one zod schema and
 * frozen. Nothing else reads process.env. A bad value stops the start with a
 * message naming the variable.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseRequestLogPolicy, type RequestLogSettings } from './http/requestLog.js';

export type Role = 'admin' | 'client';
export interface ApiKey {
  role: Role;
  /** Who holds the key, for logs (`role:name:key`; unnamed keys are `<role>-<n>`). Never the key itself. */
  name: string;
  key: string;
}

const DEV_API_KEYS = 'admin:dev-admin-key,client:dev-client-key';
const ID = /^[A-Za-z0-9._-]{1,64}$/;

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * `role:key` or `role:name:key` entries, separated by commas or newlines (a
 * keys file may hold one per line, with `#` comments). A key contains no `:`
 * or `,` (the contract), so a fourth part is an error, not part of the key.
 */
export interface HostPort {
  host: string;
  port: number;
}

/** Comma-separated host:port list (REDIS_CLUSTER_NODES, REDIS_SENTINELS). */
const hostPorts = z.string().transform((value, ctx) => {
  const list: HostPort[] = [];
  for (const entry of value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(entry);
    const port = match ? Number(match[2]) : 0;
    if (!match || port < 1 || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `"${entry}" is not host:port` });
      return z.NEVER;
    }
    list.push({ host: match[1]!.replace(/^\[|\]$/g, ''), port });
  }
  if (list.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'no host:port given' });
    return z.NEVER;
  }
  return list;
});

/**
 * Which Redis the service uses (CONTRACT.md "Redis topologies and durability"):
 * exactly one of REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS, or none (a
 * private redis-server of its own). REDIS_PASSWORD applies to each.
 */
export type RedisTopologyConfig =
  | { kind: 'private' }
  | { kind: 'single'; url: string; password: string | undefined }
  | { kind: 'cluster'; nodes: HostPort[]; password: string | undefined }
  | { kind: 'sentinel'; sentinels: HostPort[]; name: string; password: string | undefined };

const apiKeys = z.string().transform((value, ctx) => {
  const keys: ApiKey[] = [];
  const entries = value
    .split(/[,\n]/)
    .map((s) => s.replace(/#.*$/, '').trim())
    .filter(Boolean);
  const counts: Record<Role, number> = { admin: 0, client: 0 };
  for (const entry of entries) {
    const parts = entry.split(':');
    const role = parts[0];
    const key = parts.length === 3 ? parts[2]! : parts.length === 2 ? parts[1]! : '';
    const name = parts.length === 3 ? parts[1]! : undefined;
    // Any non-empty key: the contract's own example (admin:s3cr3t) is short. Choosing long random keys is the
    // operator's part.
    if (
      (role !== 'admin' && role !== 'client') ||
      key.length === 0 ||
      /\s/.test(key) ||
      (name !== undefined && !KEY_NAME.test(name))
    ) {
      ctx.addIssue({
        code: 'custom',
        message:
          `entry "${role}:…" must be <role>:<key> or <role>:<name>:<key> (role admin or client, name ` +
          `1-64 of [A-Za-z0-9._-], a non-empty key without spaces, colons or commas)`,
      });
      return z.NEVER;
    }
    counts[role]++;
    keys.push({ role, name: name ?? `${role}-${counts[role]}`, key });
  }
  const names = keys.map((k) => k.name);
  const repeated = names.find((n, i) => names.indexOf(n) !== i);
  if (repeated) {
    ctx.addIssue({
      code: 'custom',
      message: `the key name "${repeated}" is used twice: names tell keys apart in the logs`,
    });
    return z.NEVER;
  }
  if (keys.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'no keys given' });
    return z.NEVER;
  }
  return keys;
});

/**
 * Parses API keys (the QUOTA_API_KEYS format) or throws ConfigError naming
 * `variable`: used at start and when a keys file is re-read.
 */
export function parseApiKeys(text: string, variable = 'QUOTA_API_KEYS'): ApiKey[] {
  const parsed = apiKeys.safeParse(text);
  if (!parsed.success)
    throw new ConfigError(
      `invalid configuration:\n${parsed.error.issues.map((i) => `  ${variable}: ${i.message}`).join('\n')}`,
    );
  return parsed.data;
}

/** Secrets that may also come from a file (`<NAME>_FILE`, e.g. a Docker or Kubernetes secret). */
export const FILE_VARIABLES = ['QUOTA_API_KEYS', 'SETTLEMENT_SECRET', 'WEBHOOK_SECRET'] as const;

/**
 * Replaces each `<NAME>_FILE` by `<NAME>` holding the file's content (one
 * trailing newline dropped). Both set, or an unreadable file: ConfigError.
 */
export function readFileVariables(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const out = { ...env };
  for (const name of FILE_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (!file) continue;
    if (env[name])
      throw new ConfigError(`invalid configuration:\n  ${name}_FILE: ${name} is set too; set only one of them`);
    try {
      out[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError(`invalid configuration:\n  ${name}_FILE: cannot read ${file}: ${(err as Error).message}`);
    }
    delete out[`${name}_FILE`];
  }
  return out;
}

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).optional(),
  PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  BODY_TIMEOUT_MS: int(100, 600_000).default(10_000),
  ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  REDIS_CLUSTER_NODES: hostPorts.optional(),
  REDIS_SENTINELS: hostPorts.optional(),
  REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be 1-128 of [A-Za-z0-9._-]')
    .optional(),
  REDIS_PASSWORD: z.string().min(1).optional(),
  REDIS_WAIT_REPLICAS: int(0, 16).default(0),
  REDIS_WAIT_TIMEOUT_MS: int(1, 1_500).default(500),
  QUOTA_API_KEYS: apiKeys.optional(),
  SETTLEMENT_URL: z.url({ protocol: /^https?$/ }).optional(),
  SETTLEMENT_SECRET: z.string().min(16).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_REQUESTS: z
    .string()
    .default('errors')
    .transform(
      (v, ctx) =>
        parseRequestLogPolicy(v) ??
        (ctx.addIssue({ code: 'custom', message: "must be 'all', 'errors' or a fraction between 0 and 1 (e.g. 0.01)" }),
        z.NEVER),
    ),
  LOG_SLOW_REQUEST_MS: int(1, 60_000).default(500),
  KEY_PREFIX: z.string().regex(ID, 'must be 1-64 of [A-Za-z0-9._-]').default('qa'),
  DATA_DIR: z.string().min(1).default('.data'),
  RECLAIM_BATCH: int(1, 10_000).default(100),
  SWEEP_INTERVAL_MS: int(100, 60_000).default(1_000),
  AUDIT_INTERVAL_MS: int(100, 3_600_000).default(30_000),
  RATE_LIMIT_KEY_PER_SECOND: int(0, 1_000_000).default(0),
  RATE_LIMIT_CUSTOMER_PER_SECOND: int(0, 1_000_000).default(0),
  SHED_MAX_IN_FLIGHT: int(0, 1_000_000).default(0),
  BODY_LIMIT_BYTES: int(1_024, 10 * 1024 * 1024).default(16 * 1024),
  BULK_LIMIT_BYTES: int(64 * 1024 * 1024, 4 * 1024 * 1024 * 1024).default(512 * 1024 * 1024),
  SHUTDOWN_TIMEOUT_MS: int(100, 120_000).default(10_000),
  SETTLEMENT_TIMEOUT_MS: int(100, 120_000).default(5_000),
  SETTLEMENT_ATTEMPTS: int(1, 50).default(8),
  SETTLEMENT_BACKOFF_MS: int(10, 600_000).default(1_000),
  SETTLEMENT_CONCURRENCY: int(1, 1_000).default(16),
  SETTLEMENT_LOCK_MS: int(1_000, 600_000).default(30_000),
  RELAY_INTERVAL_MS: int(100, 600_000).default(5_000),
  RELAY_GRACE_MS: int(0, 3_600_000).default(10_000),
  WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
  WEBHOOK_SECRET: z.string().min(16).optional(),
  WEBHOOK_TIMEOUT_MS: int(100, 120_000).default(5_000),
  WEBHOOK_BACKOFF_MS: int(10, 600_000).default(1_000),
  WEBHOOK_CONCURRENCY: int(1, 1_000).default(8),
  WEBHOOK_RELAY_INTERVAL_MS: int(100, 600_000).default(1_000),
  WEBHOOK_LOCK_MS: int(1_000, 600_000).default(30_000),
  // Stored refusals (409, 422 but IDEMPOTENCY_KEY_REUSED): the contract keeps them at least 1 hour; 2xx stay 24 h.
  IDEMPOTENCY_REFUSAL_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(3_600, 'must be at least 3600 (the contract keeps stored refusals at least 1 hour)')
    .max(86_400, 'must be at most 86400 (stored successes are kept 24 hours)')
    .default(3_600),
});

export interface Config {
  nodeEnv: 'development' | 'production' | 'test';
  port: number;
  /** Default: 127.0.0.1 with the development keys (a laptop's API is not the LAN's), else every interface. */
  host: string;
  /** The API's public base URL (the OpenAPI document's `servers`); default: the address a request arrived at. */
  publicUrl: string | undefined;
  /** QUOTA_API_KEYS_FILE, when the keys come from a file: re-read on SIGHUP and when it changes. */
  apiKeysFile: string | undefined;
  /** How long a request body may take to arrive (408 REQUEST_TIMEOUT after; bulk imports: without a byte). */
  bodyTimeoutMs: number;
  role: 'all' | 'api' | 'worker';
  /** REDIS_URL as given (kept for callers that only know one node); `redis` is the whole choice. */
  redisUrl: string | undefined;
  redis: RedisTopologyConfig;
  /** REDIS_WAIT_REPLICAS / REDIS_WAIT_TIMEOUT_MS: replicas that must confirm each write before it is answered. */
  redisWait: { replicas: number; timeoutMs: number };
  apiKeys: ApiKey[];
  usingDevelopmentKeys: boolean;
  settlementUrl: string | undefined;
  settlementSecret: string | undefined;
  logLevel: string;
  /** LOG_REQUESTS / LOG_SLOW_REQUEST_MS (src/http/requestLog.ts). */
  requestLog: RequestLogSettings;
  keyPrefix: string;
  dataDir: string;
  reclaimBatch: number;
  sweepIntervalMs: number;
  /** Invariant audit period (src/audit/invariantAudit.ts). */
  auditIntervalMs: number;
  /** Requests per second per API key / reserves and repayments per second per customer; 0: off. */
  rateLimits: { perKeyPerSecond: number; perCustomerPerSecond: number };
  /** API requests in flight per instance above which it answers 503; 0: off. */
  shedMaxInFlight: number;
  bodyLimitBytes: number;
  bulkLimitBytes: number;
  shutdownTimeoutMs: number;
  /** How long a stored refusal answer is kept (seconds; 2xx answers: 24 h). */
  idempotencyRefusalTtlSeconds: number;
  settlement: {
    timeoutMs: number;
    attempts: number;
    backoffMs: number;
    concurrency: number;
    lockMs: number;
    relayIntervalMs: number;
    relayGraceMs: number;
  };
  /** WEBHOOK_URL set: events are recorded and delivered (src/webhooks/); undefined: off, nothing recorded. */
  webhooks:
    | {
        url: string;
        secret: string;
        timeoutMs: number;
        backoffMs: number;
        /** Deliveries in flight per product drain (different reservations or lines), and drains per worker. */
        concurrency: number;
        relayIntervalMs: number;
        /** A drain job's lock; a killed worker's drain is picked up again after it. */
        lockMs: number;
      }
    | undefined;
}

export class ConfigError extends Error {}

export function parseConfig(env: Record<string, string | undefined>): Readonly<Config> {
  const blankAsUnset = readFileVariables(
    Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== '')),
  );
  const parsed = schema.safeParse(blankAsUnset);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.NODE_ENV === 'production' && !e.QUOTA_API_KEYS) {
    throw new ConfigError('invalid configuration:\n  QUOTA_API_KEYS: required when NODE_ENV=production');
  }
  if (e.SETTLEMENT_URL && !e.SETTLEMENT_SECRET) {
    throw new ConfigError('invalid configuration:\n  SETTLEMENT_SECRET: required when SETTLEMENT_URL is set');
  }
  if (e.WEBHOOK_URL && !e.WEBHOOK_SECRET) {
    throw new ConfigError('invalid configuration:\n  WEBHOOK_SECRET: required when WEBHOOK_URL is set');
  }
  const redis = redisTopology(e);
  return Object.freeze({
    nodeEnv: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST ?? (e.QUOTA_API_KEYS ? '0.0.0.0' : '127.0.0.1'),
    publicUrl: e.PUBLIC_URL,
    apiKeysFile: env.QUOTA_API_KEYS ? undefined : env.QUOTA_API_KEYS_FILE || undefined,
    bodyTimeoutMs: e.BODY_TIMEOUT_MS,
    role: e.ROLE,
    redisUrl: e.REDIS_URL,
    redis,
    redisWait: Object.freeze({ replicas: e.REDIS_WAIT_REPLICAS, timeoutMs: e.REDIS_WAIT_TIMEOUT_MS }),
    apiKeys: e.QUOTA_API_KEYS ?? parseApiKeys(DEV_API_KEYS),
    usingDevelopmentKeys: !e.QUOTA_API_KEYS,
    settlementUrl: e.SETTLEMENT_URL,
    settlementSecret: e.SETTLEMENT_SECRET,
    logLevel: e.LOG_LEVEL,
    requestLog: Object.freeze({ policy: e.LOG_REQUESTS, slowMs: e.LOG_SLOW_REQUEST_MS }),
    keyPrefix: e.KEY_PREFIX,
    dataDir: e.DATA_DIR,
    reclaimBatch: e.RECLAIM_BATCH,
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
    auditIntervalMs: e.AUDIT_INTERVAL_MS,
    rateLimits: Object.freeze({
      perKeyPerSecond: e.RATE_LIMIT_KEY_PER_SECOND,
      perCustomerPerSecond: e.RATE_LIMIT_CUSTOMER_PER_SECOND,
    }),
    shedMaxInFlight: e.SHED_MAX_IN_FLIGHT,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    bulkLimitBytes: e.BULK_LIMIT_BYTES,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    idempotencyRefusalTtlSeconds: e.IDEMPOTENCY_REFUSAL_TTL_SECONDS,
    settlement: Object.freeze({
      timeoutMs: e.SETTLEMENT_TIMEOUT_MS,
      attempts: e.SETTLEMENT_ATTEMPTS,
      backoffMs: e.SETTLEMENT_BACKOFF_MS,
      concurrency: e.SETTLEMENT_CONCURRENCY,
      lockMs: e.SETTLEMENT_LOCK_MS,
      relayIntervalMs: e.RELAY_INTERVAL_MS,
      relayGraceMs: e.RELAY_GRACE_MS,
    }),
    webhooks:
      e.WEBHOOK_URL && e.WEBHOOK_SECRET
        ? Object.freeze({
            url: e.WEBHOOK_URL,
            secret: e.WEBHOOK_SECRET,
            timeoutMs: e.WEBHOOK_TIMEOUT_MS,
            backoffMs: e.WEBHOOK_BACKOFF_MS,
            concurrency: e.WEBHOOK_CONCURRENCY,
            relayIntervalMs: e.WEBHOOK_RELAY_INTERVAL_MS,
            lockMs: e.WEBHOOK_LOCK_MS,
          })
        : undefined,
  });
}

function redisTopology(e: z.output<typeof schema>): RedisTopologyConfig {
  const given = (['REDIS_URL', 'REDIS_CLUSTER_NODES', 'REDIS_SENTINELS'] as const).filter(
    (name) => e[name] !== undefined,
  );
  if (given.length > 1) {
    throw new ConfigError(`invalid configuration:\n  ${given.join(', ')}: give only one of them (each picks a Redis)`);
  }
  if (e.REDIS_SENTINEL_NAME !== undefined && e.REDIS_SENTINELS === undefined) {
    throw new ConfigError('invalid configuration:\n  REDIS_SENTINEL_NAME: only with REDIS_SENTINELS');
  }
  const password = e.REDIS_PASSWORD;
  if (e.REDIS_URL) return Object.freeze({ kind: 'single', url: e.REDIS_URL, password });
  if (e.REDIS_CLUSTER_NODES) return Object.freeze({ kind: 'cluster', nodes: e.REDIS_CLUSTER_NODES, password });
  if (e.REDIS_SENTINELS) {
    if (!e.REDIS_SENTINEL_NAME) {
      throw new ConfigError(
        'invalid configuration:\n  REDIS_SENTINEL_NAME: required with ' +
          "REDIS_SENTINELS (the master's name the sentinels watch)",
      );
    }
    return Object.freeze({ kind: 'sentinel', sentinels: e.REDIS_SENTINELS, name: e.REDIS_SENTINEL_NAME, password });
  }
  if (password !== undefined) {
    throw new ConfigError(
      'invalid configuration:\n  REDIS_PASSWORD: given without REDIS_URL, ' +
        'REDIS_CLUSTER_NODES or REDIS_SENTINELS (the private redis-server has no password)',
    );
  }
  return Object.freeze({ kind: 'private' });
}
