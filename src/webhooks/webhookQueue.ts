/**
 * The webhook queue (its own BullMQ queue under the queue prefix's hash tag):
 * one drain job per product, job id `drain-<productId>`, so a product never
 * has two drains at once and its events leave in stream order. A drain that
 * meets a failed delivery throws, and BullMQ retries it with capped
 * exponential backoff and jitter; the relay re-adds a drain for any product
 * with undelivered entries (src/webhooks/webhookRelay.ts).
 */
import { Queue } from 'bullmq';
import type { Logger } from '../logger.js';
import { queueConnectionOptions } from '../redis/connection.js';
import type { Keys } from '../redis/keys.js';

export const WEBHOOK_QUEUE = 'webhooks';
/** A drain failing this many times in a row is left failed; the relay retries it on its next run. */
const ATTEMPTS = 30;
/** The longest wait between two attempts of a drain. */
export const MAX_BACKOFF_MS = 300_000;

export interface WebhookJobData {
  productId: string;
}

/** Capped exponential backoff with 50% jitter (BullMQ's own exponential one has no cap). */
export function webhookBackoffMs(attemptsMade: number, baseMs: number): number {
  const capped = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(capped * (0.5 + Math.random() * 0.5));
}

export const drainJobId = (productId: string): string => `drain-${productId}`;

export function createWebhookQueue(options: { redisUrl: string; keys: Keys; logger: Logger }) {
  const queue = new Queue<WebhookJobData>(WEBHOOK_QUEUE, {
    connection: queueConnectionOptions(options.redisUrl),
    prefix: options.keys.queuePrefix(),
    defaultJobOptions: {
      attempts: ATTEMPTS,
      backoff: { type: 'webhook' },
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
