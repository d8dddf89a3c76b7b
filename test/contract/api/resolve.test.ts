/**
 * Contract: POST /v1/products/{productId}/reservations/{reservationId}/resolve
 * with { outcome: "settled" | "reversed" } is admin-only; on a reservation not
 * in settlement_unknown it answers 409 RESERVATION_STATE_CONFLICT. The service
 * runs with ROLE=api (no settlement worker) and the test puts reservations in
 * settlement_unknown through the engine on the service's own key prefix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaEngine } from '../../../src/engine/quotaEngine.js';
import { createEngineContext, type EngineContext } from '../../support/engineContext.js';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  ADMIN_KEY,
  CLIENT_KEY,
  admin,
  commit,
  expectInvalid,
  expectProblem,
  getLine,
  getPool,
  getReservation,
  hold,
  makeLine,
  makeProduct,
  raw,
  release,
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

const resolve = (p: string, id: string, body: unknown, key: string | null = ADMIN_KEY) =>
  raw(svc, 'POST', `/v1/products/${p}/reservations/${id}/resolve`, { key, body });

async function setup(amount = 100) {
  const p = await makeProduct(svc, { capacity: 1000 });
  await makeLine(svc, p, 'c1', { limit: 500 });
  const r = await hold(svc, p, 'c1', amount);
  return { p, id: r.reservationId as string };
}

async function unknownOutcome(p: string, id: string) {
  expect((await commit(svc, p, id)).status).toBe(200);
  const out = await engine.recordSettlement(p, id, 'unknown', 'ledger timed out');
  expect(out.ok, JSON.stringify(out)).toBe(true);
  expect((await getReservation(svc, p, id)).status).toBe('settlement_unknown');
}

describe('resolve', () => {
  it('settles a settlement_unknown reservation (200 with the reservation)', async () => {
    const { p, id } = await setup(100);
    await unknownOutcome(p, id);
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 100, settling: 100 });
    const res = await resolve(p, id, { outcome: 'settled' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ reservationId: id, status: 'settled', committedAmount: 100 });
    expect(await getPool(svc, p)).toMatchObject({ committed: 100, settled: 100, available: 900 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 100, settling: 0 });
  });

  it('reverses a settlement_unknown reservation and returns the quota to pool and line', async () => {
    const { p, id } = await setup(100);
    await unknownOutcome(p, id);
    const res = await resolve(p, id, { outcome: 'reversed' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ reservationId: id, status: 'reversed' });
    expect(await getPool(svc, p)).toMatchObject({ committed: 0, settled: 0, available: 1000 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 0, settling: 0, available: 500 });
  });

  it('answers 409 RESERVATION_STATE_CONFLICT on a held, released, committed or reversed reservation', async () => {
    const { p, id } = await setup(10);
    expectProblem(await resolve(p, id, { outcome: 'settled' }), 409, 'RESERVATION_STATE_CONFLICT');
    expect((await getReservation(svc, p, id)).status).toBe('held');

    const r2 = await hold(svc, p, 'c1', 10);
    expect((await release(svc, p, r2.reservationId)).status).toBe(200);
    expectProblem(await resolve(p, r2.reservationId, { outcome: 'reversed' }), 409, 'RESERVATION_STATE_CONFLICT');

    expect((await commit(svc, p, id)).status).toBe(200);
    expectProblem(await resolve(p, id, { outcome: 'reversed' }), 409, 'RESERVATION_STATE_CONFLICT');
    expectProblem(await resolve(p, id, { outcome: 'settled' }), 409, 'RESERVATION_STATE_CONFLICT');
    expect((await getReservation(svc, p, id)).status).toBe('committed');
    expect(await getPool(svc, p)).toMatchObject({ committed: 10, settled: 0 });
  });

  // "on a reservation not in settlement_unknown it answers 409 RESERVATION_STATE_CONFLICT"
  it('answers 409 on a reservation already settled (also with outcome "settled")', async () => {
    const { p, id } = await setup(10);
    expect((await commit(svc, p, id)).status).toBe(200);
    expect((await engine.recordSettlement(p, id, 'settled')).ok).toBe(true);
    expectProblem(await resolve(p, id, { outcome: 'reversed' }), 409, 'RESERVATION_STATE_CONFLICT');
    expectProblem(await resolve(p, id, { outcome: 'settled' }), 409, 'RESERVATION_STATE_CONFLICT');
    expect(await getPool(svc, p)).toMatchObject({ committed: 10, settled: 10 });
  });

  it(
    'answers 409 on a second resolve (the reservation is no ' + 'longer settlement_unknown), with no second effect',
    async () => {
      const { p, id } = await setup(50);
      await unknownOutcome(p, id);
      expect((await resolve(p, id, { outcome: 'reversed' })).status).toBe(200);
      expectProblem(await resolve(p, id, { outcome: 'settled' }), 409, 'RESERVATION_STATE_CONFLICT');
      expectProblem(await resolve(p, id, { outcome: 'reversed' }), 409, 'RESERVATION_STATE_CONFLICT');
      expect(await getPool(svc, p)).toMatchObject({ committed: 0, settled: 0 });
      expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 0, settling: 0 });
    },
  );

  it('drawn never goes negative, whatever order repayments and reversals come in', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    const a = await hold(svc, p, 'c1', 100);
    const b = await hold(svc, p, 'c1', 50);
    expect((await commit(svc, p, a.reservationId)).status).toBe(200);
    expect((await engine.recordSettlement(p, a.reservationId, 'settled')).ok).toBe(true);
    await unknownOutcome(p, b.reservationId);
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 150, settling: 50 });
    // repay all settled money, then the unknown one is reversed
    const rep = await raw(svc, 'POST', `/v1/products/${p}/customers/c1/repayments`, {
      body: { amount: 100 },
      headers: { 'Idempotency-Key': uniqueId('k') },
    });
    expect(rep.status).toBe(200);
    expect(rep.body).toMatchObject({ drawn: 50, settling: 50 });
    expect((await resolve(p, b.reservationId, { outcome: 'reversed' })).status).toBe(200);
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 0, settling: 0, held: 0, available: 500 });
    expect(await getPool(svc, p)).toMatchObject({ committed: 100, settled: 100, available: 900 });
    const more = await raw(svc, 'POST', `/v1/products/${p}/customers/c1/repayments`, {
      body: { amount: 1 },
      headers: { 'Idempotency-Key': uniqueId('k') },
    });
    expectProblem(more, 422, 'REPAYMENT_EXCEEDS_DRAWN');
  });

  it('is admin-only: 403 for a client key, 401 without a key; nothing changes', async () => {
    const { p, id } = await setup(20);
    await unknownOutcome(p, id);
    expectProblem(await resolve(p, id, { outcome: 'settled' }, CLIENT_KEY), 403, 'FORBIDDEN');
    expectProblem(await resolve(p, id, { outcome: 'settled' }, null), 401, 'UNAUTHENTICATED');
    expect((await getReservation(svc, p, id)).status).toBe('settlement_unknown');
  });

  it('validates the body (400 naming outcome) and answers 404 for unknown ids', async () => {
    const { p, id } = await setup(20);
    await unknownOutcome(p, id);
    expectInvalid(await resolve(p, id, { outcome: 'maybe' }), 'outcome');
    expectInvalid(await resolve(p, id, {}), 'outcome');
    expectProblem(await resolve(p, 'nope', { outcome: 'settled' }), 404, 'RESERVATION_NOT_FOUND');
    expectProblem(await resolve(uniqueId('p'), id, { outcome: 'settled' }), 404, 'PRODUCT_NOT_FOUND');
    expectInvalid(await resolve(p, 'bad:id', { outcome: 'settled' }), 'reservationId');
    expect((await getReservation(svc, p, id)).status).toBe('settlement_unknown');
    // the admin helper works on this route too
    expect(
      (await admin(svc, 'POST', `/v1/products/${p}/reservations/${id}/resolve`, { outcome: 'settled' })).status,
    ).toBe(200);
  });
});
