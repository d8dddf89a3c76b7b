/**
 * A BullMQ worker that is replaced when it stops taking jobs.
 *
 * After a master failover a worker can stay "running", its connections
 * "ready", and never pick another job: its blocking wait for the next job was
 * lost with the dead node (seen in test/system/cluster.test.ts: the outbox
 * relay's job waited 60 s and more while the worker idled; the same class of
 * failure as taskforcesh/bullmq#648, #3088, #3185). BullMQ leaves reconnection
 * to ioredis, and its maintainers' advice is to close such a worker and make a
 * new one. So a light timer looks at the queue: jobs ready to run (waiting, or
 * delayed and due) while none is active, seen for `stuckAfterMs` without this
 * worker starting any, means no worker is taking them, and ours is replaced by
 * a new one on fresh connections. With several instances, a healthy one takes
 * the jobs and the condition never lasts.
 */
import type { ConnectionOptions, Job, Processor, Queue, Worker } from 'bullmq';
import { Worker as BullWorker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.js';

export interface WatchedWorkerOptions<T> {
  /** The queue the worker takes jobs from (used only for the check). */
  queue: Queue<T>;
  process: Processor<T>;
  /** A new connection (options or a client) for each worker, so a replacement gets fresh connections. */
  connection: () => ConnectionOptions;
  prefix: string;
  concurrency: number;
  /**
   * A job's lock, renewed while it runs; a job whose worker died comes back (stalled) after it. The stalled check
   * runs every half lock.
   */
  lockMs: number;
  /** How often a job may come back stalled before it fails (BullMQ's default: 1). */
  maxStalledCount?: number;
  /** Wires events (error, failed) on each new worker. */
  onWorker?: (worker: Worker<T>) => void;
  logger: Logger;
  /** How often the queue is looked at (default 5 s). */
  checkEveryMs?: number;
  /** Jobs ready and none active this long: the worker is replaced (default 15 s). */
  stuckAfterMs?: number;
  /** The longest wait for a replaced worker to close (default 5 s; a stuck one may never close). */
  closeTimeoutMs?: number;
}

export interface WatchedWorker {
  /** Replacements so far. */
  restarts(): number;
  close(): Promise<void>;
}

export function startWatchedWorker<T>(options: WatchedWorkerOptions<T>): WatchedWorker {
  const { queue, logger } = options;
  const checkEveryMs = options.checkEveryMs ?? 5_000;
  const stuckAfterMs = options.stuckAfterMs ?? 15_000;
  const closeTimeoutMs = options.closeTimeoutMs ?? 5_000;
  let restarts = 0;
  let closed = false;
  /** When jobs were first seen ready with none active (and no job started since), or undefined. */
  let stuckSince: number | undefined;

  const make = (): Worker<T> => {
    const worker = new BullWorker<T>(queue.name, options.process, {
      connection: options.connection(),
      prefix: options.prefix,
      concurrency: options.concurrency,
      lockDuration: options.lockMs,
      stalledInterval: Math.max(1_000, Math.floor(options.lockMs / 2)),
      ...(options.maxStalledCount === undefined ? {} : { maxStalledCount: options.maxStalledCount }),
    });
    worker.on('active', (_job: Job<T>) => {
      stuckSince = undefined;
    });
    options.onWorker?.(worker);
    return worker;
  };
  let worker = make();

  const replace = async (readyJobs: number) => {
    restarts++;
    logger.warn(
      { queue: queue.name, readyJobs, stuckForMs: Date.now() - (stuckSince ?? Date.now()), restarts },
      'queue worker took no job while jobs were ready (connection lost in a failover?); replacing it',
    );
    const old = worker;
    worker = make();
    stuckSince = undefined;
    await closeWithin(old, closeTimeoutMs);
  };

  const check = async () => {
    const ready = await readyJobs(queue);
    if (ready === 0) {
      stuckSince = undefined;
      return;
    }
    stuckSince ??= Date.now();
    if (Date.now() - stuckSince >= stuckAfterMs) await replace(ready);
  };

  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (closed) return;
    timer = setTimeout(() => {
      check()
        .catch((err: unknown) => logger.debug({ err, queue: queue.name }, 'worker check failed; trying again'))
        .finally(schedule);
    }, checkEveryMs);
    timer.unref();
  };
  schedule();

  return {
    restarts: () => restarts,
    async close() {
      closed = true;
      clearTimeout(timer);
      await worker.close();
    },
  };
}

/**
 * Jobs that a live worker would take now while none is active: waiting and prioritized ones, plus delayed ones
 * already due (promoting those is a worker's job too). 0 while any job is active: a worker is working.
 */
async function readyJobs(queue: Queue): Promise<number> {
  const counts = await queue.getJobCounts('active', 'waiting', 'prioritized');
  if ((counts.active ?? 0) > 0) return 0;
  return (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (await dueDelayed(queue));
}

/** Delayed jobs already due. BullMQ scores a delayed job `dueMs * 0x1000 + (id counter & 0xfff)`. */
async function dueDelayed(queue: Queue): Promise<number> {
  const client = (await queue.client) as unknown as Pick<Redis, 'zcount'>; // ioredis underneath
  return client.zcount(queue.keys.delayed!, '-inf', Date.now() * 0x1000 + 0xfff);
}

/** Closes a worker without waiting on its jobs, giving up after `ms`; then drops a connection we handed it. */
async function closeWithin(worker: Worker, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([worker.close(true).catch(() => undefined), timeout]).finally(() => clearTimeout(timer));
  const connection = worker.opts.connection as { disconnect?: () => void } | undefined;
  if (typeof connection?.disconnect === 'function') connection.disconnect();
}
