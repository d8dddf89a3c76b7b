/**
 * The client's retry rules against real faults, each proving one effect:
 * a Redis paused mid-call (503, the write lands afterwards), a Redis whose
 * reply is late (503 after the write landed), a client timeout, and a
 * connection refused until the service appears. Every retry of a reserve
 * reuses its one Idempotency-Key, so the pool holds exactly one amount.
 * The service runs on a redis-server of its own (behind a delay proxy), so
 * pausing it disturbs no other file.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { QuotaClient, QuotaClientError, type RetryEvent } from '@quota-allocator/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedisServer, type RedisServerHandle } from '../../../src/redis/redisServer.js';
import { startDelayProxy, type DelayProxy } from '../../support/delayProxy.js';
import { uniqueId } from '../../support/engineContext.js';
import { ADMIN_KEY, CLIENT_KEY, startServiceContext, type ServiceContext } from '../../support/serviceContext.js';

let redis: RedisServerHandle;
let proxy: DelayProxy;
let svc: ServiceContext;
let control: Redis;
let admin: QuotaClient;

beforeAll(async () => {
  redis = await startRedisServer();
  proxy = await startDelayProxy({ host: '127.0.0.1', port: redis.port });
  svc = await startServiceContext({ REDIS_URL: proxy.url });
  control = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  control.on('error', () => {});
  admin = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: ADMIN_KEY });
});
afterAll(async () => {
  control?.disconnect();
  await svc?.stop();
  await proxy?.stop();
  await redis?.stop();
});

async function productWithLine(): Promise<string> {
  const p = uniqueId('p');
  expect((await admin.admin.putProduct(p, { capacity: 100_000 })).ok).toBe(true);
  expect((await admin.admin.putLine(p, 'c1', { limit: 100_000 })).ok).toBe(true);
  return p;
}

/** Exactly one hold of `amount`: in the pool's counters and in the list of held reservations. */
async function expectOneHold(p: string, amount: number) {
  const pool = await admin.getProduct(p);
  expect(pool.ok && pool.value.held).toBe(amount);
  const held = await admin.admin.listReservations(p, 'held');
  expect(held.ok && held.value.items.map((r) => r.amount)).toEqual([amount]);
}

/** `call` while every Redis reply through the proxy is held `ms`; replies pass straight through again after it. */
async function repliesLate<T>(ms: number, call: () => Promise<T>): Promise<T> {
  proxy.setReplyDelay(ms);
  try {
    return await call();
  } finally {
    proxy.setReplyDelay(0);
  }
}

/** A client whose first retry ends the late replies (so the retry gets a prompt answer), and the retries it made. */
function clientWhoseRetryEndsTheDelay(options: { timeoutMs?: number } = {}) {
  const retries: RetryEvent[] = [];
  const client = new QuotaClient({
    baseUrl: svc.baseUrl,
    apiKey: CLIENT_KEY,
    ...options,
    onRetry: (e) => {
      retries.push(e);
      proxy.setReplyDelay(0);
    },
  });
  return { client, retries };
}

describe('a reserve without a key gets one, and every retry reuses it', () => {
  it('Redis paused mid-call: 503 with Retry-After, retried after it, one hold', async () => {
    const p = await productWithLine();
    const retries: RetryEvent[] = [];
    const client = new QuotaClient({
      baseUrl: svc.baseUrl,
      apiKey: CLIENT_KEY,
      maxRetries: 4,
      onRetry: (e) => retries.push(e),
    });
    await control.call('CLIENT', 'PAUSE', '2500', 'ALL');
    const t0 = Date.now();
    const answer = await client.reserve(p, { customerId: 'c1', amount: 700 });
    expect(answer.ok, JSON.stringify(answer)).toBe(true);
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries[0]).toMatchObject({ method: 'POST', reason: 'status 503', attempt: 1 });
    // Retry-After (whole seconds, at least 1) was waited for, not the backoff's 100 ms.
    expect(retries[0]!.delayMs).toBeGreaterThanOrEqual(1_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_500);
    await expectOneHold(p, 700);
  });

  it(
    'the reply is late: 503 although the hold landed; the retry ' + 'answers that first hold (a replay), not a second',
    async () => {
      const p = await productWithLine();
      const { client, retries } = clientWhoseRetryEndsTheDelay();
      const answer = await repliesLate(2_500, () => client.reserve(p, { customerId: 'c1', amount: 900 }));
      expect(retries.map((r) => r.reason)).toEqual(['status 503']);
      expect(answer.ok && answer.replayed).toBe(true);
      await expectOneHold(p, 900);
    },
  );

  it('no answer within timeoutMs: retried with the same key, one hold', async () => {
    const p = await productWithLine();
    const { client, retries } = clientWhoseRetryEndsTheDelay({ timeoutMs: 400 });
    const answer = await repliesLate(900, () => client.reserve(p, { customerId: 'c1', amount: 300 }));
    expect(retries[0]?.reason).toMatch(/timeout/);
    expect(answer.ok).toBe(true);
    await expectOneHold(p, 300);
  });

  it('a repayment retried after a 503 is applied once', async () => {
    const p = await productWithLine();
    const { client } = clientWhoseRetryEndsTheDelay();
    const r = await client.reserve(p, { customerId: 'c1', amount: 1_000 });
    if (!r.ok) expect.fail(JSON.stringify(r.problem));
    expect((await client.commit(p, r.value.reservationId)).ok).toBe(true);
    await waitUntilSettled(client, p, r.value.reservationId);
    const repaid = await repliesLate(2_500, () => client.repay(p, 'c1', 400));
    expect(repaid.ok && repaid.value.drawn).toBe(600);
    const line = await client.getLine(p, 'c1');
    expect(line.ok && line.value.drawn).toBe(600);
  });
});

describe("the key is handed back for the caller's own retry after an unknown outcome", () => {
  it('a final 503 (the hold landed, its reply late) has the key; asking again with it replays the hold', async () => {
    const p = await productWithLine();
    const client = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: CLIENT_KEY, maxRetries: 0 });
    const first = await repliesLate(2_500, () => client.reserve(p, { customerId: 'c1', amount: 800 }));
    expect(first).toMatchObject({ ok: false, problem: { status: 503, code: 'UNAVAILABLE' } });
    expect(first.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
    const again = await client.reserve(p, { customerId: 'c1', amount: 800 }, { idempotencyKey: first.idempotencyKey });
    expect(again).toMatchObject({ ok: true, replayed: true, idempotencyKey: first.idempotencyKey });
    await expectOneHold(p, 800);
  });

  it('a broken call (timeout) throws with the key; asking again with it gives one hold', async () => {
    const p = await productWithLine();
    const client = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: CLIENT_KEY, maxRetries: 0, timeoutMs: 400 });
    const err = await repliesLate(900, () => client.reserve(p, { customerId: 'c1', amount: 350 })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(QuotaClientError);
    const { kind, details } = err as QuotaClientError;
    expect(kind).toBe('network');
    expect(details.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
    // Asked again later (the first reply, still in the Redis connection's queue, comes before this one's).
    const later = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: CLIENT_KEY });
    const again = await later.reserve(p, { customerId: 'c1', amount: 350 }, { idempotencyKey: details.idempotencyKey });
    expect(again).toMatchObject({ ok: true, idempotencyKey: details.idempotencyKey });
    await expectOneHold(p, 350);
  });

  it('a repayment whose final answer was a 503 is asked again with its key and applied once', async () => {
    const p = await productWithLine();
    const client = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: CLIENT_KEY, maxRetries: 0 });
    const r = await client.reserve(p, { customerId: 'c1', amount: 1_000 });
    if (!r.ok) expect.fail(JSON.stringify(r.problem));
    expect((await client.commit(p, r.value.reservationId)).ok).toBe(true);
    await waitUntilSettled(client, p, r.value.reservationId);
    const first = await repliesLate(2_500, () => client.repay(p, 'c1', 300));
    expect(first).toMatchObject({ ok: false, problem: { code: 'UNAVAILABLE' } });
    const again = await client.repay(p, 'c1', 300, { idempotencyKey: first.idempotencyKey });
    expect(again).toMatchObject({ ok: true, replayed: true, value: { drawn: 700 } });
    const line = await client.getLine(p, 'c1');
    expect(line.ok && line.value.drawn).toBe(700);
  });
});

describe('commit and release are repeated safely', () => {
  it('a commit whose reply was late is retried and commits once', async () => {
    const p = await productWithLine();
    const { client } = clientWhoseRetryEndsTheDelay();
    const r = await client.reserve(p, { customerId: 'c1', amount: 500 });
    if (!r.ok) expect.fail(JSON.stringify(r.problem));
    const committed = await repliesLate(2_500, () => client.commit(p, r.value.reservationId, 400));
    expect(committed).toMatchObject({ ok: true, value: { committedAmount: 400 } });
    const pool = await admin.getProduct(p);
    expect(pool.ok && [pool.value.held, pool.value.committed]).toEqual([0, 400]);
  });

  it('a release whose reply was late is retried and releases once', async () => {
    const p = await productWithLine();
    const { client, retries } = clientWhoseRetryEndsTheDelay();
    const r = await client.reserve(p, { customerId: 'c1', amount: 600 });
    if (!r.ok) expect.fail(JSON.stringify(r.problem));
    const released = await repliesLate(2_500, () => client.release(p, r.value.reservationId));
    // The first attempt's release landed but its answer was a 503; the retry answers the released state.
    expect(retries.map((e) => [e.method, e.reason])).toEqual([['POST', 'status 503']]);
    expect(released).toMatchObject({ ok: true, status: 200, value: { status: 'released' } });
    const pool = await admin.getProduct(p);
    expect(pool.ok && [pool.value.held, pool.value.committed, pool.value.available]).toEqual([0, 0, 100_000]);
    const events = await admin.admin.events(p, r.value.reservationId);
    expect(events.ok && events.value.events.map((e) => e.to)).toEqual(['held', 'released']);
  });
});

describe('connection refused, then the service is there', () => {
  it('retried with backoff until it answers; one hold', async () => {
    const p = await productWithLine();
    const port = await freePort();
    const retries: RetryEvent[] = [];
    const client = new QuotaClient({
      baseUrl: `http://127.0.0.1:${port}`,
      apiKey: CLIENT_KEY,
      maxRetries: 6,
      backoffBaseMs: 100,
      onRetry: (e) => retries.push(e),
    });
    // The "service" appears on that port 300 ms later (a forwarder to the real one).
    let forwarder: Server | undefined;
    const appear = new Promise<void>((resolve) =>
      setTimeout(() => {
        forwarder = forward(port, new URL(svc.baseUrl).port);
        forwarder.on('listening', resolve);
      }, 300),
    );
    try {
      const answer = await client.reserve(p, { customerId: 'c1', amount: 250 });
      await appear;
      expect(answer.ok).toBe(true);
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(retries[0]!.reason).toMatch(/ECONNREFUSED/);
      await expectOneHold(p, 250);
    } finally {
      await appear;
      await new Promise((r) => forwarder?.close(r));
    }
  });
});

async function waitUntilSettled(client: QuotaClient, p: string, reservationId: string) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const got = await client.getReservation(p, reservationId);
    if (got.ok && got.value.status === 'settled') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect.fail(`${reservationId} not settled in 10 s`);
}

function forward(port: number, targetPort: string): Server {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = connect(Number(targetPort), '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  const close = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  }) as typeof server.close;
  server.listen(port, '127.0.0.1');
  return server;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}
