/**
 * A periodic background job that exactly one instance runs at a time,
 * however many instances run: a BullMQ job scheduler makes one job per
 * interval, and the queue's global concurrency of 1 keeps two from running
 * together. Used by the expiry sweeper and the settlement outbox relay.
 */
import { Queue, Worker } from 'bullmq';
import type { Logger } from '../logger.js';
import type { BullConnections } from '../redis/topology.js';

export interface ScheduledJobOptions {
  name: string;
  bullmq: BullConnections;
  prefix: string;
  everyMs: number;
  logger: Logger;
  run: () => Promise<unknown>;
}

export function createScheduledJob(options: ScheduledJobOptions) {
  const { name, logger } = options;
  const queue = new Queue(name, { connection: options.bullmq.queue(), prefix: options.prefix });
  queue.on('error', (err) => logger.warn({ err, job: name }, 'scheduled job queue error'));
  let worker: Worker | undefined;

  return {
    async start() {
      await queue.setGlobalConcurrency(1);
      await queue.upsertJobScheduler(
        name,
        { every: options.everyMs },
        { name, opts: { removeOnComplete: true, removeOnFail: 100 } },
      );
      worker = new Worker(name, options.run, {
        connection: options.bullmq.worker(),
        prefix: options.prefix,
        concurrency: 1,
      });
      worker.on('error', (err) => logger.warn({ err, job: name }, 'scheduled job worker error'));
      worker.on('failed', (_job, err) => logger.warn({ err, job: name }, 'scheduled job failed; the next run retries'));
    },
    async stop() {
      await worker?.close();
      await queue.close();
    },
  };
}
