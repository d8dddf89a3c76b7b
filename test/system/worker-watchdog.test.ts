/**
 * A queue worker that stops taking jobs is replaced (src/jobs/watchedWorker.ts). The stuck worker is made as a
 * failover leaves one: its connections go through a proxy that stops answering, so its blocking wait for the next
 * job never returns, while the queue, on a direct connection, keeps working.
 */
import { Queue, type Job } from 'bullmq';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startWatchedWorker, type WatchedWorker } from '../../src/jobs/watchedWorker.js';
import { createLogger } from '../../src/logger.js';
import { queueConnectionOptions, workerConnectionOptions } from '../../src/redis/connection.js';
import { startDelayProxy, type DelayProxy } from '../support/delayProxy.js';
import { uniqueId } from '../support/engineContext.js';
import { sleep, waitUntil } from '../support/wait.js';

const redisUrl = () => inject('redisUrl');
const HOUR = 3_600_000;

describe('a watched queue worker', () => {
  let proxy: DelayProxy | undefined;
  let queue: Queue | undefined;
  let watched: WatchedWorker | undefined;

  afterEach(async () => {
    await watched?.close().catch(() => undefined);
    await queue?.close();
    await proxy?.stop();
    watched = queue = proxy = undefined;
  });

  /** A watched worker whose first connection goes through the proxy, every later one straight to Redis. */
  async function start(name: string, processed: string[], work = async () => {}) {
    const { hostname, port } = new URL(redisUrl());
    proxy = await startDelayProxy({ host: hostname, port: Number(port) });
    queue = new Queue(name, { connection: queueConnectionOptions(redisUrl()), prefix: `{${name}}` });
    let made = 0;
    watched = startWatchedWorker({
      queue,
      process: async (job: Job) => {
        await work();
        processed.push(job.id!);
      },
      connection: () => workerConnectionOptions(made++ === 0 ? proxy!.url : redisUrl()),
      prefix: `{${name}}`,
      concurrency: 1,
      lockMs: 30_000,
      logger: createLogger('silent'),
      checkEveryMs: 200,
      stuckAfterMs: 1_500,
      closeTimeoutMs: 500,
    });
    return queue;
  }

  it('is replaced when jobs wait and it takes none, and the new worker runs them', async () => {
    const processed: string[] = [];
    const q = await start(uniqueId('wd'), processed);
    await q.add('job', {}, { jobId: 'before' });
    await waitUntil(
      'the first job done by the first worker',
      async () => processed,
      (p) => p.length === 1,
    );
    await sleep(300); // the worker is back in its blocking wait for the next job
    proxy!.setReplyDelay(HOUR); // ... which now never returns
    for (let i = 0; i < 5; i++) await q.add('job', {}, { jobId: `after-${i}` });

    await waitUntil(
      'the waiting jobs run',
      async () => processed.length,
      (n) => n === 6,
      { timeoutMs: 20_000 },
    );
    expect(watched!.restarts()).toBe(1);
    expect(processed.slice(1).sort()).toEqual(['after-0', 'after-1', 'after-2', 'after-3', 'after-4']);
  });

  it('is left alone while it works, while the queue is empty, and while the only jobs are delayed', async () => {
    const processed: string[] = [];
    const q = await start(uniqueId('wd'), processed, () => sleep(400));
    for (let i = 0; i < 8; i++) await q.add('job', {}, { jobId: `slow-${i}` }); // 3.2 s of work, one at a time
    await q.add('job', {}, { jobId: 'later', delay: HOUR });
    await waitUntil(
      'the slow jobs done',
      async () => processed.length,
      (n) => n === 8,
      { timeoutMs: 20_000 },
    );
    await sleep(2_500); // idle, with a job delayed an hour: longer than stuckAfterMs
    expect(watched!.restarts()).toBe(0);
  });
});
