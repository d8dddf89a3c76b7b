/**
 * Contract: PUT / PATCH / GET /v1/products/{productId} (the product pool).
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
  getPool,
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

describe('PUT /v1/products/{productId}', () => {
  it('answers 201 with the snapshot on create, 200 on replace, and keeps the counters', async () => {
    const p = uniqueId('p');
    const created = await admin(svc, 'PUT', `/v1/products/${p}`, {
      capacity: 1000,
      maxAmount: 500,
      holdTtlSeconds: 120,
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('content-type')).toMatch(/^application\/json/);
    expect(created.body).toMatchObject({
      productId: p,
      capacity: 1000,
      held: 0,
      committed: 0,
      settled: 0,
      available: 1000,
      availableToAllTiers: 1000,
      minAmount: 1,
      maxAmount: 500,
      holdTtlSeconds: 120,
      status: 'open',
    });

    await makeLine(svc, p, 'c1', { limit: 1000 });
    const h = await hold(svc, p, 'c1', 200);
    const h2 = await hold(svc, p, 'c1', 100);
    expect((await commit(svc, p, h2.reservationId)).status).toBe(200);

    const replaced = await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 2000 });
    expect(replaced.status).toBe(200);
    // counters kept; config replaced (fields not given take their defaults)
    expect(replaced.body).toMatchObject({
      productId: p,
      capacity: 2000,
      held: 200,
      committed: 100,
      available: 1700,
      maxAmount: null,
      holdTtlSeconds: 300,
      minAmount: 1,
    });
    const snap = await getPool(svc, p);
    expect(snap).toMatchObject({ capacity: 2000, held: 200, committed: 100, available: 1700 });
    // the hold survived the replace and still commits
    const c = await commit(svc, p, h.reservationId);
    expect(c.status).toBe(200);
    expect((await getPool(svc, p)).committed).toBe(300);
  });

  it('applies the documented defaults', async () => {
    const p = uniqueId('p');
    const res = await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 0 });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      capacity: 0,
      available: 0,
      minAmount: 1,
      maxAmount: null,
      holdTtlSeconds: 300,
      status: 'open',
      opensAt: null,
      closesAt: null,
      resumeAt: null,
      pauseReason: null,
      priorityReserve: null,
    });
  });

  it('accepts the productId in the body only when it matches the path', async () => {
    const p = uniqueId('p');
    expect((await admin(svc, 'PUT', `/v1/products/${p}`, { productId: p, capacity: 5 })).status).toBe(201);
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, { productId: 'other', capacity: 5 }), 'productId');
  });

  it('rejects invalid configs with 400 naming the field', async () => {
    const p = uniqueId('p');
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, {}), 'capacity');
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: -1 }), 'capacity');
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: '10' }), 'capacity');
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 1.5 }), 'capacity');
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 2 ** 53 }), 'capacity');
    expectInvalid(
      await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 10, holdTtlSeconds: 86_401 }),
      'holdTtlSeconds',
    );
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 10, holdTtlSeconds: 0 }), 'holdTtlSeconds');
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 10, minAmount: 0 }), 'minAmount');
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 10, status: 'frozen' }), 'status');
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 10, opensAt: 'tomorrow' }), 'opensAt');
    expectInvalid(
      await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 10, minAmount: 10, maxAmount: 5 }),
      'maxAmount',
    );
    expectInvalid(
      await admin(svc, 'PUT', `/v1/products/${p}`, {
        capacity: 10,
        opensAt: '2030-01-02T00:00:00Z',
        closesAt: '2030-01-01T00:00:00Z',
      }),
      'closesAt',
    );
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 10, colour: 'red' }), 'colour');
    // none of these created the product
    expectProblem(await client(svc, 'GET', `/v1/products/${p}`), 404, 'PRODUCT_NOT_FOUND');
    // 2^53-1 is a valid capacity
    const big = await admin(svc, 'PUT', `/v1/products/${p}`, { capacity: 2 ** 53 - 1 });
    expect(big.status).toBe(201);
    expect(big.body.capacity).toBe(2 ** 53 - 1);
  });
});

describe('PATCH /v1/products/{productId}', () => {
  it('changes only the given fields: status, pauseReason, resumeAt, capacity', async () => {
    const p = await makeProduct(svc, { capacity: 1000, maxAmount: 400, holdTtlSeconds: 60 });
    const resumeAt = '2031-05-06T07:08:09+08:00';
    const paused = await patchProduct(svc, p, { status: 'paused', pauseReason: 'maintenance', resumeAt });
    expect(paused).toMatchObject({
      status: 'paused',
      pauseReason: 'maintenance',
      capacity: 1000,
      maxAmount: 400,
      holdTtlSeconds: 60,
    });
    expect(paused.resumeAt).toMatch(ISO_UTC);
    expect(Date.parse(paused.resumeAt)).toBe(Date.parse(resumeAt));
    expect(paused.resumeAt).toBe('2031-05-05T23:08:09.000Z');

    const more = await patchProduct(svc, p, { capacity: 5000 });
    expect(more).toMatchObject({
      capacity: 5000,
      available: 5000,
      status: 'paused',
      pauseReason: 'maintenance',
      maxAmount: 400,
    });

    const open = await patchProduct(svc, p, { status: 'open', pauseReason: null, resumeAt: null });
    expect(open).toMatchObject({ status: 'open', pauseReason: null, resumeAt: null, capacity: 5000 });
    expect(await getPool(svc, p)).toMatchObject({ status: 'open', pauseReason: null, resumeAt: null, capacity: 5000 });
  });

  it('keeps the counters', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    await hold(svc, p, 'c1', 250);
    const after = await patchProduct(svc, p, { status: 'closed' });
    expect(after).toMatchObject({ held: 250, committed: 0, available: 750, status: 'closed' });
  });

  it(
    'a pause whose resumeAt has passed reads open and draws again; ' + 'a new pause without resumeAt stops draws again',
    async () => {
      const p = await makeProduct(svc, { capacity: 1000 });
      await makeLine(svc, p, 'c1', { limit: 1000 });
      // 2 s ahead: the PATCH and the refused reserve must land before it, even on a stalled machine.
      const resumeAt = new Date(Date.now() + 2_000).toISOString();
      expect(await patchProduct(svc, p, { status: 'paused', pauseReason: 'deploy', resumeAt })).toMatchObject({
        status: 'paused',
        pauseReason: 'deploy',
      });
      expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 10 }), 409, 'PRODUCT_PAUSED');
      await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(resumeAt) - Date.now()) + 300));

      // Past resumeAt: the snapshot shows the status in force, and reserves are granted.
      expect(await getPool(svc, p)).toMatchObject({
        status: 'open',
        pauseReason: 'deploy',
        resumeAt: new Date(Date.parse(resumeAt)).toISOString(),
      });
      expect((await getLine(svc, p, 'c1')).blockers).toEqual([]);
      await hold(svc, p, 'c1', 10);

      // An incident: pause with no resumeAt. The old, passed resumeAt must not reopen it.
      const paused = await patchProduct(svc, p, { status: 'paused', pauseReason: 'incident' });
      expect(paused).toMatchObject({ status: 'paused', pauseReason: 'incident', resumeAt: null });
      const refused = await reserve(svc, p, { customerId: 'c1', amount: 10 });
      expectProblem(refused, 409, 'PRODUCT_PAUSED');
      expect(refused.headers.get('retry-after')).toBeNull();
      expect((await getLine(svc, p, 'c1')).blockers).toEqual(['PRODUCT_PAUSED']);

      // Reopening clears the pause's reason; a patch without status keeps the rest.
      expect(await patchProduct(svc, p, { status: 'open' })).toMatchObject({
        status: 'open',
        pauseReason: null,
        resumeAt: null,
      });
      expect(await patchProduct(svc, p, { pauseReason: 'announced' })).toMatchObject({
        status: 'open',
        pauseReason: 'announced',
      });
      expect(await patchProduct(svc, p, { capacity: 2000 })).toMatchObject({
        status: 'open',
        pauseReason: 'announced',
        capacity: 2000,
      });
    },
  );

  it('answers 404 PRODUCT_NOT_FOUND for an unknown product (and does not create it)', async () => {
    const p = uniqueId('p');
    expectProblem(await admin(svc, 'PATCH', `/v1/products/${p}`, { status: 'paused' }), 404, 'PRODUCT_NOT_FOUND');
    expectProblem(await client(svc, 'GET', `/v1/products/${p}`), 404, 'PRODUCT_NOT_FOUND');
  });

  it('rejects an empty or invalid patch with 400', async () => {
    const p = await makeProduct(svc, { capacity: 10 });
    expectProblem(await admin(svc, 'PATCH', `/v1/products/${p}`, {}), 400, 'INVALID_REQUEST');
    expectInvalid(await admin(svc, 'PATCH', `/v1/products/${p}`, { status: 'sleeping' }), 'status');
    expectInvalid(await admin(svc, 'PATCH', `/v1/products/${p}`, { capacity: -5 }), 'capacity');
    expectInvalid(await admin(svc, 'PATCH', `/v1/products/${p}`, { resumeAt: 12345 }), 'resumeAt');
    expectInvalid(await admin(svc, 'PATCH', `/v1/products/${p}`, { maxAmount: 0 }), 'maxAmount');
    expectInvalid(await admin(svc, 'PATCH', `/v1/products/${p}`, { bogus: true }), 'bogus');
    expect((await getPool(svc, p)).capacity).toBe(10);
  });
});

describe('GET /v1/products/{productId}', () => {
  it('returns config, counters, available and availableToAllTiers (priority reserve)', async () => {
    const opensAt = new Date(Date.now() - 60_000).toISOString();
    const closesAt = new Date(Date.now() + 3_600_000).toISOString();
    const p = await makeProduct(svc, {
      capacity: 1000,
      minAmount: 10,
      maxAmount: 900,
      holdTtlSeconds: 600,
      opensAt,
      closesAt,
      priorityReserve: { tiers: ['gold', 'vip'], amount: 300 },
    });
    const snap = await getPool(svc, p);
    expect(snap).toMatchObject({
      productId: p,
      capacity: 1000,
      held: 0,
      committed: 0,
      settled: 0,
      available: 1000,
      availableToAllTiers: 700,
      minAmount: 10,
      maxAmount: 900,
      holdTtlSeconds: 600,
      status: 'open',
      priorityReserve: { tiers: ['gold', 'vip'], amount: 300 },
    });
    expect(Date.parse(snap.opensAt)).toBe(Date.parse(opensAt));
    expect(Date.parse(snap.closesAt)).toBe(Date.parse(closesAt));
    for (const t of [snap.opensAt, snap.closesAt, snap.createdAt, snap.updatedAt]) expect(t).toMatch(ISO_UTC);

    await makeLine(svc, p, 'plain', { limit: 5000 });
    await makeLine(svc, p, 'gold1', { limit: 5000, tier: 'gold' });
    // an unlisted line sees only what is open to all tiers
    expect((await getLine(svc, p, 'plain')).drawable).toBe(700);
    expect((await getLine(svc, p, 'gold1')).drawable).toBe(900); // capped by maxAmount
    const over = await reserve(svc, p, { customerId: 'plain', amount: 701 });
    expect(expectProblem(over, 409, 'POOL_EXHAUSTED').drawable).toBe(700);

    await hold(svc, p, 'plain', 600);
    expect(await getPool(svc, p)).toMatchObject({ held: 600, available: 400, availableToAllTiers: 100 });
    expect((await getLine(svc, p, 'plain')).drawable).toBe(100);
    expect((await getLine(svc, p, 'gold1')).drawable).toBe(400);

    await hold(svc, p, 'plain', 100);
    expect(await getPool(svc, p)).toMatchObject({ held: 700, available: 300, availableToAllTiers: 0 });
    const plain = await getLine(svc, p, 'plain');
    expect(plain.drawable).toBe(0);
    expect(plain.blockers).toEqual(['POOL_EXHAUSTED']);
    expectProblem(await reserve(svc, p, { customerId: 'plain', amount: 10 }), 409, 'POOL_EXHAUSTED');

    // the listed tier can take the reserve
    await hold(svc, p, 'gold1', 300);
    expect(await getPool(svc, p)).toMatchObject({ held: 1000, available: 0, availableToAllTiers: 0 });
    const gold = await reserve(svc, p, { customerId: 'gold1', amount: 10 });
    expect(expectProblem(gold, 409, 'POOL_EXHAUSTED').drawable).toBe(0);
  });

  it('answers 404 PRODUCT_NOT_FOUND for an unknown product', async () => {
    expectProblem(await client(svc, 'GET', `/v1/products/${uniqueId('p')}`), 404, 'PRODUCT_NOT_FOUND');
  });
});

describe('lowering capacity below held + committed', () => {
  it('shows available 0 (never negative), refuses new holds, and lets existing holds commit', async () => {
    const p = await makeProduct(svc, { capacity: 1000, priorityReserve: { tiers: ['gold'], amount: 100 } });
    await makeLine(svc, p, 'c1', { limit: 10_000 });
    const a = await hold(svc, p, 'c1', 600);
    const b = await hold(svc, p, 'c1', 300);
    expect((await commit(svc, p, b.reservationId)).status).toBe(200);

    const lowered = await patchProduct(svc, p, { capacity: 500 });
    expect(lowered).toMatchObject({ capacity: 500, held: 600, committed: 300, available: 0, availableToAllTiers: 0 });
    expect(await getPool(svc, p)).toMatchObject({ available: 0, availableToAllTiers: 0 });

    const line = await getLine(svc, p, 'c1');
    expect(line.drawable).toBe(0);
    expect(line.blockers).toEqual(['POOL_EXHAUSTED']);
    const refused = await reserve(svc, p, { customerId: 'c1', amount: 1 });
    expect(expectProblem(refused, 409, 'POOL_EXHAUSTED').drawable).toBe(0);

    const committed = await commit(svc, p, a.reservationId);
    expect(committed.status).toBe(200);
    expect(committed.body).toMatchObject({ status: 'committed', committedAmount: 600 });
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 900, available: 0, availableToAllTiers: 0 });

    // capacity 0 is allowed too
    expect(await patchProduct(svc, p, { capacity: 0 })).toMatchObject({ capacity: 0, available: 0 });
  });
});
