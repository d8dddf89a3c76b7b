/**
 * Contract: POST /v1/products/{productId}/customers/{customerId}/repayments.
 * Repayments restore the line (not the pool) and cover only settled money
 * (at most drawn - settling). The service runs with ROLE=api (no settlement
 * worker), so the test decides when money is settled, through the engine on
 * the service's own key prefix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaEngine } from '../../../src/engine/quotaEngine.js';
import { createEngineContext, type EngineContext } from '../../support/engineContext.js';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  admin,
  commit,
  expectProblem,
  getLine,
  getPool,
  getReservation,
  hold,
  makeLine,
  makeProduct,
  raw,
  repay,
  uniqueId,
} from '../../support/api.js';

let svc: ServiceContext;
let engineContext: EngineContext;
let engine: QuotaEngine;
beforeAll(async () => {
  svc = await startServiceContext({ ROLE: 'api' });
  engineContext = await createEngineContext(svc.keyPrefix);
  engine = engineContext.engine;
});
afterAll(async () => {
  await engineContext?.close();
  await svc.stop();
});

/** Reserve + commit `amount` for the customer over HTTP; returns the reservation id. */
async function draw(p: string, c: string, amount: number) {
  const r = await hold(svc, p, c, amount);
  const res = await commit(svc, p, r.reservationId);
  expect(res.status).toBe(200);
  return r.reservationId as string;
}

async function settle(p: string, reservationId: string) {
  const outcome = await engine.recordSettlement(p, reservationId, 'settled');
  expect(outcome.ok, JSON.stringify(outcome)).toBe(true);
  expect((await getReservation(svc, p, reservationId)).status).toBe('settled');
}

describe('repayments', () => {
  it('cover only settled money; restore the line, not the pool; answer 200 with the line snapshot', async () => {
    const p = await makeProduct(svc, { capacity: 5000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const id = await draw(p, 'c1', 600);
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 600, settling: 600, available: 400 });

    const early = expectProblem(await repay(svc, p, 'c1', { amount: 1 }), 422, 'REPAYMENT_EXCEEDS_DRAWN');
    expect(early.detail).toMatch(/\b0\b/);

    await settle(p, id);
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 600, settling: 0, available: 400 });
    expect(await getPool(svc, p)).toMatchObject({ committed: 600, settled: 600, available: 4400 });

    const res = await repay(svc, p, 'c1', { amount: 250 });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.body).toMatchObject({
      productId: p,
      customerId: 'c1',
      limit: 1000,
      status: 'active',
      held: 0,
      drawn: 350,
      settling: 0,
      available: 650,
      drawable: 650,
      blockers: [],
    });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 350, available: 650 });
    // the campaign budget is not restored
    expect(await getPool(svc, p)).toMatchObject({ committed: 600, settled: 600, available: 4400 });

    const over = expectProblem(await repay(svc, p, 'c1', { amount: 351 }), 422, 'REPAYMENT_EXCEEDS_DRAWN');
    expect(over.detail).toMatch(/350/);
    const rest = await repay(svc, p, 'c1', { amount: 350 });
    expect(rest.status).toBe(200);
    expect(rest.body).toMatchObject({ drawn: 0, available: 1000 });
    expectProblem(await repay(svc, p, 'c1', { amount: 1 }), 422, 'REPAYMENT_EXCEEDS_DRAWN');
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 0, settling: 0, available: 1000 });
  });

  it('cannot cover money still settling (at most drawn - settling)', async () => {
    const p = await makeProduct(svc, { capacity: 5000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const a = await draw(p, 'c1', 300);
    await draw(p, 'c1', 200);
    await settle(p, a);
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 500, settling: 200, available: 500 });
    expectProblem(await repay(svc, p, 'c1', { amount: 301 }), 422, 'REPAYMENT_EXCEEDS_DRAWN');
    const ok = await repay(svc, p, 'c1', { amount: 300 });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ drawn: 200, settling: 200, available: 800 });
    expectProblem(await repay(svc, p, 'c1', { amount: 1 }), 422, 'REPAYMENT_EXCEEDS_DRAWN');
  });

  it('the restored line can be drawn again (revolving)', async () => {
    const p = await makeProduct(svc, { capacity: 5000 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    await settle(p, await draw(p, 'c1', 100));
    expectProblem(
      await raw(svc, 'POST', `/v1/products/${p}/reservations`, {
        body: { customerId: 'c1', amount: 1 },
        headers: { 'Idempotency-Key': uniqueId('k') },
      }),
      409,
      'CUSTOMER_LIMIT_EXCEEDED',
    );
    expect((await repay(svc, p, 'c1', { amount: 40 })).status).toBe(200);
    expect((await getLine(svc, p, 'c1')).drawable).toBe(40);
    await hold(svc, p, 'c1', 40);
  });

  it('are not blocked by the line status or the product status', async () => {
    const p = await makeProduct(svc, { capacity: 5000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    await settle(p, await draw(p, 'c1', 100));
    await makeLine(svc, p, 'c1', { limit: 1000, status: 'frozen', statusReason: 'risk' });
    expect((await admin(svc, 'PATCH', `/v1/products/${p}`, { status: 'closed' })).status).toBe(200);
    const res = await repay(svc, p, 'c1', { amount: 60 });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ drawn: 40, status: 'frozen' });
  });

  it('answer 404 PRODUCT_NOT_FOUND / NO_CREDIT_LINE, and a 404 is not stored', async () => {
    expectProblem(await repay(svc, uniqueId('p'), 'c1', { amount: 1 }), 404, 'PRODUCT_NOT_FOUND');
    const p = await makeProduct(svc, { capacity: 5000 });
    const key = uniqueId('k');
    expectProblem(await repay(svc, p, 'c1', { amount: 1 }, key), 404, 'NO_CREDIT_LINE');
    await makeLine(svc, p, 'c1', { limit: 1000 });
    // evaluated afresh
    expectProblem(await repay(svc, p, 'c1', { amount: 1 }, key), 422, 'REPAYMENT_EXCEEDS_DRAWN');
  });
});

describe('commit and release after settlement', () => {
  it(
    'a repeated commit of a settled reservation answers 200 with ' +
      'its current state; another amount 409; release 409',
    async () => {
      const p = await makeProduct(svc, { capacity: 5000 });
      await makeLine(svc, p, 'c1', { limit: 1000 });
      const r = await hold(svc, p, 'c1', 100);
      expect((await commit(svc, p, r.reservationId, { amount: 80 })).status).toBe(200);
      await settle(p, r.reservationId);
      const again = await commit(svc, p, r.reservationId);
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ status: 'settled', committedAmount: 80 });
      const same = await commit(svc, p, r.reservationId, { amount: 80 });
      expect(same.status).toBe(200);
      expect(same.body.status).toBe('settled');
      expectProblem(await commit(svc, p, r.reservationId, { amount: 100 }), 409, 'RESERVATION_ALREADY_COMMITTED');
      expectProblem(
        await raw(svc, 'POST', `/v1/products/${p}/reservations/${r.reservationId}/release`),
        409,
        'RESERVATION_ALREADY_COMMITTED',
      );
      expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 80, settled: 80 });
      expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 0, drawn: 80, settling: 0 });
    },
  );
});

describe('repayment idempotency', () => {
  it('same key + same body: the first answer byte for byte, and one effect', async () => {
    const p = await makeProduct(svc, { capacity: 5000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    await settle(p, await draw(p, 'c1', 500));
    const key = uniqueId('k');
    const first = await repay(svc, p, 'c1', { amount: 100 }, key);
    expect(first.status).toBe(200);
    expect(first.body.drawn).toBe(400);
    const again = await repay(svc, p, 'c1', { amount: 100 }, key);
    expect(again.status).toBe(200);
    expect(again.text).toBe(first.text);
    const spaced = await raw(svc, 'POST', `/v1/products/${p}/customers/c1/repayments`, {
      body: '{ "amount" : 100 }\n',
      headers: { 'Idempotency-Key': key },
    });
    expect(spaced.status).toBe(200);
    expect(spaced.text).toBe(first.text);
    expect((await getLine(svc, p, 'c1')).drawn).toBe(400);

    // a later repayment with another key changes the line; the replay still shows the first answer
    expect((await repay(svc, p, 'c1', { amount: 50 })).status).toBe(200);
    const later = await repay(svc, p, 'c1', { amount: 100 }, key);
    expect(later.text).toBe(first.text);
    expect((await getLine(svc, p, 'c1')).drawn).toBe(350);
  });

  it('another body under the same key is 422 IDEMPOTENCY_KEY_REUSED (also for another customer)', async () => {
    const p = await makeProduct(svc, { capacity: 5000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    await makeLine(svc, p, 'c2', { limit: 1000 });
    await settle(p, await draw(p, 'c1', 500));
    await settle(p, await draw(p, 'c2', 500));
    const key = uniqueId('k');
    expect((await repay(svc, p, 'c1', { amount: 100 }, key)).status).toBe(200);
    expectProblem(await repay(svc, p, 'c1', { amount: 101 }, key), 422, 'IDEMPOTENCY_KEY_REUSED');
    expectProblem(await repay(svc, p, 'c2', { amount: 100 }, key), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect((await getLine(svc, p, 'c1')).drawn).toBe(400);
    expect((await getLine(svc, p, 'c2')).drawn).toBe(500);
  });

  it('a stored 422 REPAYMENT_EXCEEDS_DRAWN is replayed after money settles', async () => {
    const p = await makeProduct(svc, { capacity: 5000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const id = await draw(p, 'c1', 500);
    const key = uniqueId('k');
    const first = await repay(svc, p, 'c1', { amount: 200 }, key);
    expectProblem(first, 422, 'REPAYMENT_EXCEEDS_DRAWN');
    await settle(p, id);
    const replay = await repay(svc, p, 'c1', { amount: 200 }, key);
    expect(replay.status).toBe(422);
    expect(replay.text).toBe(first.text);
    expect((await getLine(svc, p, 'c1')).drawn).toBe(500);
    expect((await repay(svc, p, 'c1', { amount: 200 })).status).toBe(200);
  });

  it('concurrent duplicates: all get the first answer; the line is restored once', async () => {
    const p = await makeProduct(svc, { capacity: 5000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    await settle(p, await draw(p, 'c1', 500));
    const key = uniqueId('k');
    const results = await Promise.all(Array.from({ length: 15 }, () => repay(svc, p, 'c1', { amount: 120 }, key)));
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.text).toBe(results[0]!.text);
    }
    expect((await getLine(svc, p, 'c1')).drawn).toBe(380);
  });

  it('concurrent distinct repayments never take drawn below zero', async () => {
    const p = await makeProduct(svc, { capacity: 5000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    await settle(p, await draw(p, 'c1', 100));
    const results = await Promise.all(Array.from({ length: 12 }, () => repay(svc, p, 'c1', { amount: 30 })));
    expect(results.filter((r) => r.status === 200)).toHaveLength(3);
    for (const r of results.filter((r) => r.status !== 200)) expectProblem(r, 422, 'REPAYMENT_EXCEEDS_DRAWN');
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 10, settling: 0 });
  });
});
