/**
 * Contract: every reserve refusal (409 / 422) with its status, problem body,
 * drawable, Retry-After, and the precedence order between them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  expectProblem,
  expectRetryAfterUntil,
  getLine,
  getPool,
  hold,
  makeLine,
  makeProduct,
  patchProduct,
  reserve,
  retryAfterOf,
  sleep,
  uniqueId,
} from '../../support/api.js';

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext();
});
afterAll(() => svc.stop());

const inMs = (ms: number) => new Date(Date.now() + ms).toISOString();

describe('404 on reserve', () => {
  it('PRODUCT_NOT_FOUND and NO_CREDIT_LINE', async () => {
    expectProblem(await reserve(svc, uniqueId('p'), { customerId: 'c1', amount: 1 }), 404, 'PRODUCT_NOT_FOUND');
    const p = await makeProduct(svc, { capacity: 100 });
    expectProblem(await reserve(svc, p, { customerId: 'nobody', amount: 1 }), 404, 'NO_CREDIT_LINE');
  });
});

describe('quota refusals (409) carry drawable', () => {
  it('POOL_EXHAUSTED: the pool cannot cover the amount', async () => {
    const p = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    await hold(svc, p, 'c1', 70);
    const body = expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 31 }), 409, 'POOL_EXHAUSTED');
    expect(body.drawable).toBe(30);
    expect((await getLine(svc, p, 'c1')).drawable).toBe(30);
    expect((await getPool(svc, p)).held).toBe(70);
  });

  it('CUSTOMER_LIMIT_EXCEEDED: the line cannot cover the amount', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    await hold(svc, p, 'c1', 60);
    const body = expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 41 }), 409, 'CUSTOMER_LIMIT_EXCEEDED');
    expect(body.drawable).toBe(40);
    expect((await getPool(svc, p)).held).toBe(60);
  });

  it('drawable is a number on every quota refusal', async () => {
    const p = await makeProduct(svc, { capacity: 10 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    const res = await reserve(svc, p, { customerId: 'c1', amount: 11 });
    expectProblem(res, 409, 'POOL_EXHAUSTED');
    expect(typeof res.body.drawable).toBe('number');
  });
});

describe('line status refusals (409, detail carries statusReason)', () => {
  for (const [status, code] of [
    ['pending_activation', 'ACCOUNT_PENDING_ACTIVATION'],
    ['frozen', 'ACCOUNT_FROZEN'],
    ['closed', 'ACCOUNT_CLOSED'],
  ] as const) {
    it(`${status} -> ${code}`, async () => {
      const p = await makeProduct(svc, { capacity: 1000 });
      const reason = `reason for ${status} #${uniqueId('r')}`;
      await makeLine(svc, p, 'c1', { limit: 1000, status, statusReason: reason });
      const body = expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 10 }), 409, code);
      expect(body.detail).toContain(reason);
      expect(body.drawable).toBe(0);
      expect(await getPool(svc, p)).toMatchObject({ held: 0 });
      const line = await getLine(svc, p, 'c1');
      expect(line).toMatchObject({ drawable: 0, blockers: [code], statusReason: reason });
    });
  }

  it('without a statusReason the refusal still has a detail', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1', { limit: 1000, status: 'frozen' });
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 10 }), 409, 'ACCOUNT_FROZEN');
  });
});

describe('product status and window refusals (409)', () => {
  it('PRODUCT_NOT_OPEN before opensAt, with Retry-After in whole seconds until opensAt', async () => {
    const opensAt = Date.now() + 30_500;
    const p = await makeProduct(svc, { capacity: 1000, opensAt: new Date(opensAt).toISOString() });
    await makeLine(svc, p, 'c1');
    const t0 = Date.now();
    const res = await reserve(svc, p, { customerId: 'c1', amount: 10 });
    const t1 = Date.now();
    const body = expectProblem(res, 409, 'PRODUCT_NOT_OPEN');
    expectRetryAfterUntil(res, opensAt, t0, t1);
    expect(body.drawable).toBe(0);
  });

  it('PRODUCT_NOT_OPEN Retry-After is rounded up and at least 1', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1');
    await patchProduct(svc, p, { opensAt: inMs(950) });
    const res = await reserve(svc, p, { customerId: 'c1', amount: 10 });
    expectProblem(res, 409, 'PRODUCT_NOT_OPEN');
    expect(res.headers.get('retry-after')).toBe('1');
  });

  it('PRODUCT_CLOSED when status is closed (no Retry-After)', async () => {
    const p = await makeProduct(svc, { capacity: 1000, status: 'closed' });
    await makeLine(svc, p, 'c1');
    const res = await reserve(svc, p, { customerId: 'c1', amount: 10 });
    expectProblem(res, 409, 'PRODUCT_CLOSED');
    expect(res.headers.get('retry-after')).toBeNull();
  });

  it('PRODUCT_CLOSED at or after closesAt', async () => {
    const p = await makeProduct(svc, { capacity: 1000, closesAt: inMs(-1_000) });
    await makeLine(svc, p, 'c1');
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 10 }), 409, 'PRODUCT_CLOSED');
    expect((await getLine(svc, p, 'c1')).blockers).toEqual(['PRODUCT_CLOSED']);
  });

  it('PRODUCT_PAUSED with Retry-After from resumeAt when set; without resumeAt no Retry-After', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1');
    const resumeAt = Date.now() + 90_400;
    await patchProduct(svc, p, {
      status: 'paused',
      pauseReason: 'maintenance',
      resumeAt: new Date(resumeAt).toISOString(),
    });
    const t0 = Date.now();
    const res = await reserve(svc, p, { customerId: 'c1', amount: 10 });
    const t1 = Date.now();
    expectProblem(res, 409, 'PRODUCT_PAUSED');
    expectRetryAfterUntil(res, resumeAt, t0, t1);
    expect(res.body.detail).toContain('maintenance'); // the pause reason, said to the customer

    await patchProduct(svc, p, { resumeAt: null });
    const res2 = await reserve(svc, p, { customerId: 'c1', amount: 10 });
    expectProblem(res2, 409, 'PRODUCT_PAUSED');
    expect(res2.headers.get('retry-after')).toBeNull();
  });

  it('a paused pool whose resumeAt has passed counts as open', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    await makeLine(svc, p, 'c1');
    await patchProduct(svc, p, { status: 'paused', resumeAt: inMs(-1_000) });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ blockers: [], drawable: 1000 });
    expect((await reserve(svc, p, { customerId: 'c1', amount: 10 })).status).toBe(201);
  });

  it('windows and pauses take effect as the clock passes them (real time)', async () => {
    const paused = await makeProduct(svc, { capacity: 1000 });
    const closing = await makeProduct(svc, { capacity: 1000 });
    const opening = await makeProduct(svc, { capacity: 1000 });
    for (const q of [paused, closing, opening]) await makeLine(svc, q, 'c1');
    const at = Date.now() + 1_500;
    await Promise.all([
      patchProduct(svc, paused, { status: 'paused', resumeAt: new Date(at).toISOString() }),
      patchProduct(svc, closing, { closesAt: new Date(at).toISOString() }),
      patchProduct(svc, opening, { opensAt: new Date(at).toISOString() }),
    ]);

    const pausedRes = await reserve(svc, paused, { customerId: 'c1', amount: 1 });
    expectProblem(pausedRes, 409, 'PRODUCT_PAUSED');
    expect(retryAfterOf(pausedRes)).toBeLessThanOrEqual(2);
    expect((await reserve(svc, closing, { customerId: 'c1', amount: 1 })).status).toBe(201);
    const openingRes = await reserve(svc, opening, { customerId: 'c1', amount: 1 });
    expectProblem(openingRes, 409, 'PRODUCT_NOT_OPEN');
    expect(retryAfterOf(openingRes)).toBeLessThanOrEqual(2);

    await sleep(at - Date.now() + 150);

    expect((await reserve(svc, paused, { customerId: 'c1', amount: 1 })).status).toBe(201);
    expectProblem(await reserve(svc, closing, { customerId: 'c1', amount: 1 }), 409, 'PRODUCT_CLOSED');
    expect((await reserve(svc, opening, { customerId: 'c1', amount: 1 })).status).toBe(201);
  });
});

describe('422 AMOUNT_OUT_OF_RANGE', () => {
  it('below minAmount or above maxAmount', async () => {
    const p = await makeProduct(svc, { capacity: 10_000, minAmount: 100, maxAmount: 500 });
    await makeLine(svc, p, 'c1', { limit: 10_000 });
    const low = expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 99 }), 422, 'AMOUNT_OUT_OF_RANGE');
    expect(low.detail).toMatch(/100/);
    const high = expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 501 }), 422, 'AMOUNT_OUT_OF_RANGE');
    expect(high.detail).toMatch(/500/);
    expect((await reserve(svc, p, { customerId: 'c1', amount: 100 })).status).toBe(201);
    expect((await reserve(svc, p, { customerId: 'c1', amount: 500 })).status).toBe(201);
    expect((await getPool(svc, p)).held).toBe(600);
  });
});

describe('precedence: product status, then line status, then amount range, then limit, then pool', () => {
  it('walks down the order as each rule is lifted', async () => {
    // everything wrong at once
    const p = await makeProduct(svc, { capacity: 50, minAmount: 200, maxAmount: 300 });
    await makeLine(svc, p, 'c1', { limit: 100, status: 'frozen', statusReason: 'risk' });
    await patchProduct(svc, p, { status: 'paused', closesAt: inMs(-1_000) });
    const body = { customerId: 'c1', amount: 150 };

    expectProblem(await reserve(svc, p, body), 409, 'PRODUCT_CLOSED');
    await patchProduct(svc, p, { closesAt: null });
    expectProblem(await reserve(svc, p, body), 409, 'PRODUCT_PAUSED');
    await patchProduct(svc, p, { status: 'open', opensAt: inMs(3_600_000) });
    expectProblem(await reserve(svc, p, body), 409, 'PRODUCT_NOT_OPEN');
    await patchProduct(svc, p, { opensAt: null });
    expectProblem(await reserve(svc, p, body), 409, 'ACCOUNT_FROZEN');
    await makeLine(svc, p, 'c1', { limit: 100 });
    expectProblem(await reserve(svc, p, body), 422, 'AMOUNT_OUT_OF_RANGE');
    await patchProduct(svc, p, { minAmount: 1 });
    expectProblem(await reserve(svc, p, body), 409, 'CUSTOMER_LIMIT_EXCEEDED');
    await makeLine(svc, p, 'c1', { limit: 1000 });
    expectProblem(await reserve(svc, p, body), 409, 'POOL_EXHAUSTED');
    await patchProduct(svc, p, { capacity: 1000 });
    expect((await reserve(svc, p, body)).status).toBe(201);
  });

  it('closed status beats paused and not-yet-open; paused beats not-yet-open', async () => {
    const p = await makeProduct(svc, { capacity: 1000, status: 'closed', opensAt: inMs(3_600_000) });
    await makeLine(svc, p, 'c1');
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 1 }), 409, 'PRODUCT_CLOSED');
    await patchProduct(svc, p, { status: 'paused' });
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 1 }), 409, 'PRODUCT_PAUSED');
  });

  it('each line status beats the amount range, the limit and the pool', async () => {
    const p = await makeProduct(svc, { capacity: 0, maxAmount: 5 });
    for (const [status, code] of [
      ['pending_activation', 'ACCOUNT_PENDING_ACTIVATION'],
      ['frozen', 'ACCOUNT_FROZEN'],
      ['closed', 'ACCOUNT_CLOSED'],
    ] as const) {
      await makeLine(svc, p, status, { limit: 0, status });
      expectProblem(await reserve(svc, p, { customerId: status, amount: 10 }), 409, code);
    }
  });

  it('the amount range beats the limit and the pool; the limit beats the pool', async () => {
    const p = await makeProduct(svc, { capacity: 0, maxAmount: 5 });
    await makeLine(svc, p, 'c1', { limit: 0 });
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 10 }), 422, 'AMOUNT_OUT_OF_RANGE');
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 5 }), 409, 'CUSTOMER_LIMIT_EXCEEDED');
  });

  it('NO_CREDIT_LINE beats the product status', async () => {
    const p = await makeProduct(svc, { capacity: 1000, status: 'closed' });
    expectProblem(await reserve(svc, p, { customerId: 'nobody', amount: 1 }), 404, 'NO_CREDIT_LINE');
  });
});
