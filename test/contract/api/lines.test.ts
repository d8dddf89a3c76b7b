/**
 * Contract: PUT / GET /v1/products/{productId}/customers/{customerId}
 * (credit lines, drawable and blockers).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  ISO_UTC,
  admin,
  client,
  commit,
  expectInvalid,
  expectProblem,
  getLine,
  hold,
  makeLine,
  makeProduct,
  patchProduct,
  reserve,
  uniqueId,
} from '../../support/api.js';

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext();
});
afterAll(() => svc.stop());

describe('PUT /v1/products/{productId}/customers/{customerId}', () => {
  it('answers 201 on create (defaults: status active), 200 on replace, and keeps the counters', async () => {
    const p = await makeProduct(svc, { capacity: 10_000 });
    const created = await admin(svc, 'PUT', `/v1/products/${p}/customers/c1`, { limit: 1000 });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      productId: p,
      customerId: 'c1',
      limit: 1000,
      status: 'active',
      statusReason: null,
      tier: null,
      held: 0,
      drawn: 0,
      settling: 0,
      available: 1000,
      drawable: 1000,
      blockers: [],
    });
    expect(created.body.createdAt).toMatch(ISO_UTC);

    const a = await hold(svc, p, 'c1', 300);
    const b = await hold(svc, p, 'c1', 200);
    expect((await commit(svc, p, b.reservationId)).status).toBe(200);

    const replaced = await admin(svc, 'PUT', `/v1/products/${p}/customers/c1`, {
      limit: 800,
      tier: 'gold',
      statusReason: 'raised',
    });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toMatchObject({
      limit: 800,
      status: 'active',
      tier: 'gold',
      statusReason: 'raised',
      held: 300,
      drawn: 200,
      available: 300,
      drawable: 300,
    });
    // settling is the part of drawn not settled yet (the settlement worker may already have settled it)
    expect([0, 200]).toContain(replaced.body.settling);
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 300, drawn: 200, available: 300 });
    expect((await commit(svc, p, a.reservationId)).status).toBe(200);
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 0, drawn: 500, available: 300 });
  });

  it('answers 404 PRODUCT_NOT_FOUND on an unknown product', async () => {
    const res = await admin(svc, 'PUT', `/v1/products/${uniqueId('p')}/customers/c1`, { limit: 10 });
    expectProblem(res, 404, 'PRODUCT_NOT_FOUND');
  });

  it('validates the line config (400 naming the field)', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    const path = `/v1/products/${p}/customers/c1`;
    expectInvalid(await admin(svc, 'PUT', path, {}), 'limit');
    expectInvalid(await admin(svc, 'PUT', path, { limit: -1 }), 'limit');
    expectInvalid(await admin(svc, 'PUT', path, { limit: '10' }), 'limit');
    expectInvalid(await admin(svc, 'PUT', path, { limit: 0.5 }), 'limit');
    expectInvalid(await admin(svc, 'PUT', path, { limit: 10, status: 'suspended' }), 'status');
    expectInvalid(await admin(svc, 'PUT', path, { limit: 10, tier: 'a:b' }), 'tier');
    expectInvalid(await admin(svc, 'PUT', path, { limit: 10, customerId: 'c2' }), 'customerId');
    expectInvalid(await admin(svc, 'PUT', path, { limit: 10, nickname: 'x' }), 'nickname');
    expectInvalid(
      await admin(svc, 'PUT', `/v1/products/${p}/customers/${'c'.repeat(65)}`, { limit: 10 }),
      'customerId',
    );
    expectProblem(await client(svc, 'GET', `/v1/products/${p}/customers/c1`), 404, 'NO_CREDIT_LINE');
    // limit 0 is allowed
    const zero = await admin(svc, 'PUT', path, { limit: 0 });
    expect(zero.status).toBe(201);
    expect(zero.body).toMatchObject({ limit: 0, available: 0, drawable: 0, blockers: ['CUSTOMER_LIMIT_EXCEEDED'] });
  });
});

describe('GET /v1/products/{productId}/customers/{customerId}', () => {
  it('answers 404 NO_CREDIT_LINE for an unknown customer and PRODUCT_NOT_FOUND for an unknown product', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    expectProblem(await client(svc, 'GET', `/v1/products/${p}/customers/nobody`), 404, 'NO_CREDIT_LINE');
    expectProblem(await client(svc, 'GET', `/v1/products/${uniqueId('p')}/customers/nobody`), 404, 'PRODUCT_NOT_FOUND');
  });

  it('drawable is the largest amount a reserve accepts right now', async () => {
    const p = await makeProduct(svc, { capacity: 10_000, minAmount: 10, maxAmount: 300 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    let line = await getLine(svc, p, 'c1');
    expect(line).toMatchObject({ drawable: 300, blockers: [] }); // maxAmount caps it
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 301 }), 422, 'AMOUNT_OUT_OF_RANGE');
    await hold(svc, p, 'c1', 300);
    await hold(svc, p, 'c1', 300);
    await hold(svc, p, 'c1', 300);
    line = await getLine(svc, p, 'c1');
    expect(line).toMatchObject({ held: 900, available: 100, drawable: 100, blockers: [] });
    const tooMuch = await reserve(svc, p, { customerId: 'c1', amount: 101 });
    expect(expectProblem(tooMuch, 409, 'CUSTOMER_LIMIT_EXCEEDED').drawable).toBe(100);
    await hold(svc, p, 'c1', 95);
    // 5 left on the line, below minAmount 10: nothing is drawable
    line = await getLine(svc, p, 'c1');
    expect(line).toMatchObject({ available: 5, drawable: 0, blockers: ['CUSTOMER_LIMIT_EXCEEDED'] });
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 10 }), 409, 'CUSTOMER_LIMIT_EXCEEDED');
  });

  it('drawable is limited by the pool as well as by the line', async () => {
    const p = await makeProduct(svc, { capacity: 250 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    await makeLine(svc, p, 'c2', { limit: 100 });
    expect((await getLine(svc, p, 'c1')).drawable).toBe(250);
    expect((await getLine(svc, p, 'c2')).drawable).toBe(100);
    await hold(svc, p, 'c1', 200);
    expect((await getLine(svc, p, 'c1')).drawable).toBe(50);
    expect((await getLine(svc, p, 'c2')).drawable).toBe(50);
    const refused = await reserve(svc, p, { customerId: 'c2', amount: 51 });
    expect(expectProblem(refused, 409, 'POOL_EXHAUSTED').drawable).toBe(50);
    expect((await reserve(svc, p, { customerId: 'c2', amount: 50 })).status).toBe(201);
    const line = await getLine(svc, p, 'c2');
    expect(line).toMatchObject({ drawable: 0, blockers: ['POOL_EXHAUSTED'], available: 50 });
  });

  it('retryAt: the time every blocker has lifted, only when each ends at a known time', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const opensAt = new Date(Date.now() + 3_600_000).toISOString();
    const resumeAt = new Date(Date.now() + 7_200_000).toISOString();
    await patchProduct(svc, p, { opensAt });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ blockers: ['PRODUCT_NOT_OPEN'], retryAt: opensAt });
    // Paused until after the opening: the later of the two.
    await patchProduct(svc, p, { status: 'paused', resumeAt });
    expect(await getLine(svc, p, 'c1')).toMatchObject({
      blockers: ['PRODUCT_PAUSED', 'PRODUCT_NOT_OPEN'],
      retryAt: resumeAt,
    });
    // Paused with no end: no retry time, though the opening is known.
    await patchProduct(svc, p, { status: 'paused' });
    expect(await getLine(svc, p, 'c1')).toMatchObject({
      blockers: ['PRODUCT_PAUSED', 'PRODUCT_NOT_OPEN'],
      retryAt: null,
    });
    // Closed: none either.
    await patchProduct(svc, p, { status: 'closed' });
    expect(await getLine(svc, p, 'c1')).toMatchObject({
      blockers: ['PRODUCT_CLOSED', 'PRODUCT_NOT_OPEN'],
      retryAt: null,
    });
    // Open but not yet open, and the line frozen: none.
    await patchProduct(svc, p, { status: 'open' });
    await makeLine(svc, p, 'c1', { limit: 1000, status: 'frozen', statusReason: 'risk' });
    expect(await getLine(svc, p, 'c1')).toMatchObject({
      blockers: ['PRODUCT_NOT_OPEN', 'ACCOUNT_FROZEN'],
      retryAt: null,
    });
  });

  it('lists every blocker at once, and blockers are empty exactly when drawable > 0', async () => {
    const p = await makeProduct(svc, { capacity: 0 });
    await makeLine(svc, p, 'c1', { limit: 0, status: 'frozen', statusReason: 'risk review' });
    await patchProduct(svc, p, { status: 'paused', pauseReason: 'maintenance' });

    const all = await getLine(svc, p, 'c1');
    expect(all.drawable).toBe(0);
    expect([...all.blockers].sort()).toEqual(
      ['ACCOUNT_FROZEN', 'CUSTOMER_LIMIT_EXCEEDED', 'POOL_EXHAUSTED', 'PRODUCT_PAUSED'].sort(),
    );

    await patchProduct(svc, p, { status: 'open' });
    let line = await getLine(svc, p, 'c1');
    expect([...line.blockers].sort()).toEqual(['ACCOUNT_FROZEN', 'CUSTOMER_LIMIT_EXCEEDED', 'POOL_EXHAUSTED']);
    expect(line.drawable).toBe(0);

    await makeLine(svc, p, 'c1', { limit: 0, status: 'active' });
    line = await getLine(svc, p, 'c1');
    expect([...line.blockers].sort()).toEqual(['CUSTOMER_LIMIT_EXCEEDED', 'POOL_EXHAUSTED']);

    await makeLine(svc, p, 'c1', { limit: 50 });
    line = await getLine(svc, p, 'c1');
    expect(line).toMatchObject({ blockers: ['POOL_EXHAUSTED'], drawable: 0 });

    await patchProduct(svc, p, { capacity: 40 });
    line = await getLine(svc, p, 'c1');
    expect(line).toMatchObject({ blockers: [], drawable: 40 });
  });

  it('lists product window and line-status blockers together', async () => {
    const opensAt = new Date(Date.now() + 3_600_000).toISOString();
    const p = await makeProduct(svc, { capacity: 100, opensAt });
    await makeLine(svc, p, 'pending', { limit: 100, status: 'pending_activation', statusReason: 'kyc' });
    await makeLine(svc, p, 'closed', { limit: 100, status: 'closed' });
    await makeLine(svc, p, 'ok', { limit: 100 });
    expect(await getLine(svc, p, 'pending')).toMatchObject({ drawable: 0 });
    expect([...(await getLine(svc, p, 'pending')).blockers].sort()).toEqual([
      'ACCOUNT_PENDING_ACTIVATION',
      'PRODUCT_NOT_OPEN',
    ]);
    expect([...(await getLine(svc, p, 'closed')).blockers].sort()).toEqual(['ACCOUNT_CLOSED', 'PRODUCT_NOT_OPEN']);
    expect(await getLine(svc, p, 'ok')).toMatchObject({ drawable: 0, blockers: ['PRODUCT_NOT_OPEN'] });

    await patchProduct(svc, p, { status: 'closed' });
    expect([...(await getLine(svc, p, 'ok')).blockers].sort()).toEqual(['PRODUCT_CLOSED', 'PRODUCT_NOT_OPEN']);
  });

  it('shows what the reserve decision uses: a line showing drawable > 0 can draw exactly that', async () => {
    const p = await makeProduct(svc, { capacity: 777, priorityReserve: { tiers: ['gold'], amount: 77 } });
    const cases: [string, Record<string, unknown>][] = [
      ['a', { limit: 1000 }],
      ['b', { limit: 1000, tier: 'gold' }],
      ['c', { limit: 123 }],
    ];
    for (const [c, cfg] of cases) await makeLine(svc, p, c, cfg);
    for (const [c] of cases) {
      const { drawable } = await getLine(svc, p, c);
      expect(drawable).toBeGreaterThan(0);
      const over = await reserve(svc, p, { customerId: c, amount: drawable + 1 });
      expect(over.status).toBe(409);
      expect(over.body.drawable).toBe(drawable);
      const granted = await reserve(svc, p, { customerId: c, amount: drawable });
      expect(granted.status).toBe(201);
      const res = await client(svc, 'POST', `/v1/products/${p}/reservations/${granted.body.reservationId}/release`);
      expect(res.status).toBe(200);
    }
  });
});
