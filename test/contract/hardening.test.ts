/**
 * Issue 10 (hardening), the in-process items: deep JSON (1), bulk rows that
 * fail unexpectedly (3), and the small ones (6): huge ledger cursors, admin
 * reads of an unknown product, 401 first on every /v1 path, 405 with Allow,
 * and the product index left alone by refused writes.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createKeys } from '../../src/redis/keys.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import {
  ADMIN_KEY,
  admin,
  client,
  expectInvalid,
  expectProblem,
  hold,
  makeLine,
  makeProduct,
  raw,
  uniqueId,
} from '../support/api.js';

let svc: ServiceContext;
let redis: Redis;
beforeAll(async () => {
  svc = await startServiceContext();
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  redis.disconnect();
  await svc.stop();
});

/** `{"customerId":"c1","amount":1,"metadata":{"x":[[[…1…]]]}}`, `depth` arrays deep. */
const deepBody = (depth: number) =>
  `{"customerId":"c1","amount":1,"metadata":{"x":${'['.repeat(depth)}1${']'.repeat(depth)}}}`;

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await f();
  return { value, ms: performance.now() - t0 };
}

describe('1. deep JSON', () => {
  it('a body nested deeper than 32 levels is 400 at once; 32 levels is accepted', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const path = `/v1/products/${p}/reservations`;
    const headers = () => ({ 'Idempotency-Key': uniqueId('k') });
    // The body and metadata are 2 levels: 30 arrays make 32 levels in all, 31 make 33.
    const ok = await raw(svc, 'POST', path, { body: deepBody(30), headers: headers() });
    expect(ok.status, ok.text).toBe(201);
    const deep = await raw(svc, 'POST', path, { body: deepBody(31), headers: headers() });
    expectInvalid(deep, /deeper than 32/);
    const huge = await timed(() => raw(svc, 'POST', path, { body: deepBody(7000), headers: headers() }));
    expectInvalid(huge.value, /deeper than 32/);
    expect(huge.ms).toBeLessThan(200);
    // Nothing was held by the refused ones.
    const pool = await client(svc, 'GET', `/v1/products/${p}`);
    expect(pool.body.held).toBe(1);
  });

  it('brackets inside strings do not count; commit, release and repayment bodies are checked too', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const r = await raw(svc, 'POST', `/v1/products/${p}/reservations`, {
      body: `{"customerId":"c1","amount":1,"metadata":{"x":"${'['.repeat(500)}"}}`,
      headers: { 'Idempotency-Key': uniqueId('k') },
    });
    expect(r.status, r.text).toBe(201);
    const deep = `{"amount":${'['.repeat(7000)}1${']'.repeat(7000)}}`;
    for (const path of [
      `reservations/${r.body.reservationId}/commit`,
      `reservations/${r.body.reservationId}/release`,
      'customers/c1/repayments',
    ]) {
      expectInvalid(
        await raw(svc, 'POST', `/v1/products/${p}/${path}`, {
          body: deep,
          headers: { 'Idempotency-Key': uniqueId('k') },
        }),
        /deeper than 32/,
      );
    }
  });

  it('several 14 KB, 7,000-deep bodies at once do not slow /healthz', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    const body = deepBody(7000);
    expect(body.length).toBeGreaterThan(14_000);
    const attacks = Array.from({ length: 24 }, () =>
      raw(svc, 'POST', `/v1/products/${p}/reservations`, { body, headers: { 'Idempotency-Key': uniqueId('k') } }),
    );
    const probes: number[] = [];
    for (let i = 0; i < 10; i++)
      probes.push((await timed(() => fetch(`${svc.baseUrl}/healthz`).then((r) => r.text()))).ms);
    const answers = await Promise.all(attacks);
    for (const a of answers) expect(a.status, a.text).toBe(400);
    expect(Math.max(...probes), `healthz latencies ${probes.map(Math.round).join(',')}`).toBeLessThan(250);
  });
});

describe('3. bulk import', () => {
  it('a deeply nested row is a rejected row; the good rows around it land', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    const rows = [
      '{"customerId":"c1","limit":100}',
      `{"customerId":"c2","limit":100,"x":${'['.repeat(7000)}1${']'.repeat(7000)}}`,
      `{"customerId":"c3","limit":${'{"a":'.repeat(40)}1${'}'.repeat(40)}}`,
      '{"customerId":"c4","limit":100}',
    ];
    const res = await raw(svc, 'POST', `/v1/products/${p}/customers:bulk`, {
      key: ADMIN_KEY,
      body: rows.join('\n'),
      contentType: 'application/x-ndjson',
    });
    expect(res.status, res.text.slice(0, 300)).toBe(200);
    expect(res.body.upserted).toBe(2);
    expect(res.body.rejected.map((r: { line: number; code: string }) => [r.line, r.code])).toEqual([
      [2, 'INVALID_REQUEST'],
      [3, 'INVALID_REQUEST'],
    ]);
    expect(res.body.rejected[0].detail).toMatch(/deeper than 32/);
    for (const c of ['c1', 'c4'])
      expect((await client(svc, 'GET', `/v1/products/${p}/customers/${c}`)).status).toBe(200);
  });
});

describe('6. small ones', () => {
  it('a ledger cursor above 2^64 is 400, not a Redis error', async () => {
    const p = await makeProduct(svc, { capacity: 10 });
    expectInvalid(await admin(svc, 'GET', `/v1/products/${p}/ledger?cursor=18446744073709551616`), 'cursor');
    expectInvalid(await admin(svc, 'GET', `/v1/products/${p}/ledger?cursor=${'9'.repeat(40)}`), 'cursor');
    // Not digits at all (found by the HTTP fuzz test, seed 459305432: it was a 500).
    expectInvalid(await admin(svc, 'GET', `/v1/products/${p}/ledger?cursor=abc`), 'cursor');
    expect((await admin(svc, 'GET', `/v1/products/${p}/ledger?cursor=18446744073709551615`)).status).toBe(200);
  });

  it('admin listings, ledger and events of an unknown product are 404 PRODUCT_NOT_FOUND', async () => {
    const missing = uniqueId('nope');
    expectProblem(
      await admin(svc, 'GET', `/v1/products/${missing}/reservations?status=held`),
      404,
      'PRODUCT_NOT_FOUND',
    );
    expectProblem(await admin(svc, 'GET', `/v1/products/${missing}/ledger`), 404, 'PRODUCT_NOT_FOUND');
    expectProblem(await admin(svc, 'GET', `/v1/products/${missing}/reservations/r1/events`), 404, 'PRODUCT_NOT_FOUND');
    // A known product keeps its answers.
    const p = await makeProduct(svc, { capacity: 10 });
    expect((await admin(svc, 'GET', `/v1/products/${p}/reservations?status=held`)).status).toBe(200);
    expectProblem(await admin(svc, 'GET', `/v1/products/${p}/reservations/r1/events`), 404, 'RESERVATION_NOT_FOUND');
  });

  it('every /v1 path answers 401 without a valid key first: unknown routes, OPTIONS, wrong methods', async () => {
    const p = await makeProduct(svc, { capacity: 10 });
    const cases: [string, string][] = [
      ['GET', '/v1/nothing-here'],
      ['GET', '/v1'],
      ['OPTIONS', `/v1/products/${p}`],
      ['OPTIONS', '/v1/nothing-here'],
      ['DELETE', `/v1/products/${p}`],
      ['GET', `/v1/products/${p}/reservations/r1/commit`],
    ];
    for (const [method, path] of cases) {
      for (const key of [null, 'not-a-key']) {
        const res = await raw(svc, method, path, { key });
        expectProblem(res, 401, 'UNAUTHENTICATED');
        expect(res.headers.get('allow')).toBeNull();
      }
    }
  });

  it(
    'with a key: an unknown path is 404 ROUTE_NOT_FOUND, a ' + 'known path with another method 405 with Allow',
    async () => {
      const p = await makeProduct(svc, { capacity: 10 });
      expectProblem(await client(svc, 'GET', '/v1/nothing-here'), 404, 'ROUTE_NOT_FOUND');
      const del = await client(svc, 'DELETE', `/v1/products/${p}`);
      expectProblem(del, 405, 'METHOD_NOT_ALLOWED');
      expect(del.headers.get('allow')).toBe('GET, HEAD, PATCH, PUT');
      const get = await client(svc, 'GET', `/v1/products/${p}/reservations/r1/commit`);
      expectProblem(get, 405, 'METHOD_NOT_ALLOWED');
      expect(get.headers.get('allow')).toBe('POST');
      const options = await raw(svc, 'OPTIONS', `/v1/products/${p}/customers/c1`);
      expectProblem(options, 405, 'METHOD_NOT_ALLOWED');
      expect(options.headers.get('allow')).toBe('GET, HEAD, PUT');
    },
  );

  it('a PATCH of a missing product or a refused PUT does not add the id to the product index', async () => {
    const keys = createKeys(svc.keyPrefix);
    const missing = uniqueId('ghost');
    expectProblem(await admin(svc, 'PATCH', `/v1/products/${missing}`, { capacity: 5 }), 404, 'PRODUCT_NOT_FOUND');
    const invalidPut = uniqueId('bad');
    const put = await admin(svc, 'PUT', `/v1/products/${invalidPut}`, { capacity: 5, minAmount: 10, maxAmount: 2 });
    expect(put.status, put.text).toBe(400);
    expect(await redis.sismember(keys.productIndex(), missing)).toBe(0);
    expect(await redis.sismember(keys.productIndex(), invalidPut)).toBe(0);
    const good = await makeProduct(svc, { capacity: 5 });
    expect(await redis.sismember(keys.productIndex(), good)).toBe(1);
    await hold(svc, good, 'c', 1).catch(() => undefined);
  });
});
