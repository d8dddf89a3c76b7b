/**
 * Expiry without any call: a hold past expiresAt returns its quota by itself,
 * through the background sweeper on products nobody touches (read straight
 * from Redis: an API read would reclaim lazily and hide a missing sweeper),
 * and lazily inside a reserve. With two instances on one Redis and key prefix
 * each hold is still reclaimed exactly once.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createKeys, type Keys } from '../../src/redis/keys.js';
import { readAllRecords, readLine, readRecord } from '../../src/redis/storedRecords.js';
import { SWEEP_JOB } from '../../src/sweeper/expirySweeper.js';
import { uniqueId } from '../support/engineContext.js';
import { ADMIN_KEY, CLIENT_KEY, startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import { sleep } from '../support/wait.js';

/** "quota back within about a second of expiry": allowed slack on a loaded 2-core machine. */
const RECLAIM_DEADLINE_MS = 2_500;

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(() => redis?.disconnect());

/** The Redis server's clock (ms): the clock expiry decisions use. */
async function redisNow(): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

async function hgetNum(key: string, field: string): Promise<number> {
  return Number(await redis.hget(key, field));
}

async function lineNum(keys: Keys, productId: string, customerId: string, field: string): Promise<number> {
  return Number((await readLine(redis, keys, productId, customerId))?.[field]);
}

async function bounded(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let i = next++; i < count; i = next++) await task(i);
    }),
  );
}

/**
 * Polls `pool held` straight from Redis until it is 0; returns how long after
 * `expiresAt` (Redis clock) that happened, and the smallest value seen.
 */
async function waitForPoolHeldZero(poolKey: string, expiresAt: number, timeoutMs: number) {
  let min = Number.POSITIVE_INFINITY;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const held = await hgetNum(poolKey, 'held');
    min = Math.min(min, held);
    if (held <= 0) return { afterExpiryMs: (await redisNow()) - expiresAt, held, min };
    if (Date.now() > deadline) return { afterExpiryMs: Number.NaN, held, min };
    await sleep(20);
  }
}

/**
 * The instance's quota_expired_holds_reclaimed_total for one script (reclaim-expired: the sweeper), or summed over all.
 */
async function reclaimedCounter(svc: { baseUrl: string }, script: string | 'all' = 'reclaim-expired'): Promise<number> {
  const text = await (await fetch(`${svc.baseUrl}/metrics`)).text();
  const samples = [...text.matchAll(/^quota_expired_holds_reclaimed_total\{script="([^"]+)"\} (\d+)$/gm)];
  if (!samples.some(([, s]) => s === 'reclaim-expired'))
    throw new Error('quota_expired_holds_reclaimed_total not in /metrics');
  return samples.filter(([, s]) => script === 'all' || s === script).reduce((sum, [, , v]) => sum + Number(v), 0);
}

async function setUpProduct(
  svc: Pick<ServiceContext, 'admin'>,
  productId: string,
  capacity: number,
  lines: Record<string, number>,
) {
  expect((await svc.admin('PUT', `/v1/products/${productId}`, { capacity })).status).toBe(201);
  for (const [customerId, limit] of Object.entries(lines)) {
    expect((await svc.admin('PUT', `/v1/products/${productId}/customers/${customerId}`, { limit })).status).toBe(201);
  }
}

describe('the background sweeper', () => {
  let svc: ServiceContext;
  beforeAll(async () => {
    svc = await startServiceContext();
  });
  afterAll(() => svc?.stop());

  it('returns the quota of an untouched product within about a second of expiry', async () => {
    const p = uniqueId('p');
    await setUpProduct(svc, p, 1_000, { c1: 500, c2: 500 });
    const poolKey = createKeys(svc.keyPrefix).pool(p);
    const ids: string[] = [];
    let expiresAt = 0;
    for (const [i, customerId] of ['c1', 'c2', 'c1'].entries()) {
      const r = await svc.client(
        'POST',
        `/v1/products/${p}/reservations`,
        { customerId, amount: 100, ttlSeconds: 1 },
        { 'Idempotency-Key': `k${i}` },
      );
      expect(r.status).toBe(201);
      ids.push(r.body.reservationId);
      expiresAt = Math.max(expiresAt, Date.parse(r.body.expiresAt));
    }
    expect(await hgetNum(poolKey, 'held')).toBe(300);

    // Nobody calls the API from here on.
    const result = await waitForPoolHeldZero(poolKey, expiresAt, 10_000);
    console.log(`[expiry] 3 holds: pool held back to 0 ${result.afterExpiryMs} ms after expiry`);
    expect(result.held).toBe(0);
    expect(result.min).toBeGreaterThanOrEqual(0);
    expect(result.afterExpiryMs).toBeLessThanOrEqual(RECLAIM_DEADLINE_MS);

    expect(await lineNum(createKeys(svc.keyPrefix), p, 'c1', 'held')).toBe(0);
    expect(await lineNum(createKeys(svc.keyPrefix), p, 'c2', 'held')).toBe(0);
    for (const id of ids) expect((await readRecord(redis, createKeys(svc.keyPrefix), p, id))?.status).toBe('expired');
    expect(await redis.zcard(createKeys(svc.keyPrefix).status(p, 'held'))).toBe(0);

    // And the API shows the quota back (and the hold as expired).
    const pool = await svc.client('GET', `/v1/products/${p}`);
    expect(pool.body).toMatchObject({ held: 0, committed: 0, available: 1_000 });
    expect((await svc.client('GET', `/v1/products/${p}/reservations/${ids[0]}`)).body.status).toBe('expired');
  });

  it('reclaims every one of 2,000 expired holds on one product', async () => {
    const p = uniqueId('p');
    const customers = Array.from({ length: 200 }, (_, i) => `c${i}`);
    expect((await svc.admin('PUT', `/v1/products/${p}`, { capacity: 1_000_000 })).status).toBe(201);
    const ndjson = customers.map((c) => JSON.stringify({ customerId: c, limit: 10_000 })).join('\n');
    const imported = await svc.call('POST', `/v1/products/${p}/customers:bulk`, { body: ndjson, key: ADMIN_KEY });
    expect(imported.body.upserted).toBe(customers.length);

    const poolKey = createKeys(svc.keyPrefix).pool(p);
    const HOLDS = 2_000;
    let expiresAt = 0;
    let created = 0;
    const t0 = performance.now();
    const reclaimedAtStart = await reclaimedCounter(svc, 'all');
    // ttlSeconds 10 so (nearly) all holds are still live when the last reserve
    // lands even on a loaded machine (the reserves take about 3 s alone, 9 s
    // under heavy load): a reserve reclaims lazily, and this test is about the sweeper.
    await bounded(HOLDS, 100, async (i) => {
      const r = await svc.client(
        'POST',
        `/v1/products/${p}/reservations`,
        { customerId: customers[i % customers.length], amount: 10 + (i % 7), ttlSeconds: 10 },
        { 'Idempotency-Key': `k${i}` },
      );
      expect(r.status).toBe(201);
      created++;
      expiresAt = Math.max(expiresAt, Date.parse(r.body.expiresAt));
    });
    expect(created).toBe(HOLDS);
    const heldBefore = await hgetNum(poolKey, 'held');
    const liveBefore = await redis.zcard(createKeys(svc.keyPrefix).status(p, 'held'));
    console.log(
      `[expiry] ${HOLDS} reserves took ${Math.round(performance.now() - t0)} ` +
        `ms; ${liveBefore} holds (${heldBefore}) live at the end`,
    );
    expect(liveBefore).toBeGreaterThan(HOLDS / 2);

    const result = await waitForPoolHeldZero(poolKey, expiresAt, 15_000);
    console.log(
      `[expiry] ${HOLDS} holds (${heldBefore} held at the end of the reserves): pool ` +
        `held back to 0 ${result.afterExpiryMs} ms after the last expiry`,
    );
    expect(result.held).toBe(0);
    expect(result.min).toBeGreaterThanOrEqual(0);
    expect(result.afterExpiryMs).toBeLessThanOrEqual(RECLAIM_DEADLINE_MS);

    expect(await redis.zcard(createKeys(svc.keyPrefix).status(p, 'held'))).toBe(0);
    const lineHeld = await Promise.all(customers.map((c) => lineNum(createKeys(svc.keyPrefix), p, c, 'held')));
    expect(lineHeld.every((h) => h === 0)).toBe(true);

    let expired = 0;
    for (const record of await readAllRecords(redis, createKeys(svc.keyPrefix), p)) {
      expect(record.status).toBe('expired');
      expired++;
    }
    expect(expired).toBe(HOLDS);
    expect(await hgetNum(poolKey, 'committed')).toBe(0);
    // Each hold was reclaimed once and counted once (by the sweeper, or lazily by a later reserve).
    expect((await reclaimedCounter(svc, 'all')) - reclaimedAtStart).toBe(HOLDS);
  });
});

describe('lazy reclamation (API-only instance: no sweeper)', () => {
  let svc: ServiceContext;
  beforeAll(async () => {
    svc = await startServiceContext({ ROLE: 'api' });
  });
  afterAll(() => svc?.stop());

  it('a reserve after expiry sees the quota back', async () => {
    const p = uniqueId('p');
    await setUpProduct(svc, p, 100, { c1: 100, c2: 100 });
    const poolKey = createKeys(svc.keyPrefix).pool(p);

    const first = await svc.client(
      'POST',
      `/v1/products/${p}/reservations`,
      { customerId: 'c1', amount: 100, ttlSeconds: 1 },
      { 'Idempotency-Key': 'a' },
    );
    expect(first.status).toBe(201);
    // While the hold lives, neither the line nor the pool can cover more.
    const early = await svc.client(
      'POST',
      `/v1/products/${p}/reservations`,
      { customerId: 'c2', amount: 1 },
      { 'Idempotency-Key': 'b' },
    );
    expect(early.status).toBe(409);
    expect(early.body.code).toBe('POOL_EXHAUSTED');

    const expiresAt = Date.parse(first.body.expiresAt);
    while ((await redisNow()) < expiresAt + 50) await sleep(50);
    // No sweeper runs here: the counters still carry the expired hold...
    expect(await hgetNum(poolKey, 'held')).toBe(100);

    // ...until the product's own script runs.
    const after = await svc.client(
      'POST',
      `/v1/products/${p}/reservations`,
      { customerId: 'c2', amount: 100 },
      { 'Idempotency-Key': 'c' },
    );
    expect(after.status).toBe(201);
    expect(await hgetNum(poolKey, 'held')).toBe(100);
    expect(await lineNum(createKeys(svc.keyPrefix), p, 'c1', 'held')).toBe(0);
    expect(await lineNum(createKeys(svc.keyPrefix), p, 'c2', 'held')).toBe(100);
    expect((await readRecord(redis, createKeys(svc.keyPrefix), p, first.body.reservationId))?.status).toBe('expired');

    // The expired hold cannot be committed; releasing it answers 200 expired.
    const commit = await svc.client('POST', `/v1/products/${p}/reservations/${first.body.reservationId}/commit`, {});
    expect(commit.status).toBe(409);
    expect(commit.body.code).toBe('RESERVATION_EXPIRED');
    const release = await svc.client('POST', `/v1/products/${p}/reservations/${first.body.reservationId}/release`, {});
    expect(release.status).toBe(200);
    expect(release.body.status).toBe('expired');
    expect(await hgetNum(poolKey, 'held')).toBe(100);
  });

  it("the same line's own limit comes back on a reserve after expiry", async () => {
    const p = uniqueId('p');
    await setUpProduct(svc, p, 1_000, { c1: 100 });
    const first = await svc.client(
      'POST',
      `/v1/products/${p}/reservations`,
      { customerId: 'c1', amount: 100, ttlSeconds: 1 },
      { 'Idempotency-Key': 'a' },
    );
    expect(first.status).toBe(201);
    const early = await svc.client(
      'POST',
      `/v1/products/${p}/reservations`,
      { customerId: 'c1', amount: 1 },
      { 'Idempotency-Key': 'b' },
    );
    expect(early.body.code).toBe('CUSTOMER_LIMIT_EXCEEDED');
    const expiresAt = Date.parse(first.body.expiresAt);
    while ((await redisNow()) < expiresAt + 50) await sleep(50);
    const after = await svc.client(
      'POST',
      `/v1/products/${p}/reservations`,
      { customerId: 'c1', amount: 100 },
      { 'Idempotency-Key': 'c' },
    );
    expect(after.status).toBe(201);
    expect(await hgetNum(createKeys(svc.keyPrefix).pool(p), 'held')).toBe(100);
    expect(await lineNum(createKeys(svc.keyPrefix), p, 'c1', 'held')).toBe(100);
  });
});

describe('two instances on one Redis and key prefix', () => {
  const keyPrefix = uniqueId('shared');
  const services: ServiceContext[] = [];
  const call = (
    service: ServiceContext,
    method: string,
    path: string,
    body: unknown,
    key: string,
    headers: Record<string, string> = {},
  ) => service.call(method, path, { body, key, headers });

  beforeAll(async () => {
    // A short interval makes the two schedulers compete hard.
    for (let i = 0; i < 2; i++)
      services.push(await startServiceContext({ KEY_PREFIX: keyPrefix, SWEEP_INTERVAL_MS: '100' }));
  });
  afterAll(async () => {
    await Promise.all(services.map((s) => s.stop()));
  });

  it('reclaims every expired hold exactly once; counters exact, never negative; one sweep at a time', async () => {
    const [a, b] = services as [ServiceContext, ServiceContext];
    const p = uniqueId('p');
    const customers = Array.from({ length: 50 }, (_, i) => `c${i}`);
    expect((await call(a, 'PUT', `/v1/products/${p}`, { capacity: 1_000_000 }, ADMIN_KEY)).status).toBe(201);
    for (const c of customers)
      expect((await call(b, 'PUT', `/v1/products/${p}/customers/${c}`, { limit: 100_000 }, ADMIN_KEY)).status).toBe(
        201,
      );

    const poolKey = createKeys(keyPrefix).pool(p);
    const HOLDS = 600;
    let expiresAt = 0;
    let granted = 0;
    await bounded(HOLDS, 50, async (i) => {
      // 6 s: every reserve lands before the first hold falls due, even on a loaded machine.
      const r = await call(
        i % 2 ? a : b,
        'POST',
        `/v1/products/${p}/reservations`,
        { customerId: customers[i % customers.length], amount: 7, ttlSeconds: 6 },
        CLIENT_KEY,
        {
          'Idempotency-Key': `k${i}`,
        },
      );
      expect(r.status).toBe(201);
      granted++;
      expiresAt = Math.max(expiresAt, Date.parse(r.body.expiresAt));
    });
    expect(granted).toBe(HOLDS);
    // One atomic read: a sweep must not fall between the two.
    const replies = (await redis.multi().zcard(createKeys(keyPrefix).status(p, 'held')).hget(poolKey, 'held').exec())!;
    const liveBefore = Number(replies[0]![1]);
    expect(Number(replies[1]![1])).toBe(liveBefore * 7);

    // Watch the queue while both instances sweep: never more than one sweep job active.
    const queueConnection = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    const queue = new Queue(SWEEP_JOB, { connection: queueConnection, prefix: createKeys(keyPrefix).queuePrefix() });
    let maxActive = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        maxActive = Math.max(maxActive, await queue.getActiveCount());
        await sleep(5);
      }
    })();

    try {
      const result = await waitForPoolHeldZero(poolKey, expiresAt, 10_000);
      console.log(
        `[expiry] two instances, ${HOLDS} holds: pool held back to 0 ${result.afterExpiryMs} ms after the ` +
          `last expiry; min held seen ${result.min}; max active sweep jobs seen ${maxActive}`,
      );
      expect(result.held).toBe(0);
      expect(result.min).toBeGreaterThanOrEqual(0);
      expect(result.afterExpiryMs).toBeLessThanOrEqual(RECLAIM_DEADLINE_MS);

      // Keep both sweeping for a while longer: nothing may go below zero.
      const until = Date.now() + 1_000;
      while (Date.now() < until) {
        expect(await hgetNum(poolKey, 'held')).toBe(0);
        await sleep(50);
      }
    } finally {
      watching = false;
      await watcher;
      await queue.close();
      queueConnection.disconnect();
    }
    expect(maxActive).toBeLessThanOrEqual(1);

    const lineHeld = await Promise.all(customers.map((c) => lineNum(createKeys(keyPrefix), p, c, 'held')));
    expect(lineHeld).toEqual(customers.map(() => 0));
    expect(await hgetNum(poolKey, 'committed')).toBe(0);
    expect(await redis.zcard(createKeys(keyPrefix).status(p, 'held'))).toBe(0);

    // Each hold was reclaimed once: the two sweepers' reclaim counters add up
    // to exactly the holds that were live when the reserves ended (the rest
    // were reclaimed lazily by later reserves).
    const swept = (await reclaimedCounter(a)) + (await reclaimedCounter(b));
    const expired = (await readAllRecords(redis, createKeys(keyPrefix), p)).filter(
      (r) => r.status === 'expired',
    ).length;
    console.log(
      `[expiry] two instances: ${liveBefore} holds live after the reserves, ` +
        `reclaimed by the sweepers ${swept}, expired records ${expired}`,
    );
    expect(expired).toBe(HOLDS);
    expect(swept).toBe(liveBefore);
    // Every call went through a or b, so counting lazy returns too, each expiry is counted exactly once.
    expect((await reclaimedCounter(a, 'all')) + (await reclaimedCounter(b, 'all'))).toBe(HOLDS);
  });
});
