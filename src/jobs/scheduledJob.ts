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
 * interval: the job heals itself without a restart. Its worker is watched
 * too (src/jobs/watchedWorker.ts): one that stops taking runs after a
 * failover is replaced.
 */
import { Queue } from 'bullmq';
import type { Logger } from '../logger.js';
import type { BullConnections } from '../redis/topology.js';
import { startWatchedWorker, type WatchedWorker } from './watchedWorker.js';

export interface ScheduledJobOptions {
  name: string;
  bullmq: BullConnections;
  prefix: string;
  everyMs: number;
  logger: Logger;
  run: () => Promise<unknown>;
  /** How often to check that the scheduler still exists (default 5 s). */
  healEveryMs?: number;
  /**
   * A run's lock (default 10 s, renewed while it runs). A run whose process or Redis connection died stays active
   * until its lock runs out, and with a concurrency of one it holds every later run back: BullMQ's default of 30 s
   * (plus a 30 s stalled check) could stop the outbox relay for a minute after a failover.
   */
  lockMs?: number;
  /**
   * A run still going after this long is failed so the next one can start (none by default). A command sent to a
   * cluster node during a failover can hang, and with a concurrency of one a hung run would stop the job for good;
   * the hung promise may still finish later, so only idempotent jobs (the outbox relay) set this.
   */
  runTimeoutMs?: number;
}

export function createScheduledJob(options: ScheduledJobOptions) {
  const { name, logger } = options;
  const queue = new Queue(name, { connection: options.bullmq.queue(), prefix: options.prefix });
  queue.on('error', (err) => logger.warn({ err, job: name }, 'scheduled job queue error'));
  let worker: WatchedWorker | undefined;
  let healTimer: NodeJS.Timeout | undefined;
  let stopped = false;
  const lockMs = options.lockMs ?? 10_000;

  const assertScheduler = async () => {
    await queue.setGlobalConcurrency(1);
    await queue.upsertJobScheduler(
      name,
      { every: options.everyMs },
      { name, opts: { removeOnComplete: true, removeOnFail: 100 } },
    );
  };
  /**
   * A partial loss (a failover to a replica that missed the last writes) can keep the scheduler but lose its next
   * job: the next run is then overdue and nothing is queued to make it. Overdue this long with nothing queued: lost.
   */
  const overdueAfterMs = Math.max(3 * options.everyMs, 15_000);
  /** Overdue this long even with jobs queued (a queue nobody runs): re-created anyway. */
  const staleAfterMs = 10 * options.everyMs + 60_000;
  const queuedJobs = async () => {
    const counts = await queue.getJobCounts('waiting', 'delayed', 'prioritized', 'active');
    return Object.values(counts).reduce((sum, n) => sum + n, 0);
  };
  const heal = async () => {
    const scheduler = await queue.getJobScheduler(name);
    const overdueMs = scheduler?.next === undefined ? 0 : Date.now() - scheduler.next;
    if (scheduler && overdueMs < overdueAfterMs) return;
    const stale = scheduler !== undefined && (overdueMs > staleAfterMs || (await queuedJobs()) === 0);
    if (scheduler && !stale) return;
    logger.warn(
      { job: name, stale, overdueMs },
      'job scheduler or its next job missing in Redis (data lost?); re-creating it',
    );
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
      worker = startWatchedWorker({
        queue,
        process: () => withTimeout(options.run(), options.runTimeoutMs, name),
        connection: options.bullmq.worker,
        prefix: options.prefix,
        concurrency: 1,
        lockMs,
        onWorker: (w) => {
          w.on('error', (err) => logger.warn({ err, job: name }, 'scheduled job worker error'));
          w.on('failed', (_job, err) => logger.warn({ err, job: name }, 'scheduled job failed; the next run retries'));
        },
        logger,
        checkEveryMs: options.healEveryMs,
      });
    },
    async stop() {
      stopped = true;
      clearTimeout(healTimer);
      await worker?.close();
      await queue.close();
    },
  };
}

/** The run's promise, rejected after `ms` if it has not settled by then (as is when `ms` is undefined). */
function withTimeout<T>(run: Promise<T>, ms: number | undefined, name: string): Promise<T> {
  if (ms === undefined) return run;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${name}: run still going after ${ms} ms; failed so the next run can start`)),
      ms,
    );
  });
  return Promise.race([run, timeout]).finally(() => clearTimeout(timer));
}
