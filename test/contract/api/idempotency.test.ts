/**
 * Contract: Idempotency-Key on reserve (and the scoping between reserve and
 * repayments). Same key + same body (same JSON value) -> the first answer,
 * byte for byte, with no second effect; 2xx/409/422 stored; 400/401/403/404/413
 * not stored; another body -> 422 IDEMPOTENCY_KEY_REUSED.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  admin,
  expectProblem,
  getLine,
  getPool,
  makeLine,
  makeProduct,
  patchProduct,
  raw,
  repay,
  reserve,
  uniqueId,
} from '../../support/api.js';

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext();
});
afterAll(() => svc.stop());

const rawReserve = (productId: string, text: string, key: string, authKey?: string | null) =>
  raw(svc, 'POST', `/v1/products/${productId}/reservations`, {
    body: text,
    headers: { 'Idempotency-Key': key },
    key: authKey,
  });

describe('replay of a granted reserve', () => {
  it('same key + same body: same status, byte-identical body and Location, one hold', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const key = uniqueId('k');
    const body = { customerId: 'c1', amount: 100, ttlSeconds: 120, metadata: { order: 'o-1', tags: ['a', 'b'] } };
    const first = await reserve(svc, p, body, key);
    expect(first.status).toBe(201);
    const second = await reserve(svc, p, body, key);
    expect(second.status).toBe(201);
    expect(second.text).toBe(first.text);
    expect(second.headers.get('location')).toBe(first.headers.get('location'));
    expect(await getPool(svc, p)).toMatchObject({ held: 100 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 100 });
  });

  it(
    'the same JSON value with keys in another order, other ' +
      'whitespace, or another number spelling is the same request',
    async () => {
      const p = await makeProduct(svc, { capacity: 1000 });
      await makeLine(svc, p, 'c1', { limit: 1000 });
      const key = uniqueId('k');
      const first = await rawReserve(
        p,
        '{"customerId":"c1","amount":100,"metadata":{"a":1,"b":{"x":true,"y":null}}}',
        key,
      );
      expect(first.status).toBe(201);
      const variants = [
        '{"amount":100,"customerId":"c1","metadata":{"b":{"y":null,"x":true},"a":1}}',
        '{\n  "customerId" : "c1",\n\t"amount": 100 ,\r\n "metadata": { "a" : 1, "b": {"x": true, "y": null} }\n}\n',
        '{"customerId":"c1","amount":1e2,"metadata":{"a":1.0,"b":{"x":true,"y":null}}}',
      ];
      for (const v of variants) {
        const again = await rawReserve(p, v, key);
        expect(again.status, v).toBe(201);
        expect(again.text).toBe(first.text);
      }
      expect((await getPool(svc, p)).held).toBe(100);
    },
  );

  it("returns the first answer, not today's state (after release, pause, close)", async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const key = uniqueId('k');
    const body = { customerId: 'c1', amount: 40 };
    const first = await reserve(svc, p, body, key);
    expect(first.status).toBe(201);
    const rel = await raw(svc, 'POST', `/v1/products/${p}/reservations/${first.body.reservationId}/release`);
    expect(rel.status).toBe(200);
    await patchProduct(svc, p, { status: 'closed' });
    await makeLine(svc, p, 'c1', { limit: 1000, status: 'frozen' });
    const replay = await reserve(svc, p, body, key);
    expect(replay.status).toBe(201);
    expect(replay.text).toBe(first.text);
    expect(replay.body.status).toBe('held'); // as first answered
    expect((await getPool(svc, p)).held).toBe(0); // and no new hold
  });

  it(
    'a different body with the same key is 422 ' + 'IDEMPOTENCY_KEY_REUSED (not stored; the first answer stays)',
    async () => {
      const p = await makeProduct(svc, { capacity: 1000 });
      await makeLine(svc, p, 'c1', { limit: 1000 });
      await makeLine(svc, p, 'c2', { limit: 1000 });
      const key = uniqueId('k');
      const first = await reserve(svc, p, { customerId: 'c1', amount: 10 }, key);
      expect(first.status).toBe(201);
      expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 11 }, key), 422, 'IDEMPOTENCY_KEY_REUSED');
      expectProblem(await reserve(svc, p, { customerId: 'c2', amount: 10 }, key), 422, 'IDEMPOTENCY_KEY_REUSED');
      expectProblem(
        await reserve(svc, p, { customerId: 'c1', amount: 10, ttlSeconds: 100 }, key),
        422,
        'IDEMPOTENCY_KEY_REUSED',
      );
      expectProblem(
        await reserve(svc, p, { customerId: 'c1', amount: 10, metadata: {} }, key),
        422,
        'IDEMPOTENCY_KEY_REUSED',
      );
      const again = await reserve(svc, p, { customerId: 'c1', amount: 10 }, key);
      expect(again.status).toBe(201);
      expect(again.text).toBe(first.text);
      expect((await getPool(svc, p)).held).toBe(10);
    },
  );
});

describe('stored refusals', () => {
  it('a 409 refusal is replayed (same body) even after the pool has room again', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const key = uniqueId('k');
    const body = { customerId: 'c1', amount: 150 };
    const first = await reserve(svc, p, body, key);
    expectProblem(first, 409, 'POOL_EXHAUSTED');
    expect(first.body.drawable).toBe(100);
    await patchProduct(svc, p, { capacity: 10_000 });
    const replay = await reserve(svc, p, body, key);
    expectProblem(replay, 409, 'POOL_EXHAUSTED');
    expect(replay.text).toBe(first.text);
    expect((await getPool(svc, p)).held).toBe(0);
    // a fresh key is judged on today's state
    expect((await reserve(svc, p, body, uniqueId('k'))).status).toBe(201);
  });

  it('a 409 line-status refusal is replayed after the line is reactivated', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 1000, status: 'frozen', statusReason: 'risk' });
    const key = uniqueId('k');
    const first = await reserve(svc, p, { customerId: 'c1', amount: 5 }, key);
    expectProblem(first, 409, 'ACCOUNT_FROZEN');
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const replay = await reserve(svc, p, { customerId: 'c1', amount: 5 }, key);
    expect(replay.status).toBe(409);
    expect(replay.text).toBe(first.text);
  });

  it('a 409 PRODUCT_PAUSED is replayed (same body) after the product reopens', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    await patchProduct(svc, p, { status: 'paused', resumeAt: new Date(Date.now() + 60_000).toISOString() });
    const key = uniqueId('k');
    const first = await reserve(svc, p, { customerId: 'c1', amount: 5 }, key);
    expectProblem(first, 409, 'PRODUCT_PAUSED');
    await patchProduct(svc, p, { status: 'open', resumeAt: null });
    const replay = await reserve(svc, p, { customerId: 'c1', amount: 5 }, key);
    expect(replay.status).toBe(409);
    expect(replay.text).toBe(first.text);
  });

  it('a 422 AMOUNT_OUT_OF_RANGE is replayed after the range changes', async () => {
    const p = await makeProduct(svc, { capacity: 1000, minAmount: 50 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const key = uniqueId('k');
    const first = await reserve(svc, p, { customerId: 'c1', amount: 10 }, key);
    expectProblem(first, 422, 'AMOUNT_OUT_OF_RANGE');
    await patchProduct(svc, p, { minAmount: 1 });
    const replay = await reserve(svc, p, { customerId: 'c1', amount: 10 }, key);
    expectProblem(replay, 422, 'AMOUNT_OUT_OF_RANGE');
    expect(replay.text).toBe(first.text);
    expect((await getPool(svc, p)).held).toBe(0);
    // and a different body under that key is still a reuse
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 11 }, key), 422, 'IDEMPOTENCY_KEY_REUSED');
  });
});

describe('answers that are not stored (a retry is evaluated afresh)', () => {
  it('404 PRODUCT_NOT_FOUND, then the product is created: the same key succeeds', async () => {
    const p = uniqueId('p');
    const key = uniqueId('k');
    const body = { customerId: 'c1', amount: 5 };
    expectProblem(await reserve(svc, p, body, key), 404, 'PRODUCT_NOT_FOUND');
    await makeProduct(svc, { capacity: 100 }, p);
    expectProblem(await reserve(svc, p, body, key), 404, 'NO_CREDIT_LINE');
    await makeLine(svc, p, 'c1', { limit: 100 });
    const ok = await reserve(svc, p, body, key);
    expect(ok.status).toBe(201);
    expect((await getPool(svc, p)).held).toBe(5);
  });

  it('400 (body) is not stored: the same key with a valid, different body succeeds', async () => {
    const p = await makeProduct(svc, { capacity: 100, holdTtlSeconds: 30 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    const key = uniqueId('k');
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: '5' }, key), 400, 'INVALID_REQUEST');
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 5, ttlSeconds: 31 }, key), 400, 'INVALID_REQUEST');
    expectProblem(await rawReserve(p, '{"customerId":"c1",', key), 400, 'INVALID_REQUEST');
    const ok = await reserve(svc, p, { customerId: 'c1', amount: 6, ttlSeconds: 30 }, key);
    expect(ok.status).toBe(201);
  });

  it('401 and 403 are not stored', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    const key = uniqueId('k');
    expectProblem(await rawReserve(p, '{"customerId":"c1","amount":7}', key, null), 401, 'UNAUTHENTICATED');
    expectProblem(
      await rawReserve(p, '{"customerId":"c1","amount":7}', key, 'unknown-key-0001'),
      401,
      'UNAUTHENTICATED',
    );
    const ok = await reserve(svc, p, { customerId: 'c1', amount: 8 }, key);
    expect(ok.status).toBe(201);
    // (403 cannot happen on reserve: every role may reserve; covered for admin routes in auth.test.ts)
  });

  it('400 before a stored answer: an invalid body under a used key is a 400, not a replay', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    const key = uniqueId('k');
    expect((await reserve(svc, p, { customerId: 'c1', amount: 5 }, key)).status).toBe(201);
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 'five' }, key), 400, 'INVALID_REQUEST');
  });
});

describe('precedence: 413 comes before a stored answer', () => {
  it('an oversized body under a used key is a 413, neither a replay nor a reuse', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    const key = uniqueId('k');
    expect((await reserve(svc, p, { customerId: 'c1', amount: 5 }, key)).status).toBe(201);
    const big = { customerId: 'c1', amount: 5, metadata: { pad: 'x'.repeat(20_000) } };
    expectProblem(await reserve(svc, p, big, key), 413, 'PAYLOAD_TOO_LARGE');
  });
});

describe('precedence: a stored answer (or IDEMPOTENCY_KEY_REUSED) comes before 404, product and line status', () => {
  it('reuse with an unknown customer is 422, not 404', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    const key = uniqueId('k');
    expect((await reserve(svc, p, { customerId: 'c1', amount: 5 }, key)).status).toBe(201);
    expectProblem(await reserve(svc, p, { customerId: 'nobody', amount: 5 }, key), 422, 'IDEMPOTENCY_KEY_REUSED');
    await patchProduct(svc, p, { status: 'closed' });
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 6 }, key), 422, 'IDEMPOTENCY_KEY_REUSED');
  });
});

describe('concurrent duplicates', () => {
  it('20 parallel requests with the same key all get the first answer; one hold exists', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const key = uniqueId('k');
    const results = await Promise.all(
      Array.from({ length: 20 }, () => reserve(svc, p, { customerId: 'c1', amount: 30 }, key)),
    );
    for (const r of results) {
      expect(r.status).toBe(201);
      expect(r.text).toBe(results[0]!.text);
    }
    expect(new Set(results.map((r) => r.body.reservationId)).size).toBe(1);
    expect(await getPool(svc, p)).toMatchObject({ held: 30 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 30 });
  });

  it('parallel duplicates of a refusal all get the same refusal; parallel distinct keys never oversell', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const key = uniqueId('k');
    const dup = await Promise.all(
      Array.from({ length: 10 }, () => reserve(svc, p, { customerId: 'c1', amount: 101 }, key)),
    );
    for (const r of dup) {
      expect(r.status).toBe(409);
      expect(r.text).toBe(dup[0]!.text);
    }
    const distinct = await Promise.all(
      Array.from({ length: 30 }, () => reserve(svc, p, { customerId: 'c1', amount: 7 })),
    );
    const granted = distinct.filter((r) => r.status === 201).length;
    expect(granted).toBe(14); // floor(100 / 7)
    for (const r of distinct.filter((r) => r.status !== 201)) expectProblem(r, 409, 'POOL_EXHAUSTED');
    expect(await getPool(svc, p)).toMatchObject({ held: 98, available: 2 });
  });
});

describe('scoping', () => {
  it('keys are scoped per product: the same key on two products makes two holds', async () => {
    const a = await makeProduct(svc, { capacity: 100 });
    const b = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, a, 'c1', { limit: 100 });
    await makeLine(svc, b, 'c1', { limit: 100 });
    const key = uniqueId('k');
    const ra = await reserve(svc, a, { customerId: 'c1', amount: 5 }, key);
    const rb = await reserve(svc, b, { customerId: 'c1', amount: 5 }, key);
    expect(ra.status).toBe(201);
    expect(rb.status).toBe(201);
    expect(rb.body.reservationId).not.toBe(ra.body.reservationId);
    expect(rb.body.productId).toBe(b);
    expect((await getPool(svc, a)).held).toBe(5);
    expect((await getPool(svc, b)).held).toBe(5);
    // and a different body on the other product is no reuse
    expect((await reserve(svc, b, { customerId: 'c1', amount: 6 }, uniqueId('k'))).status).toBe(201);
  });

  it('keys are scoped per operation: a reserve key can be used for a repayment and back', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    const key = uniqueId('k');
    expect((await reserve(svc, p, { customerId: 'c1', amount: 5 }, key)).status).toBe(201);
    const rep = await repay(svc, p, 'c1', { amount: 5 }, key);
    expect(rep.body.code).not.toBe('IDEMPOTENCY_KEY_REUSED');
    expectProblem(rep, 422, 'REPAYMENT_EXCEEDS_DRAWN'); // nothing settled: judged on its merits

    const key2 = uniqueId('k');
    expectProblem(await repay(svc, p, 'c1', { amount: 3 }, key2), 422, 'REPAYMENT_EXCEEDS_DRAWN');
    expect((await reserve(svc, p, { customerId: 'c1', amount: 3 }, key2)).status).toBe(201);
  });

  it('admin writes do not take Idempotency-Key into account (PUT is idempotent by itself)', async () => {
    const p = uniqueId('p');
    const key = uniqueId('k');
    expect((await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 1 }, { 'Idempotency-Key': key })).status).toBe(
      201,
    );
    const second = await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 2 }, { 'Idempotency-Key': key });
    expect(second.status).toBe(200);
    expect(second.body.capacity).toBe(2);
  });
});
