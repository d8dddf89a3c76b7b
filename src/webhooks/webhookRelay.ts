/**
 * The webhook relay: a scheduled job (one instance at a time) that looks at
 * every product's webhook consumer group, one pipelined read per page of
 * products, and makes sure each product with undelivered entries has a live
 * drain job. Entries stay in the stream's pending list until delivered, so a
 * process killed at any point loses nothing: the next relay run starts a
 * drain again, and the drain reads the pending entries first.
 */
import { createScheduledJob } from '../jobs/scheduledJob.js';
import type { Logger } from '../logger.js';
import type { Keys } from '../redis/keys.js';
import type { BullConnections, RedisClient } from '../redis/topology.js';
import type { WebhookOutbox } from './webhookOutbox.js';
import type { WebhookQueue } from './webhookQueue.js';
import { forEachProductPage } from '../redis/productIndex.js';

export const WEBHOOK_RELAY_JOB = 'webhook-relay';

export interface WebhookRelayDeps {
  bullmq: BullConnections;
  redis: RedisClient;
  keys: Keys;
  outbox: WebhookOutbox;
  queue: Pick<WebhookQueue, 'ensureDrain'>;
  logger: Logger;
  intervalMs: number;
  /** The relay run's lock (WEBHOOK_LOCK_MS): after a crash the relay is blocked until it runs out. */
  lockMs: number;
}

export function createWebhookRelay(deps: WebhookRelayDeps) {
  const { redis, keys, outbox, logger } = deps;

  async function relayOnce(): Promise<number> {
    await outbox.startId();
    let started = 0;
    await forEachProductPage(redis, keys, async (productIds) => {
      for (const b of await outbox.backlog(productIds)) {
        // lag null: Redis cannot count (entries were trimmed): let a drain look.
        if (!b.missing && b.pending === 0 && b.lag === 0) continue;
        const action = await deps.queue.ensureDrain(b.productId);
        if (action !== 'live') started++;
        if (action === 'retried') logger.warn({ productId: b.productId }, 'webhook relay: retried a failed drain');
      }
    });
    return started;
  }

  const job = createScheduledJob({
    name: WEBHOOK_RELAY_JOB,
    bullmq: deps.bullmq,
    prefix: keys.queuePrefix(),
    everyMs: deps.intervalMs,
    lockMs: deps.lockMs,
    logger,
    run: async () => ({ drainsStarted: await relayOnce() }),
  });
  return { relayOnce, start: job.start, stop: job.stop };
}
