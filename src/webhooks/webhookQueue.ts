/**
 * The webhook queue (its own BullMQ queue under the queue prefix's hash tag):
 * one drain job per product, job id `drain-<productId>`, so a product never
 * has two drains at once and its events leave in stream order. A drain that
 * meets a failed delivery puts itself back as delayed, with capped
 * exponential backoff and jitter on its consecutive runs without progress
 * (src/webhooks/webhookWorker.ts); an error of its own (Redis) fails it, and
 * the relay retries any failed drain of a product with undelivered entries
 * (src/webhooks/webhookRelay.ts).
 */
import { Queue } from 'bullmq';
import type { Logger } from '../logger.js';
import type { Keys } from '../redis/keys.js';
import type { BullConnections } from '../redis/topology.js';

export const WEBHOOK_QUEUE = 'webhooks';
/** A drain that fails (Redis trouble, not a delivery) this many times is left failed; the relay retries it. */
const ATTEMPTS = 5;
/** The longest wait between two attempts of a drain. */
export const MAX_BACKOFF_MS = 300_000;

export interface WebhookJobData {
  productId: string;
  /** Runs in a row that delivered nothing (the backoff grows with it; any progress resets it). */
  failures?: number;
}

/** Capped exponential backoff with 50% jitter. */
export function webhookBackoffMs(failures: number, baseMs: number): number {
  const capped = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
  return Math.round(capped * (0.5 + Math.random() * 0.5));
}

export const drainJobId = (productId: string): string => `drain-${productId}`;

export function createWebhookQueue(options: { bullmq: BullConnections; keys: Keys; logger: Logger }) {
  const queue = new Queue<WebhookJobData>(WEBHOOK_QUEUE, {
    connection: options.bullmq.queue(),
    prefix: options.keys.queuePrefix(),
    defaultJobOptions: {
      attempts: ATTEMPTS,
      backoff: { type: 'exponential', delay: 1_000 },
      // Gone once done, so the next drain of the product can take the same id.
      removeOnComplete: true,
      removeOnFail: { age: 7 * 86_400 },
    },
  });
  queue.on('error', (err) => options.logger.warn({ err }, 'webhook queue error'));

  return {
    queue,
    /** Makes sure the product has a live drain: adds one, retries a failed one, replaces a finished one. */
    async ensureDrain(productId: string): Promise<'added' | 'retried' | 'live'> {
      const jobId = drainJobId(productId);
      const job = await queue.getJob(jobId);
      if (job) {
        const state = await job.getState();
        if (state === 'failed') {
          await job.retry('failed');
          return 'retried';
        }
        if (state !== 'completed' && state !== 'unknown') return 'live';
        await job.remove().catch(() => undefined);
      }
      await queue.add('drain', { productId }, { jobId });
      return 'added';
    },
    close: () => queue.close(),
  };
}

export type WebhookQueue = ReturnType<typeof createWebhookQueue>;
