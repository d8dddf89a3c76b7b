/**
 * The API's hand-off of committed reservations to the settlement queue (src/settlement/settlementHandoff.ts), on a
 * real BullMQ queue in a real Redis: commits of one turn go in one add, a queue that does not answer holds at most
 * `maxPending` of them, and draining waits for what was sent.
 */
import { Queue } from 'bullmq';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { queueConnectionOptions, workerConnectionOptions } from '../../src/redis/connection.js';
import { createKeys } from '../../src/redis/keys.js';
import { createSettlementHandoff, type HandoffResult } from '../../src/settlement/settlementHandoff.js';
import { createSettlementQueue, SETTLEMENT_QUEUE, type SettlementQueue } from '../../src/settlement/settlementQueue.js';
import { startDelayProxy, type DelayProxy } from '../support/delayProxy.js';
import { uniqueId } from '../support/engineContext.js';
import { sleep } from '../support/wait.js';

const redisUrl = () => inject('redisUrl');

describe('the settlement hand-off', () => {
  let queue: SettlementQueue | undefined;
  let proxy: DelayProxy | undefined;

  afterEach(async () => {
    proxy?.setReplyDelay(0);
    await queue?.queue.obliterate({ force: true }).catch(() => undefined);
    await queue?.close().catch(() => undefined); // (a test may have cut its connection)
    await proxy?.stop();
    queue = proxy = undefined;
  });

  /** A settlement queue (through a proxy that can hold Redis's replies) and a hand-off counting what it did. */
  async function start(maxPending: number) {
    const { hostname, port } = new URL(redisUrl());
    proxy = await startDelayProxy({ host: hostname, port: Number(port) });
    const url = proxy.url;
    const keys = createKeys(uniqueId('ho'));
    queue = createSettlementQueue({
      bullmq: { queue: () => queueConnectionOptions(url), worker: () => workerConnectionOptions(url) },
      keys,
      logger: createLogger('silent'),
      attempts: 3,
      backoffMs: 100,
    });
    await queue.queue.waitUntilReady();
    const counts: Record<HandoffResult, number> = { queued: 0, failed: 0, skipped: 0 };
    const adds: number[] = [];
    const q = queue;
    const handoff = createSettlementHandoff({
      addBulk: (jobs) => (adds.push(jobs.length), q.addBulk(jobs)),
      logger: createLogger('silent'),
      count: (result, n) => void (counts[result] += n),
      maxPending,
    });
    return { handoff, counts, adds, q, keys };
  }

  it('adds the commits of one turn in one call, once each, with the reservation id as job id', async () => {
    const { handoff, counts, adds, q } = await start(1_000);
    for (let i = 0; i < 50; i++) handoff.handOff('p1', `r${i}`);
    handoff.handOff('p1', 'r7'); // a replayed commit in the same turn
    expect(adds).toEqual([]); // nothing sent before this turn ends
    await handoff.drain();
    expect(adds).toEqual([50]);
    expect(counts).toEqual({ queued: 50, failed: 0, skipped: 0 });
    const jobs = await q.queue.getJobs(['waiting']);
    expect(jobs.map((j) => j.id).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `r${i}`).sort());
    expect((await q.queue.getJob('r3'))?.data).toEqual({ productId: 'p1', reservationId: 'r3' });

    // Handed off again in a later turn (a commit retried by its client): still one job each.
    handoff.handOff('p1', 'r3');
    await handoff.drain();
    expect((await q.queue.getJobCounts('waiting')).waiting).toBe(50);
  });

  it('returns at once while the queue does not answer, holds at most maxPending, and leaves the rest', async () => {
    const { handoff, counts, q } = await start(30);
    proxy!.setReplyDelay(1_000); // every reply from Redis held a second
    const started = performance.now();
    for (let i = 0; i < 20; i++) handoff.handOff('p1', `a${i}`);
    await sleep(50); // the first add is on the wire, unanswered
    for (let i = 0; i < 20; i++) handoff.handOff('p1', `b${i}`);
    expect(performance.now() - started).toBeLessThan(200); // no hand-off waited for Redis
    expect(counts.skipped).toBe(10); // 20 sent + 10 waiting = maxPending
    await handoff.drain();
    expect(counts).toEqual({ queued: 30, failed: 0, skipped: 10 });
    proxy!.setReplyDelay(0);
    const ids = (await q.queue.getJobs(['waiting'])).map((j) => j.id!);
    expect(ids).toHaveLength(30);
    expect(ids.filter((id) => id.startsWith('b'))).toHaveLength(10); // the first ten of the second turn
  });

  it('counts an add that fails and goes on with the next turn', async () => {
    const { handoff, counts, keys } = await start(1_000);
    await proxy!.stop(); // the queue's connection is gone
    handoff.handOff('p1', 'x1');
    await handoff.drain();
    expect(counts).toEqual({ queued: 0, failed: 1, skipped: 0 });
    // Not held against later hand-offs: nothing stays pending after a failure.
    for (let i = 0; i < 1_000; i++) handoff.handOff('p1', `y${i}`);
    await handoff.drain();
    expect(counts.skipped).toBe(0);
    expect(counts.failed).toBe(1_001);
    const direct = new Queue(SETTLEMENT_QUEUE, {
      connection: queueConnectionOptions(redisUrl()),
      prefix: keys.queuePrefix(),
    });
    try {
      expect(await direct.getJobCounts('waiting', 'delayed')).toMatchObject({ waiting: 0, delayed: 0 });
    } finally {
      await direct.close();
    }
  });
});
