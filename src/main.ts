/**
 * Composition root: reads the config, builds each part with createX(deps),
 * starts them, and on SIGTERM/SIGINT stops them in reverse order (readiness
 * fails first, in-flight requests finish) within a hard timeout.
 */
import { pathToFileURL } from 'node:url';
import { createInvariantAudit } from './audit/invariantAudit.js';
import { ConfigError, parseConfig, type Config } from './config.js';
import { createQueries } from './engine/queries.js';
import { createQuotaEngine } from './engine/quotaEngine.js';
import { createApp, createOpsApp } from './http/app.js';
import { createApiKeyStore } from './http/apiKeyStore.js';
import { createRateLimits } from './http/rateLimits.js';
import { listen } from './http/server.js';
import { createReadiness } from './http/readiness.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import { checkDurability } from './redis/durabilityCheck.js';
import { createDurableWrites } from './redis/durableWrite.js';
import { createKeys } from './redis/keys.js';
import { mastersOf, openRedisTopology, type RedisTopology } from './redis/topology.js';
import { createHttpLedgerClient, createInternalLedgerClient } from './settlement/ledgerClient.js';
import { createOutboxRelay } from './settlement/outboxRelay.js';
import { createSettlementFeed } from './settlement/settlementFeed.js';
import { createSettlementQueue } from './settlement/settlementQueue.js';
import { createSettlementWorker } from './settlement/settlementWorker.js';
import { registerStateGauges } from './stateGauges.js';
import { createExpirySweeper } from './sweeper/expirySweeper.js';
import { createShardRebalancer } from './sweeper/shardRebalancer.js';
import { createWebhookMetrics } from './webhooks/webhookMetrics.js';
import { createWebhooks } from './webhooks/webhooks.js';

export interface RunningService {
  /** Where it listens (the worker role: health and metrics only). */
  port: number | undefined;
  /** Which Redis it uses (REDIS_URL, REDIS_CLUSTER_NODES, REDIS_SENTINELS or its private redis-server). */
  redis: Pick<RedisTopology, 'kind' | 'description'>;
  /** Re-reads QUOTA_API_KEYS_FILE (SIGHUP); true when new keys are in force. */
  reloadApiKeys(reason?: string): boolean;
  stop(): Promise<void>;
}

export async function startService(config: Readonly<Config>, logger: Logger): Promise<RunningService> {
  if (config.usingDevelopmentKeys) {
    logger.warn(
      `QUOTA_API_KEYS not set: using development keys admin:dev-admin-key ` +
        `and client:dev-client-key (listening on ${config.host})`,
    );
  }
  const topology = await openRedisTopology(config.redis, config.dataDir, logger);
  const { client: redis, bullmq } = topology;
  logger.info(
    { redis: topology.kind, waitReplicas: config.redisWait.replicas },
    `redis: using ${topology.description}`,
  );
  // Each master keeps its own config: on a Cluster every one is checked.
  for (const node of mastersOf(redis))
    await checkDurability(node, logger.child({ redisNode: `${node.options.host}:${node.options.port}` }));
  const keys = createKeys(config.keyPrefix);
  const metrics = createMetrics();
  // Confirmed writes get connections of their own: a WAIT holds its connection until the replicas answer.
  const waitPool = config.redisWait.replicas > 0 ? [redis, ...(await topology.moreClients(WAIT_CONNECTIONS - 1))] : [];
  const durableWrites = createDurableWrites({
    ...config.redisWait,
    logger,
    registry: metrics.registry,
    client: redis,
    pool: waitPool,
  });
  const engine = createQuotaEngine({
    redis,
    keys,
    durableWrites,
    reclaimLimit: config.reclaimBatch,
    idempotencyRefusalTtlSeconds: config.idempotencyRefusalTtlSeconds,
    onScript: metrics.script,
    onHoldsExpired: metrics.holdsExpired,
    onDecision: metrics.decision,
    shardEvents: metrics.shardEvents,
    webhooks: config.webhooks !== undefined,
  });
  await engine.loadScripts();
  // Gauges read from Redis at scrape time come from the API roles only, so
  // scraping both the API and the worker does not report each pool twice.
  if (config.role !== 'worker') registerStateGauges(metrics.registry, { redis, keys, engine });
  logger.info({ library: engine.library.name }, 'functions library loaded');
  const readiness = createReadiness(redis, engine);

  const s = config.settlement;
  const settlementQueue = createSettlementQueue({ bullmq, keys, logger, attempts: s.attempts, backoffMs: s.backoffMs });
  metrics.addExtra(() => settlementQueue.queue.exportPrometheusMetrics());

  // Background jobs (ROLE=worker or all): settlement, the outbox relay, the expiry sweeper, the invariant audit.
  const runsJobs = config.role !== 'api';
  const ledger =
    config.settlementUrl && config.settlementSecret
      ? createHttpLedgerClient({ url: config.settlementUrl, secret: config.settlementSecret, timeoutMs: s.timeoutMs })
      : createInternalLedgerClient(engine);
  if (runsJobs && !config.settlementUrl)
    logger.warn("SETTLEMENT_URL not set: committed draws settle into the service's own ledger records");
  const settlementWorker = runsJobs
    ? createSettlementWorker({
        bullmq,
        queue: settlementQueue.queue,
        keys,
        engine,
        ledger,
        logger,
        metrics,
        concurrency: s.concurrency,
        lockDurationMs: s.lockMs,
      })
    : undefined;
  // Committed reservations to the settlement queue, from the outbox (the API's commit does no queue work).
  const feed = runsJobs
    ? createSettlementFeed({
        redis,
        keys,
        addBulk: settlementQueue.addBulk,
        logger,
        count: metrics.settlementFeed,
        intervalMs: FEED_INTERVAL_MS,
      })
    : undefined;
  const relay = runsJobs
    ? createOutboxRelay({
        bullmq,
        redis,
        keys,
        settlementQueue,
        logger,
        metrics,
        intervalMs: s.relayIntervalMs,
        graceMs: s.relayGraceMs,
      })
    : undefined;
  const sweeper = runsJobs
    ? createExpirySweeper({ bullmq, redis, keys, engine, logger, intervalMs: config.sweepIntervalMs, batchSize: 1000 })
    : undefined;
  const audit = runsJobs
    ? createInvariantAudit({ bullmq, redis, keys, engine, logger, metrics, intervalMs: config.auditIntervalMs })
    : undefined;
  // Sharded products: evens out sub-pools' free quota, at the sweeper's pace (src/sweeper/shardRebalancer.ts).
  const rebalancer = runsJobs
    ? createShardRebalancer({ bullmq, redis, keys, engine, logger, intervalMs: config.sweepIntervalMs })
    : undefined;
  const webhooks = config.webhooks
    ? createWebhooks({
        config: config.webhooks,
        bullmq,
        redis,
        keys,
        logger,
        registry: metrics.registry,
        runsJobs,
        readsBacklog: config.role !== 'worker',
        shardedProduct: async (productId) =>
          (await engine.shards.tagsOf(productId)).length > 1 ? engine.readPool(productId) : null,
      })
    : undefined;
  if (!webhooks) createWebhookMetrics(metrics.registry); // its series exist (at zero) with webhooks off too
  // Same metric as the settlement queue's export: its HELP/TYPE lines once per scrape.
  if (webhooks)
    metrics.addExtra(async () => (await webhooks.queue.exportPrometheusMetrics()).replace(/^# (HELP|TYPE) .*\n/gm, ''));
  await webhooks?.start();
  settlementWorker?.start();
  feed?.start();
  await relay?.start();
  await sweeper?.start();
  await audit?.start();
  await rebalancer?.start();

  const apiKeyStore = createApiKeyStore({ initial: config.apiKeys, file: config.apiKeysFile, logger });

  // The worker role serves only /healthz, /readyz and /metrics (its jobs' metrics live there).
  const app =
    config.role === 'worker'
      ? createOpsApp(readiness, metrics)
      : createApp({
          engine,
          logger,
          metrics,
          readiness,
          apiKeys: apiKeyStore.current,
          bodyLimitBytes: config.bodyLimitBytes,
          bodyTimeoutMs: config.bodyTimeoutMs,
          bulkLimitBytes: config.bulkLimitBytes,
          queries: createQueries(redis, keys),
          settlement: {
            ...settlementQueue,
            queues: webhooks ? [settlementQueue.queue, webhooks.queue] : [settlementQueue.queue],
          },
          rateLimits: createRateLimits(redis, keys, config.rateLimits),
          shedMaxInFlight: config.shedMaxInFlight,
          requestLog: config.requestLog,
          publicUrl: config.publicUrl,
        });
  const server = await listen(app, { port: config.port, host: config.host, bodyTimeoutMs: config.bodyTimeoutMs });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : undefined;
  logger.info({ role: config.role, port, redis: topology.description }, 'quota-allocator started');

  return {
    port,
    redis: { kind: topology.kind, description: topology.description },
    reloadApiKeys: apiKeyStore.reload,
    async stop() {
      apiKeyStore.close();
      readiness.startDraining();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await closed;
      // Each part is closed even when another fails (a Redis already gone makes BullMQ's close throw).
      const steps: [string, () => Promise<unknown> | undefined][] = [
        ['shard rebalancer', () => rebalancer?.stop()],
        ['audit', () => audit?.stop()],
        ['expiry sweeper', () => sweeper?.stop()],
        ['settlement feed', () => feed?.stop()],
        ['outbox relay', () => relay?.stop()],
        ['webhooks', () => webhooks?.stop()],
        ['settlement worker', () => settlementWorker?.stop()],
        ['settlement queue', () => settlementQueue.close()],
        ['redis (and the private redis-server, if any)', () => topology.close()],
      ];
      for (const [name, close] of steps) {
        // Bounded: BullMQ's Worker.close() can wait forever on a connection a failover left reconnecting; closing the
        // Redis clients last ends it.
        await withTimeout(
          Promise.resolve(close()),
          STEP_TIMEOUT_MS,
          `did not finish within ${STEP_TIMEOUT_MS} ms`,
        ).catch((err: unknown) => logger.warn({ err }, `shutdown: closing the ${name} failed; going on`));
      }
      logger.info('quota-allocator stopped');
    },
  };
}

/**
 * How often the settlement feed reads the outbox: what a commit waits, at most, before its settlement job is queued
 * (src/settlement/settlementFeed.ts).
 */
const FEED_INTERVAL_MS = 100;

/** Connections (per node) that confirmed writes take turns on when REDIS_WAIT_REPLICAS is above 0. */
const WAIT_CONNECTIONS = 8;

/** Longest wait for one part to close at shutdown. */
const STEP_TIMEOUT_MS = 5_000;

function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

async function main(): Promise<void> {
  let config: Readonly<Config>;
  try {
    config = parseConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`quota-allocator: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  let service: RunningService;
  try {
    service = await startService(config, logger);
  } catch (err) {
    logger.fatal({ err }, `could not start: ${(err as Error).message}`);
    process.exit(1);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const hardStop = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    hardStop.unref();
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // Key rotation without a restart: SIGHUP re-reads QUOTA_API_KEYS_FILE.
  process.on('SIGHUP', () => {
    if (!config.apiKeysFile) logger.warn('SIGHUP: no QUOTA_API_KEYS_FILE to re-read; the keys stay');
    else service.reloadApiKeys('SIGHUP');
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main();
}
