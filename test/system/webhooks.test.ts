/**
 * Webhooks (CONTRACT.md "Events (webhooks)"), against real processes: a real
 * redis-server, the service (in-process, then spawned and SIGKILLed), BullMQ,
 * the test ledger, and a real receiver (test/support/webhookReceiver.ts) that
 * verifies every signature and dedupes by id.
 *
 *  1. Every event type is delivered, signed, with the data the contract says;
 *     creating a line or product, or a write that changes nothing, sends none;
 *     a sharded product's product.status_changed shows the product's totals
 *     and sub-pools, as the API's snapshot does.
 *  2. A flaky receiver (~30% failures, half of them after recording) and a
 *     SIGKILL of the service mid-delivery: every event arrives at least once,
 *     exactly once after dedupe, none lost, each subject in order; figures
 *     printed (events, deliveries, duplicates, time to drain).
 *  3. On a Redis Cluster (products on every master): all delivered, in order;
 *     a sharded product's status event shows the totals of its sub-pools.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLedgerServer, type LedgerServer } from '../../testLedger/ledgerServer.js';
import { freePort, startRedisServer, type RedisServerHandle } from '../../src/redis/redisServer.js';
import {
  ADMIN_KEY,
  admin,
  commit,
  getPool,
  getReservation,
  hold,
  makeLine,
  makeProduct,
  patchProduct,
  uniqueId,
} from '../support/api.js';
import { createQuotaEngine } from '../../src/engine/quotaEngine.js';
import { shardOfCustomer, withShardList } from '../../src/engine/shards.js';
import { createWebhookOutbox } from '../../src/webhooks/webhookOutbox.js';
import { fieldsOf } from '../../src/webhooks/webhookEvents.js';
import { decodePool } from '../../src/engine/decode.js';
import { poolJson } from '../../src/wireFormat.js';
import { createEngineContext } from '../support/engineContext.js';
import { productsPerMaster, startLocalCluster, type LocalCluster } from '../support/redisCluster.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import { apiKeysEnv, request, type HttpAnswer } from '../support/http.js';
import {
  buildService,
  killService,
  spawnService,
  waitServiceReady,
  type ServiceBuild,
  type ServiceProcess,
} from '../support/serviceProcess.js';
import { sleep, waitFor } from '../support/wait.js';
import {
  outOfOrder,
  startWebhookReceiver,
  subjectOf,
  type ReceivedEvent,
  type WebhookReceiver,
} from '../support/webhookReceiver.js';

const SECRET = 'webhook-test-secret-0001';

const ofType = (events: ReceivedEvent[], type: string, productId: string) =>
  events.filter((e) => e.type === type && e.productId === productId);

describe('webhooks: every event type, signed', () => {
  let receiver: WebhookReceiver;
  let ledger: LedgerServer;
  let svc: ServiceContext;

  beforeAll(async () => {
    receiver = await startWebhookReceiver({ secret: SECRET });
    ledger = createLedgerServer({ secret: 'settlement-secret-0001', rejectCustomers: ['c-rejected'] });
    await ledger.start();
    svc = await startServiceContext({
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_RELAY_INTERVAL_MS: '200',
      SETTLEMENT_URL: ledger.url,
      SETTLEMENT_SECRET: 'settlement-secret-0001',
      SETTLEMENT_ATTEMPTS: '1',
      SETTLEMENT_TIMEOUT_MS: '500',
      SWEEP_INTERVAL_MS: '200',
    });
  });
  afterAll(async () => {
    await svc?.stop();
    await ledger?.stop();
    await receiver?.close();
  });

  it('delivers each of the eight types with its data; creations and no-op writes send none', async () => {
    const p = await makeProduct(svc, { capacity: 100_000, holdTtlSeconds: 60 });
    for (const c of ['c-ok', 'c-rejected', 'c-unknown', 'c-expire', 'c-line'])
      await makeLine(svc, p, c, { limit: 10_000 });

    // settlement_unknown: the ledger is down for this one (1 attempt, the look-up fails too); then resolved.
    ledger.control({ down: true });
    const unknown = await hold(svc, p, 'c-unknown', 300);
    expect((await commit(svc, p, unknown.reservationId)).status).toBe(200);
    await waitFor(
      'settlement_unknown',
      async () =>
        (await getReservation(svc, p, unknown.reservationId)).status === 'settlement_unknown' ? true : undefined,
      { timeoutMs: 15_000 },
    );
    ledger.control({ down: false });
    const resolved = await admin(svc, 'POST', `/v1/products/${p}/reservations/${unknown.reservationId}/resolve`, {
      outcome: 'settled',
    });
    expect(resolved.status).toBe(200);

    const ok = await hold(svc, p, 'c-ok', 100);
    const rejected = await hold(svc, p, 'c-rejected', 200);
    expect((await commit(svc, p, ok.reservationId)).status).toBe(200);
    expect((await commit(svc, p, rejected.reservationId)).status).toBe(200);
    const expiring = await hold(svc, p, 'c-expire', 400, { ttlSeconds: 1 });

    await makeLine(svc, p, 'c-line', { limit: 10_000 }); // the same: no event
    await makeLine(svc, p, 'c-line', { limit: 10_000, status: 'frozen', statusReason: 'fraud check' });
    await makeLine(svc, p, 'c-line', { limit: 20_000, status: 'frozen', statusReason: 'fraud check' });
    await makeLine(svc, p, 'c-new', { limit: 5_000 }); // a new line: no event
    // A bulk import: two new lines (no event) and an existing one whose status changes (one event).
    const ndjson = [
      { customerId: 'c-bulk-1', limit: 1_000 },
      { customerId: 'c-bulk-2', limit: 2_000 },
      { customerId: 'c-ok', limit: 10_000, status: 'closed' },
    ]
      .map((l) => JSON.stringify(l))
      .join('\n');
    const bulk = await svc.call('POST', `/v1/products/${p}/customers:bulk`, {
      body: ndjson,
      key: ADMIN_KEY,
      headers: { 'content-type': 'application/x-ndjson' },
    });
    expect(bulk.status, JSON.stringify(bulk.body)).toBe(200);
    await patchProduct(svc, p, { capacity: 200_000 }); // no status written: no event
    await patchProduct(svc, p, { status: 'paused', pauseReason: 'maintenance' });

    const want = [
      'reservation.settlement_unknown',
      'reservation.resolved',
      'reservation.settled',
      'reservation.reversed',
      'reservation.expired',
      'line.status_changed',
      'line.limit_changed',
      'product.status_changed',
    ];
    await waitFor(
      'all eight types',
      () => (want.every((t) => ofType(receiver.events, t, p).length > 0) ? true : undefined),
      { timeoutMs: 20_000, explain: () => JSON.stringify(receiver.events.map((e) => e.type)) },
    );
    await sleep(600); // a relay run or two more: nothing else may come
    const mine = receiver.events.filter((e) => e.productId === p);
    expect(mine.map((e) => e.type).sort()).toEqual([...want, 'line.status_changed'].sort());
    expect(receiver.stats).toMatchObject({ badSignatures: 0, badRequests: 0, duplicates: 0 });

    const one = (type: string) => ofType(mine, type, p)[0]!;
    for (const e of mine) {
      expect(Object.keys(e).sort()).toEqual(['data', 'id', 'occurredAt', 'productId', 'type']);
      expect(e.occurredAt).toMatch(/^\d{4}-\d{2}-\d{2}T.*Z$/);
    }
    expect(one('reservation.settlement_unknown').data).toMatchObject({
      reservationId: unknown.reservationId,
      status: 'settlement_unknown',
      committedAmount: 300,
    });
    expect(one('reservation.resolved').data).toMatchObject({ reservationId: unknown.reservationId, status: 'settled' });
    expect(one('reservation.settled').data).toMatchObject({
      reservationId: ok.reservationId,
      customerId: 'c-ok',
      status: 'settled',
      committedAmount: 100,
    });
    expect(one('reservation.reversed').data).toMatchObject({
      reservationId: rejected.reservationId,
      status: 'reversed',
    });
    expect(one('reservation.expired').data).toMatchObject({
      reservationId: expiring.reservationId,
      status: 'expired',
      amount: 400,
    });
    const bulkEvent = ofType(mine, 'line.status_changed', p).find((e) => e.data.customerId === 'c-ok');
    expect(bulkEvent?.data).toMatchObject({
      before: { status: 'active' },
      after: { status: 'closed', blockers: ['ACCOUNT_CLOSED'] },
    });
    expect(ofType(mine, 'line.status_changed', p).find((e) => e.data.customerId === 'c-line')?.data).toMatchObject({
      customerId: 'c-line',
      before: { status: 'active', limit: 10_000 },
      after: {
        status: 'frozen',
        statusReason: 'fraud check',
        limit: 10_000,
        drawable: 0,
        blockers: ['ACCOUNT_FROZEN'],
      },
    });
    expect(one('line.limit_changed').data).toMatchObject({
      customerId: 'c-line',
      before: { limit: 10_000 },
      after: { limit: 20_000 },
    });
    expect(one('product.status_changed').data).toMatchObject({
      productId: p,
      status: 'paused',
      pauseReason: 'maintenance',
      capacity: 200_000,
      shards: [{ index: 0, allotment: 200_000 }],
    });
    // An unsharded product's data is the entry the script recorded (no read at delivery), listing its one sub-pool
    // as every pool snapshot does.
    const ctx = await createEngineContext(svc.keyPrefix);
    try {
      const entries = (await ctx.redis.xrange(ctx.keys.events(p), '-', '+')) as [string, string[]][];
      const recorded = entries.map(([, flat]) => fieldsOf(flat)).find((f) => f.webhook === 'product.status_changed');
      const asRecorded = poolJson(withShardList(decodePool(p, JSON.parse(recorded!.data!) as Record<string, unknown>)));
      expect(JSON.stringify(one('product.status_changed').data)).toBe(JSON.stringify(asRecorded));
    } finally {
      await ctx.close();
    }
    // Order per subject: the unknown outcome before its resolve.
    expect(outOfOrder(mine)).toEqual([]);

    const metrics = (await svc.call('GET', '/metrics', { key: null })).body as string;
    expect(metrics).toMatch(/quota_webhook_deliveries_total\{outcome="delivered"\} ([1-9]\d*)/);
    expect(metrics).toMatch(/quota_webhook_backlog\{stage="outbox"\} \d+/);
    expect(metrics).toMatch(/quota_webhook_oldest_pending_age_seconds \d/);
    expect(metrics).toMatch(/bullmq_job_count\{queue="webhooks"/);
    expect(metrics.match(/^# TYPE bullmq_job_count /gm)).toHaveLength(1); // two queues' exports, one family
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    if (!promtool.error)
      expect(promtool.stdout + promtool.stderr).not.toMatch(/pars(e|ing) error|error while linting/i);
  });

  it("a sharded product's product.status_changed shows its totals and sub-pools, as the API does", async () => {
    // 4 sub-pools; two customers in each, so every sub-pool holds something and sub-pool 0 holds a small part.
    const p = await makeProduct(svc, { capacity: 40_000, shards: 4, holdTtlSeconds: 600 });
    const customers: string[] = [];
    for (let i = 0; customers.length < 8; i++) {
      const c = `c-${i}`;
      if (customers.filter((x) => shardOfCustomer(x, 4) === shardOfCustomer(c, 4)).length < 2) customers.push(c);
    }
    let amount = 100;
    const holds = [];
    for (const c of customers) {
      await makeLine(svc, p, c, { limit: 10_000 });
      holds.push(await hold(svc, p, c, (amount += 100)));
    }
    // Some committed too: the totals' committed is the product's.
    for (const h of holds.slice(0, 3)) expect((await commit(svc, p, h.reservationId)).status).toBe(200);
    // Settled before the change, so no counter moves between the event's read and the API's below.
    await waitFor('the commits settled', async () => {
      const pool = (await getPool(svc, p)) as { committed: number; settled: number };
      return pool.settled === pool.committed;
    });

    await patchProduct(svc, p, { status: 'paused', pauseReason: 'stock count' });
    const api = (await getPool(svc, p)) as Record<string, any>;
    expect(api.shards).toHaveLength(4);
    expect(api.shards.every((s: { held: number; committed: number }) => s.held + s.committed > 0)).toBe(true);

    const event = await waitFor(
      'the sharded product.status_changed',
      () => ofType(receiver.events, 'product.status_changed', p)[0],
      { timeoutMs: 20_000 },
    );
    const data = event.data as Record<string, any>;
    expect(data).toMatchObject({ productId: p, status: 'paused', pauseReason: 'stock count', capacity: 40_000 });
    // The product's totals, as GET /v1/products/{id} answers them (nothing changed them since: long holds).
    expect({ held: data.held, committed: data.committed, available: data.available }).toEqual({
      held: api.held,
      committed: api.committed,
      available: api.available,
    });
    expect(data.held + data.committed).toBe(holds.reduce((sum, h) => sum + h.amount, 0));
    // The same shape and meaning as the API's snapshot: every field, the same values (status included); the
    // rebalancer may move allotments (and have quota in transit) between the two reads, not the use.
    expect(Object.keys(data)).toEqual(Object.keys(api));
    const steady = (pool: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(pool).filter(([field]) => field !== 'shards' && field !== 'inTransit'));
    expect(steady(data)).toEqual(steady(api));
    type Shard = { index: number; allotment: number; held: number; committed: number };
    const use = (list: Shard[]) => list.map(({ index, held, committed }) => ({ index, held, committed }));
    expect(use(data.shards)).toEqual(use(api.shards));
    const allotments = (data.shards as Shard[]).reduce((sum, s) => sum + s.allotment, 0);
    expect(allotments + data.inTransit + data.withheld).toBe(data.capacity);
  });
});

describe('webhooks: the scripts record them only with the flag', () => {
  // The same changes through an engine with webhooks off and one with them on: only the second writes webhook entries.
  it.each([false, true])('webhooks %s', async (webhooks) => {
    const ctx = await createEngineContext();
    try {
      const engine = createQuotaEngine({ redis: ctx.redis, keys: ctx.keys, webhooks });
      const p = uniqueId('p');
      expect((await engine.upsertProduct(p, { capacity: 1_000 }, 'put')).ok).toBe(true);
      expect(
        (
          await engine.upsertLines(p, [
            { customerId: 'c1', limit: 500, status: 'active', statusReason: null, tier: null },
          ])
        ).ok,
      ).toBe(true);
      expect(
        (
          await engine.upsertLines(p, [
            { customerId: 'c1', limit: 400, status: 'frozen', statusReason: null, tier: null },
          ])
        ).ok,
      ).toBe(true);
      expect((await engine.upsertProduct(p, { status: 'paused' }, 'patch')).ok).toBe(true);
      expect((await engine.upsertProduct(p, { status: 'open' }, 'patch')).ok).toBe(true);
      expect(
        (
          await engine.upsertLines(p, [
            { customerId: 'c1', limit: 400, status: 'active', statusReason: null, tier: null },
          ])
        ).ok,
      ).toBe(true);
      expect(
        (
          await engine.reserve({
            productId: p,
            customerId: 'c1',
            reservationId: 'r1',
            amount: 100,
            idempotencyKey: 'k1',
            fingerprint: 'f1',
          })
        ).ok,
      ).toBe(true);
      expect((await engine.commit(p, 'r1')).ok).toBe(true);
      expect((await engine.recordSettlement(p, 'r1', 'unknown', 'timeout')).ok).toBe(true);
      expect((await engine.recordSettlement(p, 'r1', 'settled', 'checked', 'settlement_unknown')).ok).toBe(true);
      const entries = (await ctx.redis.xrange(ctx.keys.events(p), '-', '+')) as [string, string[]][];
      const types = entries
        .map(([, f]) => f)
        .filter((f) => f[0] === 'webhook')
        .map((f) => f[1]);
      expect(types).toEqual(
        webhooks
          ? [
              'line.status_changed',
              'line.limit_changed',
              'product.status_changed',
              'product.status_changed',
              'line.status_changed',
              'reservation.settlement_unknown',
              'reservation.resolved',
            ]
          : [],
      );
      // The transitions (the audit trail, reservation.expired's source) are there either way.
      expect(entries.filter(([, f]) => f[0] === 'reservationId').map(([, f]) => f[5])).toEqual([
        'held',
        'committed',
        'settlement_unknown',
        'settled',
      ]);
    } finally {
      await ctx.close();
    }
  });
});

describe('webhooks: the outbox counts only what follows "webhooks on"', () => {
  it(
    'a product with history from before: its backlog is the ' + 'entries since, then 0 once read and acknowledged',
    async () => {
      const ctx = await createEngineContext();
      try {
        const before = createQuotaEngine({ redis: ctx.redis, keys: ctx.keys, webhooks: false });
        const p = uniqueId('p');
        expect((await before.upsertProduct(p, { capacity: 1_000 }, 'put')).ok).toBe(true);
        expect(
          (
            await before.upsertLines(p, [
              { customerId: 'c1', limit: 500, status: 'active', statusReason: null, tier: null },
            ])
          ).ok,
        ).toBe(true);
        for (const id of ['r1', 'r2', 'r3']) {
          expect(
            (
              await before.reserve({
                productId: p,
                customerId: 'c1',
                reservationId: id,
                amount: 10,
                idempotencyKey: id,
                fingerprint: id,
              })
            ).ok,
          ).toBe(true);
          expect((await before.commit(p, id)).ok).toBe(true);
        }
        await ctx.redis.xtrim(ctx.keys.events(p), 'MAXLEN', 4); // history trimmed, as by the stream's cap
        await sleep(5);
        const outbox = createWebhookOutbox(ctx.redis, ctx.keys);
        await outbox.startId(); // webhooks turned on now
        const after = createQuotaEngine({ redis: ctx.redis, keys: ctx.keys, webhooks: true });
        expect(
          (
            await after.upsertLines(p, [
              { customerId: 'c1', limit: 400, status: 'active', statusReason: null, tier: null },
            ])
          ).ok,
        ).toBe(true);
        expect(
          (
            await after.reserve({
              productId: p,
              customerId: 'c1',
              reservationId: 'r4',
              amount: 10,
              idempotencyKey: 'r4',
              fingerprint: 'r4',
            })
          ).ok,
        ).toBe(true);
        expect(await ctx.redis.xlen(ctx.keys.events(p))).toBe(6); // 4 kept from before, 2 since

        expect(await outbox.backlog([p])).toMatchObject([{ missing: true }]);
        await outbox.ensureGroup(p);
        expect(await outbox.backlog([p])).toMatchObject([{ missing: false, lag: 2, pending: 0 }]);
        const entries = await outbox.next(p, 10); // creates the group on the first drain
        expect(entries.map(([, f]) => f?.[0])).toEqual(['webhook', 'reservationId']);
        expect(await outbox.backlog([p])).toMatchObject([{ missing: false, lag: 0, pending: 2 }]);
        await outbox.ack(
          p,
          entries.map(([id]) => id),
        );
        expect(await outbox.backlog([p])).toMatchObject([{ lag: 0, pending: 0 }]);
        expect((await after.release(p, 'r4')).ok).toBe(true);
        expect(await outbox.backlog([p])).toMatchObject([{ lag: 1, pending: 0 }]);
      } finally {
        await ctx.close();
      }
    },
  );
});

// ---------------------------------------------------------------------------
// 2. A flaky receiver and a SIGKILL of the service (a spawned, built process)
// ---------------------------------------------------------------------------

const ADMIN = 'hooks-admin-key-0001';
const CLIENT = 'hooks-client-key-0001';

async function call(base: string, method: string, path: string, body?: unknown, key = ADMIN): Promise<HttpAnswer> {
  const idempotency: Record<string, string> =
    method === 'POST' && path.endsWith('/reservations') ? { 'idempotency-key': uniqueId('k') } : {};
  return request(base, method, path, {
    body,
    key,
    headers: { 'content-type': 'application/json', ...idempotency },
    timeoutMs: 10_000,
  });
}

describe('webhooks: flaky receiver and a service SIGKILL', () => {
  let redis: RedisServerHandle | undefined;
  let redisDir = '';
  let receiver: WebhookReceiver;
  let service: ServiceProcess | undefined;
  let build: ServiceBuild | undefined;
  let port = 0;
  const keyPrefix = uniqueId('hooks');

  beforeAll(async () => {
    build = await buildService('webhooks');
    redisDir = mkdtempSync(join(tmpdir(), 'qa-hooks-redis-'));
    redis = await startRedisServer({ appendOnly: true, dir: redisDir });
    receiver = await startWebhookReceiver({ secret: SECRET, failRate: 0.3, seed: 12, latencyMs: 2 });
    port = await freePort();
  }, 120_000);
  afterAll(async () => {
    await killService(service);
    await receiver?.close();
    await redis?.stop();
    build?.remove();
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
  });

  async function startService(): Promise<string> {
    service = spawnService(build!.entry, {
      NODE_ENV: 'test',
      PORT: String(port),
      HOST: '127.0.0.1',
      REDIS_URL: redis!.url,
      KEY_PREFIX: keyPrefix,
      QUOTA_API_KEYS: apiKeysEnv({ admin: ADMIN, client: CLIENT }),
      LOG_LEVEL: 'error',
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_RELAY_INTERVAL_MS: '200',
      WEBHOOK_BACKOFF_MS: '50',
      WEBHOOK_LOCK_MS: '2000',
      SETTLEMENT_LOCK_MS: '2000',
      SWEEP_INTERVAL_MS: '200',
      RELAY_INTERVAL_MS: '300',
      RELAY_GRACE_MS: '300',
    });
    const base = `http://127.0.0.1:${port}`;
    await waitServiceReady(base, service, 30_000);
    return base;
  }

  /** Changes that each produce known events; returns them as `type|subject`. */
  async function makeEvents(base: string, customers: number): Promise<string[]> {
    const expected: string[] = [];
    const p = uniqueId('p');
    expect((await call(base, 'PUT', `/v1/products/${p}`, { capacity: 10_000_000, holdTtlSeconds: 60 })).status).toBe(
      201,
    );
    for (let i = 0; i < customers; i++) {
      const c = `c${i}`;
      expect((await call(base, 'PUT', `/v1/products/${p}/customers/${c}`, { limit: 100_000 })).status).toBe(201);
      const r = await call(base, 'POST', `/v1/products/${p}/reservations`, { customerId: c, amount: 100 + i }, CLIENT);
      expect(r.status).toBe(201);
      expect(
        (await call(base, 'POST', `/v1/products/${p}/reservations/${r.body.reservationId}/commit`, undefined, CLIENT))
          .status,
      ).toBe(200);
      expected.push(`reservation.settled|${p}/reservation/${r.body.reservationId}`);
      if (i % 4 === 0) {
        const e = await call(
          base,
          'POST',
          `/v1/products/${p}/reservations`,
          { customerId: c, amount: 50, ttlSeconds: 1 },
          CLIENT,
        );
        expect(e.status).toBe(201);
        expected.push(`reservation.expired|${p}/reservation/${e.body.reservationId}`);
      }
      for (const change of [
        { limit: 100_000, status: 'frozen' },
        { limit: 100_000, status: 'active' },
        { limit: 120_000, status: 'active', statusReason: null, tier: null },
      ]) {
        expect((await call(base, 'PUT', `/v1/products/${p}/customers/${c}`, change)).status).toBe(200);
        expected.push(`line.${change.limit === 100_000 ? 'status' : 'limit'}_changed|${p}/line/${c}`);
      }
    }
    for (const status of ['paused', 'open']) {
      expect((await call(base, 'PATCH', `/v1/products/${p}`, { status })).status).toBe(200);
      expected.push(`product.status_changed|${p}/product`);
    }
    return expected;
  }

  const received = () => receiver.events.map((e) => `${e.type}|${subjectOf(e)}`);
  const missing = (expected: string[]) => {
    const left = [...received()];
    return expected.filter((x) => {
      const i = left.indexOf(x);
      if (i < 0) return true;
      left.splice(i, 1);
      return false;
    });
  };

  it(
    'each event at least once, exactly once after dedupe, none ' + 'lost across a SIGKILL, in order per subject',
    async () => {
      let base = await startService();
      receiver.setLatency(300); // a slow receiver first, so the kill finds most events undelivered
      const expected = await makeEvents(base, 40);
      // Kill while deliveries are under way (some received, not all).
      await waitFor('some deliveries', () => (receiver.events.length >= expected.length / 5 ? true : undefined), {
        timeoutMs: 20_000,
      });
      const receivedAtKill = receiver.events.length;
      await killService(service);
      expect(receivedAtKill, 'the kill must come before everything was delivered').toBeLessThan(expected.length * 0.8);
      receiver.setLatency(2);

      const restartAt = performance.now();
      base = await startService();
      expected.push(...(await makeEvents(base, 40)));
      const madeAt = performance.now();
      await waitFor(`all ${expected.length} events`, () => (missing(expected).length === 0 ? true : undefined), {
        timeoutMs: 90_000,
        explain: () => `missing ${missing(expected).length}: ${missing(expected).slice(0, 10).join(', ')}`,
      });
      const drainMs = performance.now() - madeAt;
      const sinceRestartMs = performance.now() - restartAt;
      await sleep(1_000); // nothing more may come
      const got = received();
      expect(got.length).toBe(expected.length); // no event the changes did not make, none twice after dedupe
      expect([...got].sort()).toEqual([...expected].sort());
      expect(new Set(receiver.events.map((e) => e.id)).size).toBe(expected.length);
      expect(outOfOrder(receiver.events)).toEqual([]);
      const s = receiver.stats;
      expect(s.badSignatures).toBe(0);
      expect(s.badRequests).toBe(0);
      expect(s.failedAfter).toBeGreaterThan(0); // the flaky receiver did fail after recording
      expect(s.duplicates).toBeGreaterThan(0);
      expect(s.deliveries).toBe(expected.length + s.duplicates + s.failedBefore);
      console.log(
        `webhooks, flaky receiver (30% failures, half after recording) + ` +
          `SIGKILL: events ${expected.length}, deliveries ${s.deliveries}, ` +
          `duplicates ${s.duplicates}, failed before recording ${s.failedBefore}, after recording ${s.failedAfter}, ` +
          (`received before the kill ${receivedAtKill} of ${expected.length / 2}, time to ` +
            `drain after the last change ${(drainMs / 1000).toFixed(1)} s `) +
          `(restart to all delivered ${(sinceRestartMs / 1000).toFixed(1)} s, phase 2's 172 changes included)`,
      );
    },
    180_000,
  );
});

// ---------------------------------------------------------------------------
// 3. On a Redis Cluster: products on every master, the backlog read per node
// ---------------------------------------------------------------------------

describe('webhooks on a Redis Cluster', () => {
  let cluster: LocalCluster | undefined;
  let receiver: WebhookReceiver;
  let svc: ServiceContext | undefined;

  beforeAll(async () => {
    cluster = await startLocalCluster();
    receiver = await startWebhookReceiver({ secret: SECRET, failRate: 0.2, seed: 3 });
    svc = await startServiceContext({
      REDIS_CLUSTER_NODES: cluster.seeds,
      KEY_PREFIX: uniqueId('hooksc'),
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_RELAY_INTERVAL_MS: '200',
      WEBHOOK_BACKOFF_MS: '50',
      SWEEP_INTERVAL_MS: '300',
      AUDIT_INTERVAL_MS: '3600000',
    });
  }, 120_000);
  afterAll(async () => {
    await svc?.stop();
    await receiver?.close();
    await cluster?.stop();
  });

  it('delivers the events of products on every master, each once after dedupe, in order', async () => {
    const byMaster = await productsPerMaster(cluster!, (p) => `${svc!.keyPrefix}:{${p}}:events`, 2, 'pc');
    const products = [...byMaster.values()].flat();
    expect(byMaster.size).toBeGreaterThan(1);
    const expected: string[] = [];
    for (const p of products) {
      await makeProduct(svc!, { capacity: 100_000 }, p);
      await makeLine(svc!, p, 'c1', { limit: 10_000 });
      const r = await hold(svc!, p, 'c1', 100);
      expect((await commit(svc!, p, r.reservationId)).status).toBe(200);
      expected.push(`reservation.settled|${p}/reservation/${r.reservationId}`);
      await makeLine(svc!, p, 'c1', { limit: 10_000, status: 'frozen' });
      await makeLine(svc!, p, 'c1', { limit: 9_000, status: 'frozen' });
      await patchProduct(svc!, p, { status: 'paused' });
      expected.push(
        `line.status_changed|${p}/line/c1`,
        `line.limit_changed|${p}/line/c1`,
        `product.status_changed|${p}/product`,
      );
    }
    const got = () => receiver.events.map((e) => `${e.type}|${subjectOf(e)}`).sort();
    await waitFor(`${expected.length} events`, () => (got().length >= expected.length ? true : undefined), {
      timeoutMs: 30_000,
      explain: () => got().join('\n'),
    });
    await sleep(600);
    expect(got()).toEqual([...expected].sort());
    expect(outOfOrder(receiver.events)).toEqual([]);
    expect(receiver.stats.badSignatures).toBe(0);
    const metrics = (await svc!.call('GET', '/metrics', { key: null })).body as string;
    expect(metrics).toMatch(/quota_webhook_backlog\{stage="outbox"\} 0\n/);
    expect(metrics).toMatch(/quota_webhook_oldest_pending_age_seconds 0\n/);
  }, 90_000);

  it("a sharded product's product.status_changed (sub-pools on several masters) shows its totals", async () => {
    const p = await makeProduct(svc!, { capacity: 30_000, shards: 3, holdTtlSeconds: 600 });
    const customers: string[] = [];
    for (let i = 0; new Set(customers.map((c) => shardOfCustomer(c, 3))).size < 3; i++) customers.push(`c-${i}`);
    let total = 0;
    for (const c of customers) {
      await makeLine(svc!, p, c, { limit: 10_000 });
      total += (await hold(svc!, p, c, 250)).amount as number;
    }
    await patchProduct(svc!, p, { status: 'closed' });
    const api = (await getPool(svc!, p)) as Record<string, any>;
    const event = await waitFor(
      'the sharded product.status_changed',
      () => ofType(receiver.events, 'product.status_changed', p)[0],
      { timeoutMs: 30_000 },
    );
    const data = event.data as Record<string, any>;
    expect(data).toMatchObject({ status: 'closed', capacity: 30_000, held: total, committed: 0 });
    expect({ held: data.held, committed: data.committed, available: data.available }).toEqual({
      held: api.held,
      committed: api.committed,
      available: api.available,
    });
    expect(data.shards).toHaveLength(3);
    expect(data.shards.map((s: { held: number }) => s.held)).toEqual(api.shards.map((s: { held: number }) => s.held));
  }, 60_000);
});
