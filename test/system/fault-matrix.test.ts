/**
 * The fault matrix (issue 10), end to end: the service over real HTTP
 * against a redis-server of this file's own, the test ledger over HTTP, and
 * a real worker process for the kill. Each row records what was
 * acknowledged, what of it was lost (must be nothing, except for data loss,
 * where the point is that the service heals itself) and how long recovery
 * took; the table is printed at the end.
 *
 *   Redis paused (CLIENT PAUSE)   answers 201 or 503 within 2 s; retries with the same key find the truth
 *   Redis OOM (small maxmemory)   201 until full, then 503; nothing acknowledged is lost
 *   slow clients                  300 trickling uploads: 408 for them, normal traffic unharmed
 *   ledger down                   commits acknowledged while the ledger is gone settle once it is back
 *   worker killed (SIGKILL)       commits acknowledged while it is dead settle once it restarts
 *   Redis data loss (FLUSHALL)    what was acknowledged before is gone (no persistence to recover
 *                                 from); the background jobs come back by themselves and new
 *                                 traffic settles, no restart
 */
import { connect, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLedgerServer, type LedgerServer } from '../../testLedger/ledgerServer.js';
import { createKeys } from '../../src/redis/keys.js';
import { startRedisServer, type RedisServerHandle } from '../../src/redis/redisServer.js';
import { getReservation, makeLine, makeProduct } from '../support/settlement.js';
import { uniqueId } from '../support/engineContext.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import {
  buildService,
  killService,
  spawnService,
  type ServiceBuild,
  type ServiceProcess,
} from '../support/serviceProcess.js';
import { sleep, waitUntil } from '../support/wait.js';
import { readRecord } from '../../src/redis/storedRecords.js';

const SECRET = 'fault-matrix-settlement-secret';
const BODY_TIMEOUT_MS = 1_500;

interface Row {
  fault: string;
  acknowledged: string;
  lost: string;
  recoveryMs: number | null;
  notes: string;
}
const rows: Row[] = [];

let redisServer: RedisServerHandle;
let redis: Redis;
let ledger: LedgerServer;
let svc: ServiceContext;
let worker: ServiceProcess | undefined;
let build: Promise<ServiceBuild>;

beforeAll(async () => {
  // The worker row runs the built service in a process of its own: build it while the other rows run.
  build = buildService('fault-matrix');
  build.catch(() => undefined);
  redisServer = await startRedisServer();
  redis = new Redis(redisServer.url);
  ledger = createLedgerServer({ secret: SECRET });
  await ledger.start();
  svc = await startServiceContext({
    REDIS_URL: redisServer.url,
    SETTLEMENT_URL: ledger.url,
    SETTLEMENT_SECRET: SECRET,
    SETTLEMENT_ATTEMPTS: '12',
    SETTLEMENT_BACKOFF_MS: '100',
    SETTLEMENT_TIMEOUT_MS: '1000',
    RELAY_INTERVAL_MS: '300',
    RELAY_GRACE_MS: '500',
    SWEEP_INTERVAL_MS: '200',
    BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
  });
}, 60_000);

afterAll(async () => {
  await killService(worker);
  await svc?.stop().catch(() => undefined);
  await ledger?.stop().catch(() => undefined);
  redis?.disconnect();
  await redisServer?.stop();
  (await build?.catch(() => undefined))?.remove();
  const table = [
    '| fault | acknowledged | lost | recovery | notes |',
    '|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.fault} | ${r.acknowledged} | ${r.lost} | ` +
        `${r.recoveryMs === null ? 'n/a' : `${(r.recoveryMs / 1000).toFixed(1)} s`} | ${r.notes} |`,
    ),
  ];
  console.log(`\nfault matrix\n${table.join('\n')}\n`);
}, 60_000);

const reserveOnce = (p: string, customerId: string, amount: number, key: string, metadata?: unknown) =>
  timed(() =>
    svc.client(
      'POST',
      `/v1/products/${p}/reservations`,
      { customerId, amount, ...(metadata ? { metadata } : {}) },
      { 'Idempotency-Key': key },
    ),
  );

async function timed<T>(f: () => Promise<T>): Promise<T & { ms: number }> {
  const t0 = performance.now();
  const v = await f();
  return Object.assign(v as object, { ms: performance.now() - t0 }) as T & { ms: number };
}

/** Every acknowledged hold is in the store with its amount, and the pool's held counter is their sum. */
async function lostHolds(p: string, acknowledged: Map<string, number>): Promise<string[]> {
  const lost: string[] = [];
  for (const [id, amount] of acknowledged) {
    const r = await svc.client('GET', `/v1/products/${p}/reservations/${id}`);
    if (r.status !== 200 || r.body.amount !== amount) lost.push(id);
  }
  return lost;
}

async function firstSuccessAfter(p: string): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const r = await reserveOnce(p, 'c0', 1, uniqueId('probe'));
    if (r.status === 201) return Date.now() - t0;
    if (Date.now() - t0 > 30_000) throw new Error(`no 201 within 30 s (last ${r.status})`);
    await sleep(50);
  }
}

describe('fault matrix', () => {
  it('Redis paused: 201 or 503 within 2 s; nothing acknowledged is lost; retries answer the truth', async () => {
    const p = await makeProduct(svc, 1_000_000);
    await makeLine(svc, p, 'c0');
    const pauser = new Redis(redisServer.url);
    const sent = Array.from({ length: 30 }, (_, i) => ({ key: uniqueId('pause'), amount: 1 + i }));
    await pauser.call('CLIENT', 'PAUSE', '3000', 'ALL');
    const pausedAt = Date.now();
    const answers = await Promise.all(sent.map((s) => reserveOnce(p, 'c0', s.amount, s.key)));
    pauser.disconnect();
    for (const a of answers) {
      expect([201, 503], JSON.stringify(a.body)).toContain(a.status);
      expect(a.ms).toBeLessThan(2_200);
    }
    await sleep(Math.max(0, 3_000 - (Date.now() - pausedAt)));
    const recovery = await firstSuccessAfter(p);
    const acknowledged = new Map<string, number>();
    // A 503 means "unknown": the same key again answers what really happened.
    for (const [i, s] of sent.entries()) {
      const a = answers[i]!.status === 201 ? answers[i]! : await reserveOnce(p, 'c0', s.amount, s.key);
      expect(a.status).toBe(201);
      acknowledged.set(a.body.reservationId, s.amount);
    }
    const lost = await lostHolds(p, acknowledged);
    expect(lost).toEqual([]);
    const pool = (await svc.client('GET', `/v1/products/${p}`)).body;
    const probes = pool.held - [...acknowledged.values()].reduce((a, b) => a + b, 0);
    expect(probes).toBeGreaterThanOrEqual(1); // the recovery probes' own holds of 1
    const during = answers.filter((a) => a.status === 201).length;
    rows.push({
      fault: 'Redis paused 3 s (CLIENT PAUSE ALL)',
      acknowledged:
        `${during} of 30 reserves during the pause (${30 - during} got 503, max ` +
        `${Math.round(Math.max(...answers.map((a) => a.ms)))} ms); all 30 after retrying with the same keys`,
      lost: `${lost.length}`,
      recoveryMs: recovery,
      notes: 'first 201 after the pause ended; no retry created a second hold (pool held = sum of the 30 + probes)',
    });
  }, 30_000);

  it('Redis OOM: 503 when full, nothing acknowledged lost, back when memory is freed', async () => {
    const p = await makeProduct(svc, 100_000_000);
    await makeLine(svc, p, 'c0', 100_000_000);
    const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
    await redis.config('SET', 'maxmemory', String(used + 1_500_000));
    const acknowledged = new Map<string, number>();
    let refused = 0;
    let other = 0;
    const metadata = { note: 'x'.repeat(900) };
    for (let batch = 0; batch < 80 && refused < 20; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => reserveOnce(p, 'c0', 1, uniqueId('oom'), metadata)),
      );
      for (const a of answers) {
        if (a.status === 201) acknowledged.set(a.body.reservationId, 1);
        else if (a.status === 503) refused++;
        else other++;
        expect(a.ms).toBeLessThan(2_200);
      }
    }
    expect(refused, 'Redis never filled up').toBeGreaterThan(0);
    expect(other).toBe(0);
    await redis.config('SET', 'maxmemory', '0');
    const recovery = await firstSuccessAfter(p);
    const lost = await lostHolds(p, acknowledged);
    expect(lost).toEqual([]);
    rows.push({
      fault: 'Redis OOM (maxmemory used+1.5 MB, noeviction)',
      acknowledged: `${acknowledged.size} reserves (then ${refused} got 503 OOM)`,
      lost: `${lost.length}`,
      recoveryMs: recovery,
      notes:
        'recovery: from raising maxmemory to the first 201; refusals ' +
        'were 503 (never 500) within 2 s and changed nothing',
    });
  }, 60_000);

  it('slow clients: 300 trickling uploads get 408, normal traffic is served and nothing is lost', async () => {
    const p = await makeProduct(svc, 1_000_000);
    await makeLine(svc, p, 'c0');
    const port = Number(new URL(svc.baseUrl).port);
    const sockets: Socket[] = [];
    const slowStatuses: Promise<number>[] = [];
    for (let i = 0; i < 300; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      sockets.push(s);
      slowStatuses.push(
        new Promise((resolve) => {
          let text = '';
          s.on('data', (d) => (text += d.toString()));
          s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
        }),
      );
      s.on('connect', () =>
        s.write(
          `POST /v1/products/${p}/reservations HTTP/1.1\r\nHost: x\r\nAuthorization: ` +
            `Bearer test-client-key-0001\r\nContent-Type: application/json\r\n` +
            `Idempotency-Key: ${uniqueId('slow')}\r\nContent-Length: 40\r\n\r\n{"custo`,
        ),
      );
    }
    const acknowledged = new Map<string, number>();
    const normal = await Promise.all(
      Array.from({ length: 60 }, (_, i) => reserveOnce(p, 'c0', 1 + (i % 5), uniqueId('normal'))),
    );
    for (const [i, a] of normal.entries()) {
      expect(a.status).toBe(201);
      acknowledged.set(a.body.reservationId, 1 + (i % 5));
    }
    const slow = await Promise.all(slowStatuses);
    for (const s of sockets) s.destroy();
    const counts = slow.reduce<Record<number, number>>((acc, s) => ({ ...acc, [s]: (acc[s] ?? 0) + 1 }), {});
    expect(counts[408], JSON.stringify(counts)).toBe(300);
    const lost = await lostHolds(p, acknowledged);
    expect(lost).toEqual([]);
    const pool = (await svc.client('GET', `/v1/products/${p}`)).body;
    expect(pool.held).toBe([...acknowledged.values()].reduce((a, b) => a + b, 0));
    rows.push({
      fault: `slow clients (300 uploads stalled, BODY_TIMEOUT_MS=${BODY_TIMEOUT_MS})`,
      acknowledged: `60 of 60 normal reserves (max ${Math.round(Math.max(...normal.map((a) => a.ms)))} ms)`,
      lost: `${lost.length}`,
      recoveryMs: null,
      notes: `the 300 stalled uploads: ${JSON.stringify(counts)} (408, nothing done); no 5xx`,
    });
  }, 30_000);

  it('ledger down: commits acknowledged meanwhile settle once it is back, each once', async () => {
    const p = await makeProduct(svc, 1_000_000);
    await makeLine(svc, p, 'c0');
    await ledger.stop();
    const committed: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await reserveOnce(p, 'c0', 10, uniqueId('ledger'));
      expect(r.status).toBe(201);
      const c = await svc.client('POST', `/v1/products/${p}/reservations/${r.body.reservationId}/commit`, {});
      expect(c.status).toBe(200);
      committed.push(r.body.reservationId);
    }
    await sleep(1_500);
    const backAt = Date.now();
    await ledger.start();
    await waitUntil(
      'every commit settled',
      async () => Promise.all(committed.map((id) => getReservation(svc, p, id))),
      (rs) => rs.every((r) => r.status === 'settled'),
      { timeoutMs: 30_000, everyMs: 200 },
    );
    const recovery = Date.now() - backAt;
    const applied = [...ledger.deliveries().values()].filter((e) => e.body.productId === p);
    expect(applied.map((e) => e.reservationId).sort()).toEqual([...committed].sort());
    rows.push({
      fault: 'ledger down (1.5 s+, connection refused)',
      acknowledged: '20 commits (200) while it was down',
      lost: '0',
      recoveryMs: recovery,
      notes:
        `all 20 settled, each applied once by the ledger ` +
        `(${applied.reduce((a, e) => a + e.deliveries, 0)} deliveries)`,
    });
  }, 60_000);

  it('worker killed: commits acknowledged while it is dead settle after it restarts', async () => {
    const { entry } = await build;
    // A second key space: an API-only service here, its worker a real process that gets SIGKILL.
    const prefix = uniqueId('fmw');
    const api = await startServiceContext({ REDIS_URL: redisServer.url, KEY_PREFIX: prefix, ROLE: 'api' });
    const spawnWorker = () => {
      worker = spawnService(
        entry,
        {
          REDIS_URL: redisServer.url,
          KEY_PREFIX: prefix,
          ROLE: 'worker',
          PORT: '0',
          HOST: '127.0.0.1',
          QUOTA_API_KEYS: 'admin:w-admin-key',
          LOG_LEVEL: 'warn',
          SETTLEMENT_LOCK_MS: '2000',
          RELAY_INTERVAL_MS: '300',
          RELAY_GRACE_MS: '500',
        },
        'worker',
      );
      return worker;
    };
    try {
      const p = await makeProduct(api, 1_000_000);
      await makeLine(api, p, 'c0');
      const first = spawnWorker();
      const committed: string[] = [];
      const commitOne = async () => {
        const r = await api.client(
          'POST',
          `/v1/products/${p}/reservations`,
          { customerId: 'c0', amount: 5 },
          { 'Idempotency-Key': uniqueId('w') },
        );
        expect(r.status).toBe(201);
        expect(
          (await api.client('POST', `/v1/products/${p}/reservations/${r.body.reservationId}/commit`, {})).status,
        ).toBe(200);
        committed.push(r.body.reservationId);
      };
      for (let i = 0; i < 10; i++) await commitOne();
      // Once the worker is at work, a burst of commits and the kill in the middle of it.
      await waitUntil(
        'the first worker settling',
        async () => (await getReservation(api, p, committed[0]!)).status,
        (s) => s === 'settled',
        { timeoutMs: 20_000, everyMs: 100 },
      );
      const burst = Promise.all(Array.from({ length: 5 }, commitOne));
      await sleep(20);
      const settledBeforeKill = (await Promise.all(committed.map((id) => getReservation(api, p, id)))).filter(
        (r) => r.status === 'settled',
      ).length;
      await killService(first);
      await burst;
      for (let i = 0; i < 10; i++) await commitOne();
      const restartedAt = Date.now();
      spawnWorker();
      await waitUntil(
        'every commit settled',
        async () => Promise.all(committed.map((id) => getReservation(api, p, id))),
        (rs) => rs.every((r) => r.status === 'settled'),
        { timeoutMs: 45_000, everyMs: 250 },
      );
      const recovery = Date.now() - restartedAt;
      rows.push({
        fault: 'worker killed (SIGKILL), restarted',
        acknowledged:
          `25 commits (10 before, 5 in a burst cut by the kill, ` +
          `${settledBeforeKill} settled by the kill; 10 while it was dead)`,
        lost: '0',
        recoveryMs: recovery,
        notes: 'all settled into the internal ledger after the restart (includes the worker start-up)',
      });
    } finally {
      await killService(worker);
      await api.stop().catch(() => undefined);
    }
  }, 90_000);

  it('Redis data loss (FLUSHALL): the jobs heal themselves and new traffic settles, no restart', async () => {
    const p = await makeProduct(svc, 1_000_000);
    await makeLine(svc, p, 'c0');
    const before: string[] = [];
    for (let i = 0; i < 10; i++) before.push((await reserveOnce(p, 'c0', 3, uniqueId('loss'))).body.reservationId);
    await redis.flushall();
    const lostAt = Date.now();
    const gone = (
      await Promise.all(before.map((id) => svc.client('GET', `/v1/products/${p}/reservations/${id}`)))
    ).filter((r) => r.status === 404).length;
    // The operator re-creates the product (its config is not in the service); then a commit must settle, a short hold
    // expire.
    const p2 = await makeProduct(svc, 1_000_000);
    await makeLine(svc, p2, 'c0');
    const r = await reserveOnce(p2, 'c0', 7, uniqueId('after'));
    expect(
      (await svc.client('POST', `/v1/products/${p2}/reservations/${r.body.reservationId}/commit`, {})).status,
    ).toBe(200);
    expect((await reserveOnce(p, 'c0', 1, uniqueId('h'))).status).toBe(404); // p itself is gone
    // A short hold in a product nobody touches again: only the (re-created) sweeper can expire it.
    const p3 = await makeProduct(svc, 1_000_000);
    await makeLine(svc, p3, 'c0');
    const shortHold = await svc.client(
      'POST',
      `/v1/products/${p3}/reservations`,
      { customerId: 'c0', amount: 1, ttlSeconds: 1 },
      { 'Idempotency-Key': uniqueId('h') },
    );
    expect(shortHold.status).toBe(201);
    const heldKeys = createKeys(svc.keyPrefix);
    await waitUntil(
      'the post-loss commit settled',
      () => getReservation(svc, p2, r.body.reservationId),
      (x) => x.status === 'settled',
      { timeoutMs: 30_000, everyMs: 200 },
    );
    await waitUntil(
      'the short hold expired by the sweeper',
      async () => (await readRecord(redis, heldKeys, p3, shortHold.body.reservationId))?.status,
      (status) => status === 'expired',
      { timeoutMs: 30_000, everyMs: 200 },
    );
    const recovery = Date.now() - lostAt;
    rows.push({
      fault: 'Redis data loss (FLUSHALL, no persistence to recover from)',
      acknowledged: '10 holds before the loss',
      lost:
        `${gone} of 10 (expected: the data is gone; recoverable only ` +
        `from AOF/replica; settled draws stay in the ledger)`,
      recoveryMs: recovery,
      notes:
        'recovery = until a commit after the loss settled and an untouched 1 s hold was expired ' +
        'by the re-created sweeper; products must be re-created by the operator',
    });
  }, 60_000);
});
