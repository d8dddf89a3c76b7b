/**
 * The settlement queue: one BullMQ job per committed reservation, job id =
 * reservation id, so enqueueing twice while a job lives is a no-op. Jobs
 * retry with exponential backoff and jitter; a worker killed mid-job loses
 * its lock and the job comes back as stalled.
 */
import { Queue, type Job } from 'bullmq';
import type { Logger } from '../logger.js';
import type { BullConnections } from '../redis/topology.js';
import type { Keys } from '../redis/keys.js';

export const SETTLEMENT_QUEUE = 'settlement';

export interface SettlementJobData {
  productId: string;
  reservationId: string;
}

export interface SettlementQueueOptions {
  bullmq: BullConnections;
  keys: Keys;
  logger: Logger;
  attempts: number;
  backoffMs: number;
}

export function createSettlementQueue(options: SettlementQueueOptions) {
  const { logger } = options;
  const queue = new Queue<SettlementJobData>(SETTLEMENT_QUEUE, {
    connection: options.bullmq.queue(),
    prefix: options.keys.queuePrefix(),
    defaultJobOptions: {
      attempts: options.attempts,
      backoff: { type: 'exponential', delay: options.backoffMs, jitter: 0.5 },
      // A finished job means its outcome is recorded on the reservation; keep a
      // day of them for the dashboard, and failed ones (Redis trouble) a week.
      removeOnComplete: { age: 86_400, count: 100_000 },
      removeOnFail: { age: 7 * 86_400 },
    },
  });
  queue.on('error', (err) => logger.warn({ err }, 'settlement queue error'));

  /** A reservation's job: named `settle`, its id the reservation's (a second add while it lives is a no-op). */
  const jobOf = (data: SettlementJobData) => ({ name: 'settle', data, opts: { jobId: data.reservationId } });
  const enqueue = (productId: string, reservationId: string): Promise<Job<SettlementJobData>> => {
    const job = jobOf({ productId, reservationId });
    return queue.add(job.name, job.data, job.opts);
  };

  return {
    queue,
    enqueue,
    /** Many at once, in one round trip (the settlement feed, src/settlement/settlementFeed.ts). */
    addBulk: (jobs: SettlementJobData[]) => queue.addBulk(jobs.map(jobOf)),
    /**
     * Makes sure a committed reservation has a live job: adds one if none
     * exists, retries a failed one, and replaces a finished one (a finished job
     * whose reservation is still committed was cut short). Returns what it did.
     */
    async ensureJob(productId: string, reservationId: string): Promise<'added' | 'retried' | 'replaced' | 'live'> {
      const job = await queue.getJob(reservationId);
      if (!job) {
        await enqueue(productId, reservationId);
        return 'added';
      }
      const state = await job.getState();
      if (state === 'failed') {
        await job.retry('failed');
        return 'retried';
      }
      if (state === 'completed' || state === 'unknown') {
        await job.remove().catch(() => undefined);
        await enqueue(productId, reservationId);
        return 'replaced';
      }
      return 'live';
    },
    close: () => queue.close(),
  };
}

export type SettlementQueue = ReturnType<typeof createSettlementQueue>;
