/**
 * Contract: reserve, GET reservation, commit, release, expiry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  ISO_UTC,
  client,
  commit,
  expectInvalid,
  expectProblem,
  getLine,
  getPool,
  getReservation,
  hold,
  makeLine,
  makeProduct,
  patchProduct,
  release,
  reserve,
  sleep,
  uniqueId,
} from '../../support/api.js';

/** After a commit the settlement worker may settle the reservation at any moment. */
const COMMITTED_OR_SETTLED = /^(committed|settled)$/;

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext();
});
afterAll(() => svc.stop());

describe('POST /v1/products/{productId}/reservations', () => {
  it('answers 201 with Location and the reservation, and holds the amount on pool and line', async () => {
    const p = await makeProduct(svc, { capacity: 1000, holdTtlSeconds: 120 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    const metadata = { orderId: 'o-1', nested: { a: [1, 2, 3] }, text: '借款' };
    const res = await reserve(svc, p, { customerId: 'c1', amount: 200, metadata });
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const r = res.body;
    expect(res.headers.get('location')).toBe(`/v1/products/${p}/reservations/${r.reservationId}`);
    expect(r).toMatchObject({
      productId: p,
      customerId: 'c1',
      amount: 200,
      status: 'held',
      committedAmount: 0,
      metadata,
      attempts: 0,
      lastError: null,
    });
    expect(r.reservationId).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
    expect(r.createdAt).toMatch(ISO_UTC);
    expect(r.expiresAt).toMatch(ISO_UTC);
    // default ttl: the product's holdTtlSeconds
    expect(Date.parse(r.expiresAt) - Date.parse(r.createdAt)).toBe(120_000);

    expect(await getPool(svc, p)).toMatchObject({ held: 200, committed: 0, available: 800 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 200, drawn: 0, available: 300, drawable: 300 });

    // the Location resolves to the same reservation
    const got = await client(svc, 'GET', res.headers.get('location')!);
    expect(got.status).toBe(200);
    expect(got.body).toEqual(r);
  });

  it('honours ttlSeconds from 1 up to holdTtlSeconds', async () => {
    const p = await makeProduct(svc, { capacity: 1000, holdTtlSeconds: 60 });
    await makeLine(svc, p, 'c1');
    const r = await hold(svc, p, 'c1', 1, { ttlSeconds: 60 });
    expect(Date.parse(r.expiresAt) - Date.parse(r.createdAt)).toBe(60_000);
    const r2 = await hold(svc, p, 'c1', 1, { ttlSeconds: 7 });
    expect(Date.parse(r2.expiresAt) - Date.parse(r2.createdAt)).toBe(7_000);
    expectInvalid(await reserve(svc, p, { customerId: 'c1', amount: 1, ttlSeconds: 61 }), 'ttlSeconds');
    expectInvalid(await reserve(svc, p, { customerId: 'c1', amount: 1, ttlSeconds: 0 }), 'ttlSeconds');
    expect((await getPool(svc, p)).held).toBe(2);
  });

  it('accepts amounts up to 2^53-1 exactly', async () => {
    const max = 2 ** 53 - 1;
    const p = await makeProduct(svc, { capacity: max });
    await makeLine(svc, p, 'c1', { limit: max });
    const r = await hold(svc, p, 'c1', max);
    expect(r.amount).toBe(max);
    expect(await getPool(svc, p)).toMatchObject({ held: max, available: 0 });
    const c = await commit(svc, p, r.reservationId);
    expect(c.status).toBe(200);
    expect(c.body.committedAmount).toBe(max);
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: max, available: 0 });
  });
});

describe('GET /v1/products/{productId}/reservations/{reservationId}', () => {
  it('returns the reservation with its settlement fields; 404 for unknown ids and products', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, p, 'c1');
    const r = await hold(svc, p, 'c1', 10);
    const got = await getReservation(svc, p, r.reservationId);
    expect(got).toMatchObject({
      reservationId: r.reservationId,
      status: 'held',
      attempts: 0,
      lastError: null,
      committedAmount: 0,
    });
    expectProblem(await client(svc, 'GET', `/v1/products/${p}/reservations/nope`), 404, 'RESERVATION_NOT_FOUND');
    expectProblem(
      await client(svc, 'GET', `/v1/products/${uniqueId('p')}/reservations/${r.reservationId}`),
      404,
      'PRODUCT_NOT_FOUND',
    );
    // a reservation of another product is not found in this one
    const other = await makeProduct(svc, { capacity: 100 });
    expectProblem(
      await client(svc, 'GET', `/v1/products/${other}/reservations/${r.reservationId}`),
      404,
      'RESERVATION_NOT_FOUND',
    );
  });
});

describe('commit', () => {
  it('commits all of the hold by default', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    const r = await hold(svc, p, 'c1', 200);
    const res = await commit(svc, p, r.reservationId);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      reservationId: r.reservationId,
      status: 'committed',
      amount: 200,
      committedAmount: 200,
    });
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 200, available: 800 });
    const line = await getLine(svc, p, 'c1');
    expect(line).toMatchObject({ held: 0, drawn: 200, available: 300 });
    expect([0, 200]).toContain(line.settling); // 0 once the settlement worker has settled it
    expect((await getReservation(svc, p, r.reservationId)).status).toMatch(COMMITTED_OR_SETTLED);
  });

  it('a partial commit releases the rest at once (pool and line)', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    const r = await hold(svc, p, 'c1', 100);
    const res = await commit(svc, p, r.reservationId, { amount: 60 });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'committed', amount: 100, committedAmount: 60 });
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 60, available: 940 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 0, drawn: 60, available: 440, drawable: 440 });
  });

  it('is idempotent by state: no amount or the same amount -> 200; another amount -> 409', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    const r = await hold(svc, p, 'c1', 100);
    const first = await commit(svc, p, r.reservationId, { amount: 60 });
    expect(first.status).toBe(200);
    const again = await commit(svc, p, r.reservationId);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ status: expect.stringMatching(COMMITTED_OR_SETTLED), committedAmount: 60 });
    const same = await commit(svc, p, r.reservationId, { amount: 60 });
    expect(same.status).toBe(200);
    expect(same.body).toMatchObject({ status: expect.stringMatching(COMMITTED_OR_SETTLED), committedAmount: 60 });
    const empty = await commit(svc, p, r.reservationId, {});
    expect(empty.status).toBe(200);
    expectProblem(await commit(svc, p, r.reservationId, { amount: 100 }), 409, 'RESERVATION_ALREADY_COMMITTED');
    expectProblem(await commit(svc, p, r.reservationId, { amount: 10 }), 409, 'RESERVATION_ALREADY_COMMITTED');
    // no second effect
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 60 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 0, drawn: 60 });
  });

  it('refuses more than the hold with 422 COMMIT_EXCEEDS_HOLD and keeps the hold', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    const r = await hold(svc, p, 'c1', 100);
    expectProblem(await commit(svc, p, r.reservationId, { amount: 101 }), 422, 'COMMIT_EXCEEDS_HOLD');
    expect((await getReservation(svc, p, r.reservationId)).status).toBe('held');
    expect(await getPool(svc, p)).toMatchObject({ held: 100, committed: 0 });
    expect((await commit(svc, p, r.reservationId, { amount: 100 })).status).toBe(200);
  });

  it('validates the body', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1');
    const r = await hold(svc, p, 'c1', 100);
    expectInvalid(await commit(svc, p, r.reservationId, { amount: 0 }), 'amount');
    expectInvalid(await commit(svc, p, r.reservationId, { amount: -5 }), 'amount');
    expectInvalid(await commit(svc, p, r.reservationId, { amount: '50' }), 'amount');
    expectInvalid(await commit(svc, p, r.reservationId, { amount: 1.5 }), 'amount');
    expectInvalid(await commit(svc, p, r.reservationId, { amount: 50, extra: 1 }), 'extra');
    expectInvalid(await commit(svc, p, 'bad:id', {}), 'reservationId');
    expect((await getReservation(svc, p, r.reservationId)).status).toBe('held');
  });

  it('is blocked by a frozen or closed line (409, detail carries statusReason) and the hold stays', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    const r = await hold(svc, p, 'c1', 100);

    await makeLine(svc, p, 'c1', { limit: 500, status: 'frozen', statusReason: 'fraud check 17' });
    const frozen = expectProblem(await commit(svc, p, r.reservationId), 409, 'ACCOUNT_FROZEN');
    expect(frozen.detail).toContain('fraud check 17');
    expect((await getReservation(svc, p, r.reservationId)).status).toBe('held');
    expect(await getPool(svc, p)).toMatchObject({ held: 100, committed: 0 });

    await makeLine(svc, p, 'c1', { limit: 500, status: 'closed', statusReason: 'account closed by customer' });
    const closed = expectProblem(await commit(svc, p, r.reservationId), 409, 'ACCOUNT_CLOSED');
    expect(closed.detail).toContain('account closed by customer');
    expect((await getReservation(svc, p, r.reservationId)).status).toBe('held');
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 100, drawn: 0 });

    await makeLine(svc, p, 'c1', { limit: 500, status: 'active' });
    const ok = await commit(svc, p, r.reservationId);
    expect(ok.status).toBe(200);
    expect(ok.body.status).toBe('committed');
  });

  it('is not blocked by a pending line, a lowered limit, or the product being paused, closed or not open', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    const holds = [];
    for (let i = 0; i < 5; i++) holds.push(await hold(svc, p, 'c1', 10));

    await makeLine(svc, p, 'c1', { limit: 500, status: 'pending_activation' });
    expect((await commit(svc, p, holds[0].reservationId)).status).toBe(200);
    await makeLine(svc, p, 'c1', { limit: 0 });
    expect((await commit(svc, p, holds[1].reservationId)).status).toBe(200);
    await patchProduct(svc, p, { status: 'paused', pauseReason: 'maintenance' });
    expect((await commit(svc, p, holds[2].reservationId)).status).toBe(200);
    await patchProduct(svc, p, { status: 'closed' });
    expect((await commit(svc, p, holds[3].reservationId)).status).toBe(200);
    await patchProduct(svc, p, { status: 'open', opensAt: new Date(Date.now() + 3_600_000).toISOString() });
    expect((await commit(svc, p, holds[4].reservationId)).status).toBe(200);
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 50 });
  });

  it('answers 404 for unknown reservations and products', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    expectProblem(await commit(svc, p, 'nope'), 404, 'RESERVATION_NOT_FOUND');
    expectProblem(await commit(svc, uniqueId('p'), 'nope'), 404, 'PRODUCT_NOT_FOUND');
  });
});

describe('release', () => {
  it('returns the quota at once; a repeated release answers 200 without a second effect', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    const keep = await hold(svc, p, 'c1', 30);
    const r = await hold(svc, p, 'c1', 100);
    expect(await getPool(svc, p)).toMatchObject({ held: 130, available: 870 });

    const first = await release(svc, p, r.reservationId);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ reservationId: r.reservationId, status: 'released', committedAmount: 0 });
    expect(await getPool(svc, p)).toMatchObject({ held: 30, available: 970 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 30, available: 470 });

    const second = await release(svc, p, r.reservationId);
    expect(second.status).toBe(200);
    expect(second.body.status).toBe('released');
    expect(await getPool(svc, p)).toMatchObject({ held: 30, available: 970 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 30 });
    expect((await getReservation(svc, p, r.reservationId)).status).toBe('released');
    expect((await getReservation(svc, p, keep.reservationId)).status).toBe('held');
  });

  it('a released hold cannot be committed: 409 RESERVATION_RELEASED', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1');
    const r = await hold(svc, p, 'c1', 100);
    expect((await release(svc, p, r.reservationId)).status).toBe(200);
    expectProblem(await commit(svc, p, r.reservationId), 409, 'RESERVATION_RELEASED');
    expectProblem(await commit(svc, p, r.reservationId, { amount: 50 }), 409, 'RESERVATION_RELEASED');
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 0 });
  });

  it('releasing a committed reservation answers 409 RESERVATION_ALREADY_COMMITTED', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1');
    const r = await hold(svc, p, 'c1', 100);
    expect((await commit(svc, p, r.reservationId)).status).toBe(200);
    expectProblem(await release(svc, p, r.reservationId), 409, 'RESERVATION_ALREADY_COMMITTED');
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 100 });
  });

  it('answers 404 for unknown reservations and products', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    expectProblem(await release(svc, p, 'nope'), 404, 'RESERVATION_NOT_FOUND');
    expectProblem(await release(svc, uniqueId('p'), 'nope'), 404, 'PRODUCT_NOT_FOUND');
  });
});

describe('expiry (real time, ttlSeconds 1)', () => {
  it('returns the quota once the hold expires; the hold shows expired; commit 409, release 200 expired', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    await makeLine(svc, p, 'c2', { limit: 500 });
    const short = await hold(svc, p, 'c1', 40, { ttlSeconds: 1 });
    const short2 = await hold(svc, p, 'c1', 60, { ttlSeconds: 1 });
    const short3 = await hold(svc, p, 'c2', 70, { ttlSeconds: 1 });
    const long = await hold(svc, p, 'c1', 5);
    expect(await getPool(svc, p)).toMatchObject({ held: 175, available: 825 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 105, available: 395 });

    await sleep(1_300);

    expect(await getPool(svc, p)).toMatchObject({ held: 5, committed: 0, available: 995 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 5, available: 495, drawable: 495 });
    expect(await getLine(svc, p, 'c2')).toMatchObject({ held: 0, available: 500 });
    const r = await getReservation(svc, p, short.reservationId);
    expect(r.status).toBe('expired');
    expect(r.committedAmount).toBe(0);
    expect((await getReservation(svc, p, long.reservationId)).status).toBe('held');

    const c = expectProblem(await commit(svc, p, short2.reservationId), 409, 'RESERVATION_EXPIRED');
    expect(c.detail.length).toBeGreaterThan(0);
    const rel = await release(svc, p, short3.reservationId);
    expect(rel.status).toBe(200);
    expect(rel.body.status).toBe('expired');
    const relAgain = await release(svc, p, short.reservationId);
    expect(relAgain.status).toBe(200);
    expect(relAgain.body.status).toBe('expired');
    // exactly once: nothing was returned twice
    expect(await getPool(svc, p)).toMatchObject({ held: 5, available: 995 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 5 });
    expect(await getLine(svc, p, 'c2')).toMatchObject({ held: 0 });
  });

  it('an expired hold is detected on direct access too (commit right after expiry)', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    const r = await hold(svc, p, 'c1', 100, { ttlSeconds: 1 });
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 1 }), 409, 'CUSTOMER_LIMIT_EXCEEDED');
    await sleep(1_200);
    expectProblem(await commit(svc, p, r.reservationId), 409, 'RESERVATION_EXPIRED');
    // the quota is back: the whole pool can be drawn again
    expect((await reserve(svc, p, { customerId: 'c1', amount: 100 })).status).toBe(201);
  });
});

describe('settlement without SETTLEMENT_URL (a lone instance works end to end)', () => {
  it("a committed reservation settles into the service's own ledger; the settled money can be repaid", async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 500 });
    const r = await hold(svc, p, 'c1', 120, { metadata: { order: 'o-9' } });
    expect((await commit(svc, p, r.reservationId, { amount: 100 })).status).toBe(200);
    const deadline = Date.now() + 10_000;
    let status = '';
    while (Date.now() < deadline) {
      status = (await getReservation(svc, p, r.reservationId)).status;
      if (status !== 'committed') break;
      await sleep(50);
    }
    expect(status).toBe('settled');
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 100, settled: 100, available: 900 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 100, settling: 0, available: 400 });
    const rep = await client(
      svc,
      'POST',
      `/v1/products/${p}/customers/c1/repayments`,
      { amount: 100 },
      { 'Idempotency-Key': uniqueId('k') },
    );
    expect(rep.status).toBe(200);
    expect(rep.body).toMatchObject({ drawn: 0, available: 500 });
    expect(await getPool(svc, p)).toMatchObject({ committed: 100, settled: 100, available: 900 });
  });
});

describe('reservation ids and paths', () => {
  it('rejects malformed path ids with 400 naming the field', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    expectInvalid(await client(svc, 'GET', `/v1/products/${p}/reservations/${'r'.repeat(65)}`), 'reservationId');
    expectInvalid(await release(svc, p, 'a{b}'), 'reservationId');
    expectInvalid(await client(svc, 'GET', `/v1/products/${'p'.repeat(65)}/reservations/x`), 'productId');
  });
});
