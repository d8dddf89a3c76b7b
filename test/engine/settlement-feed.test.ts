/**
 * The settlement feed (src/settlement/settlementFeed.ts) on a real Redis and a real BullMQ queue: commits made
 * through the engine reach the queue as one job each, read from the outbox the commit script wrote; a restarted
 * feed adds no second job; a failed add is tried again; a sharded product's jobs name the product.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { queueConnectionOptions, workerConnectionOptions } from '../../src/redis/connection.js';
import { createSettlementFeed } from '../../src/settlement/settlementFeed.js';
import { createSettlementQueue, type SettlementJobData } from '../../src/settlement/settlementQueue.js';
import { createEngineContext, uniqueId, type EngineContext } from '../support/engineContext.js';
import { waitUntil } from '../support/wait.js';

let ctx: EngineContext;
let queue: ReturnType<typeof createSettlementQueue>;

beforeAll(async () => {
  ctx = await createEngineContext();
  const url = inject('redisUrl');
  queue = createSettlementQueue({
    bullmq: { queue: () => queueConnectionOptions(url), worker: () => workerConnectionOptions(url) },
    keys: ctx.keys,
    logger: createLogger('silent'),
    attempts: 3,
    backoffMs: 100,
  });
});
afterAll(async () => {
  await queue.queue.obliterate({ force: true });
  await queue.close();
  await ctx.close();
});

function feedWith(addBulk = queue.addBulk) {
  const counts = { queued: 0, failed: 0 };
  const feed = createSettlementFeed({
    redis: ctx.redis,
    keys: ctx.keys,
    addBulk,
    logger: createLogger('silent'),
    count: (result, n) => void (counts[result] += n),
    intervalMs: 50,
  });
  return { feed, counts };
}

async function product(shards = 1) {
  const productId = uniqueId('p');
  const created = await ctx.engine.upsertProduct(productId, { capacity: 1_000_000, shards }, 'put');
  if (!created.ok) throw new Error(created.code);
  const lines = Array.from({ length: 12 }, (_, i) => ({
    customerId: `c${i}`,
    limit: 100_000,
    status: 'active' as const,
    statusReason: null,
    tier: null,
  }));
  const upserted = await ctx.engine.upsertLines(productId, lines);
  if (!upserted.ok) throw new Error(upserted.code);
  return productId;
}

/** Reserves and commits `n` draws; returns the committed reservation ids. */
async function commits(productId: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await ctx.engine.reserve({
      productId,
      customerId: `c${i % 12}`,
      amount: 10,
      reservationId: randomUUID(),
      idempotencyKey: uniqueId('k'),
      fingerprint: uniqueId('f'),
    });
    if (!r.ok) throw new Error(r.code);
    const c = await ctx.engine.commit(productId, r.value.reservationId);
    if (!c.ok) throw new Error(c.code);
    ids.push(c.value.reservationId);
  }
  return ids;
}

async function jobsOf(productId: string): Promise<SettlementJobData[]> {
  const jobs = await queue.queue.getJobs(['waiting']);
  return jobs.map((j) => j.data).filter((d) => d.productId === productId);
}

describe('the settlement feed', () => {
  it('adds one job per committed reservation, then only what was committed since', async () => {
    const productId = await product();
    const first = await commits(productId, 20);
    const { feed, counts } = feedWith();
    await feed.feedOnce();
    expect((await jobsOf(productId)).map((d) => d.reservationId).sort()).toEqual([...first].sort());
    expect(await feed.feedOnce()).toBe(0); // nothing new: no job added twice, not even an existing one

    const later = await commits(productId, 5);
    await feed.feedOnce();
    expect((await jobsOf(productId)).map((d) => d.reservationId).sort()).toEqual([...first, ...later].sort());
    expect(counts.failed).toBe(0);
  });

  it('a restarted feed reads the whole outbox again and still leaves one job each', async () => {
    const productId = await product();
    const ids = await commits(productId, 8);
    await feedWith().feed.feedOnce();
    const restarted = feedWith();
    await restarted.feed.feedOnce();
    expect(restarted.counts.queued).toBeGreaterThanOrEqual(8); // every product's outbox, read from the start
    expect((await jobsOf(productId)).map((d) => d.reservationId).sort()).toEqual([...ids].sort());
  });

  it('reads again what it could not add', async () => {
    const productId = await product();
    const ids = await commits(productId, 6);
    let fail = true;
    const { feed, counts } = feedWith(async (jobs) => {
      if (fail) throw new Error('the queue is down');
      return queue.addBulk(jobs);
    });
    await feed.feedOnce(); // (earlier tests' products are read too, and fail alike)
    expect(counts.failed).toBeGreaterThanOrEqual(6);
    expect(await jobsOf(productId)).toEqual([]);
    fail = false;
    await feed.feedOnce();
    expect((await jobsOf(productId)).map((d) => d.reservationId).sort()).toEqual([...ids].sort());
  });

  it("names a sharded product in its sub-pools' jobs", async () => {
    const productId = await product(3);
    const ids = await commits(productId, 12); // 12 customers spread over the 3 sub-pools
    await feedWith().feed.feedOnce();
    const jobs = await jobsOf(productId);
    expect(jobs.map((d) => d.reservationId).sort()).toEqual([...ids].sort());
    expect(ids.some((id) => /\.s[12]$/.test(id))).toBe(true); // some were committed in sub-pools 1 and 2
  });

  it('runs by itself once started, and stops', async () => {
    const productId = await product();
    const { feed } = feedWith();
    feed.start();
    try {
      const ids = await commits(productId, 3);
      await waitUntil(
        'the three jobs queued',
        () => jobsOf(productId),
        (jobs) => jobs.length === 3,
        { timeoutMs: 5_000, everyMs: 20 },
      );
      expect((await jobsOf(productId)).map((d) => d.reservationId).sort()).toEqual([...ids].sort());
    } finally {
      await feed.stop();
    }
  });
});
