/**
 * A periodic background job that exactly one instance runs at a time,
 * however many instances run: a BullMQ job scheduler makes one job per
 * interval, and the queue's global concurrency of 1 keeps two from running
 * together. Used by the expiry sweeper, the settlement outbox relay and the
 * invariant audit.
 *
 * The scheduler lives in Redis, so Redis losing its data (FLUSHALL, a restart
 * without persistence, a failover to an empty node) would stop the job for
 * good. Every instance therefore checks it on a light timer (one read) and
 * re-creates it when it is missing or has not moved for far longer than its
 * interval: the job heals itself without a restart.
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
  /** How often to check that the scheduler still exists (default 5 s). */
  healEveryMs?: number;
  /** A run's lock (BullMQ's default 30 s): a run killed with its process blocks the job until the lock runs out. */
  lockMs?: number;
}

export function createScheduledJob(options: ScheduledJobOptions) {
  const { name, logger } = options;
  const queue = new Queue(name, { connection: options.bullmq.queue(), prefix: options.prefix });
  queue.on('error', (err) => logger.warn({ err, job: name }, 'scheduled job queue error'));
  let worker: Worker | undefined;
  let healTimer: NodeJS.Timeout | undefined;
  let stopped = false;

  const assertScheduler = async () => {
    await queue.setGlobalConcurrency(1);
    await queue.upsertJobScheduler(
      name,
      { every: options.everyMs },
      { name, opts: { removeOnComplete: true, removeOnFail: 100 } },
    );
  };
  /** A next run this far in the past means the scheduler's job is gone (a partial loss). */
  const staleAfterMs = 10 * options.everyMs + 60_000;
  const heal = async () => {
    const scheduler = await queue.getJobScheduler(name);
    const stale = scheduler?.next !== undefined && scheduler.next < Date.now() - staleAfterMs;
    if (scheduler && !stale) return;
    logger.warn({ job: name, stale }, 'job scheduler missing in Redis (data lost?); re-creating it');
    await assertScheduler();
  };
  const scheduleHeal = () => {
    if (stopped) return;
    healTimer = setTimeout(() => {
      heal()
        .catch((err: unknown) => logger.warn({ err, job: name }, 'could not check the job scheduler; trying again'))
        .finally(scheduleHeal);
    }, options.healEveryMs ?? 5_000);
    healTimer.unref();
  };

  return {
    async start() {
      await assertScheduler();
      scheduleHeal();
      worker = new Worker(name, options.run, {
        connection: options.bullmq.worker(),
        prefix: options.prefix,
        concurrency: 1,
        ...(options.lockMs
          ? { lockDuration: options.lockMs, stalledInterval: Math.max(1_000, Math.floor(options.lockMs / 2)) }
          : {}),
      });
      worker.on('error', (err) => logger.warn({ err, job: name }, 'scheduled job worker error'));
      worker.on('failed', (_job, err) => logger.warn({ err, job: name }, 'scheduled job failed; the next run retries'));
    },
    async stop() {
      stopped = true;
      clearTimeout(healTimer);
      await worker?.close();
      await queue.close();
    },
  };
}
