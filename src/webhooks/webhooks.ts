/**
 * Webhooks, wired as one part (WEBHOOK_URL set): the outbox (the products'
 * events streams), the queue, the drain worker and the relay (ROLE=worker or
 * all), and their metrics. The scripts record the events themselves when the
 * engine is created with `webhooks: true`.
 */
import type { Registry } from 'prom-client';
import type { Config } from '../config.js';
import type { Outcome, PoolSnapshot } from '../engine/types.js';
import type { Logger } from '../logger.js';
import type { Keys } from '../redis/keys.js';
import type { BullConnections, RedisClient } from '../redis/topology.js';
import { createWebhookMetrics } from './webhookMetrics.js';
import { createWebhookOutbox } from './webhookOutbox.js';
import { createWebhookQueue } from './webhookQueue.js';
import { createWebhookRelay } from './webhookRelay.js';
import { createWebhookSender } from './webhookSender.js';
import { createWebhookWorker } from './webhookWorker.js';

export interface WebhooksDeps {
  config: NonNullable<Config['webhooks']>;
  bullmq: BullConnections;
  redis: RedisClient;
  keys: Keys;
  logger: Logger;
  registry: Registry;
  /** ROLE=worker or all: the drain worker and the relay run here. */
  runsJobs: boolean;
  /** Backlog gauges read from Redis at scrape time (API roles, as the settlement gauges). */
  readsBacklog: boolean;
  /** A sharded product's snapshot as the API answers it, null when unsharded (its product.* events show it). */
  shardedProduct?: (productId: string) => Promise<Outcome<PoolSnapshot> | null>;
}

export function createWebhooks(deps: WebhooksDeps) {
  const { config, bullmq, redis, keys, logger } = deps;
  const outbox = createWebhookOutbox(redis, keys);
  const metrics = createWebhookMetrics(deps.registry, deps.readsBacklog ? { redis, keys, outbox } : undefined);
  const queue = createWebhookQueue({ bullmq, keys, logger });
  const worker = deps.runsJobs
    ? createWebhookWorker({
        bullmq,
        queue: queue.queue,
        keys,
        outbox,
        send: createWebhookSender(config),
        logger,
        metrics,
        concurrency: config.concurrency,
        products: config.concurrency,
        backoffMs: config.backoffMs,
        lockDurationMs: config.lockMs,
        shardedProduct: deps.shardedProduct,
      })
    : undefined;
  const relay = deps.runsJobs
    ? createWebhookRelay({
        bullmq,
        redis,
        keys,
        outbox,
        queue,
        logger,
        intervalMs: config.relayIntervalMs,
        lockMs: config.lockMs,
      })
    : undefined;
  return {
    queue: queue.queue,
    async start() {
      await outbox.startId(); // fixes "webhooks on since" before the first event is recorded
      worker?.start();
      await relay?.start();
    },
    async stop() {
      await relay?.stop();
      await worker?.stop();
      await queue.close();
    },
  };
}
