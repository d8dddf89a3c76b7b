/**
 * Contract: GET /healthz, /readyz, /metrics (no key needed); 429 is off
 * unless configured; unknown routes still answer problem+json.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import { expectProblem, getLine, makeLine, makeProduct, raw, reserve } from '../../support/api.js';

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext();
});
afterAll(() => svc.stop());

function counter(metricsText: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    const have = labelText.split(',');
    if (want.every((w) => have.includes(w))) return Number(line.slice(line.indexOf('}') + 1).trim());
  }
  return NaN;
}

describe('health and readiness', () => {
  it('GET /healthz answers 200 without a key', async () => {
    const res = await raw(svc, 'GET', '/healthz', { key: null });
    expect(res.status).toBe(200);
  });

  it('GET /readyz answers 200 with redis and scripts true, without a key', async () => {
    const res = await raw(svc, 'GET', '/readyz', { key: null });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ redis: true, scripts: true });
    expect(res.body.draining).not.toBe(true);
  });
});

describe('metrics', () => {
  it('GET /metrics is Prometheus text with quota_decisions_total counting decisions', async () => {
    const p = await makeProduct(svc, { capacity: 10 });
    await makeLine(svc, p, 'c1', { limit: 100 });
    const before = await raw(svc, 'GET', '/metrics', { key: null });
    expect(before.status).toBe(200);
    expect(before.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(before.text).toContain('# TYPE quota_decisions_total counter');
    const ok0 = counter(before.text, 'quota_decisions_total', { operation: 'reserve', result: 'OK' });
    const ex0 = counter(before.text, 'quota_decisions_total', { operation: 'reserve', result: 'POOL_EXHAUSTED' });
    expect(ok0).toBeGreaterThanOrEqual(0);
    expect(ex0).toBeGreaterThanOrEqual(0);

    expect((await reserve(svc, p, { customerId: 'c1', amount: 5 })).status).toBe(201);
    expectProblem(await reserve(svc, p, { customerId: 'c1', amount: 6 }), 409, 'POOL_EXHAUSTED');

    const after = await raw(svc, 'GET', '/metrics', { key: null });
    expect(counter(after.text, 'quota_decisions_total', { operation: 'reserve', result: 'OK' })).toBe(ok0 + 1);
    expect(counter(after.text, 'quota_decisions_total', { operation: 'reserve', result: 'POOL_EXHAUSTED' })).toBe(
      ex0 + 1,
    );
    // labels are bounded: products label the pool gauges, but no customer or reservation ids appear
    expect(after.text).toContain(`quota_pool_capacity{product="${p}"}`);
    expect(after.text).not.toMatch(/[{,](customer|reservation)\w*=/i);
  });
});

describe('pool gauges', () => {
  it("are the pool snapshot's numbers: quota_pool_available is what the priority tiers can still take", async () => {
    const p = await makeProduct(svc, { capacity: 100, priorityReserve: { tiers: ['gold'], amount: 30 } });
    await makeLine(svc, p, 'c1', { limit: 100 });
    expect((await reserve(svc, p, { customerId: 'c1', amount: 20 })).status).toBe(201);
    const pool = (await raw(svc, 'GET', `/v1/products/${p}`)).body;
    expect(pool).toMatchObject({ capacity: 100, held: 20, committed: 0, available: 80, availableToAllTiers: 50 });
    // Scrapes within 500 ms share one read: wait one out so this product is in the next.
    await new Promise((resolve) => setTimeout(resolve, 600));
    const text = (await raw(svc, 'GET', '/metrics', { key: null })).text;
    for (const field of ['capacity', 'held', 'committed', 'settled', 'available'] as const) {
      expect(counter(text, `quota_pool_${field}`, { product: p }), field).toBe(pool[field]);
    }
  });
});

describe('rate limiting is off unless configured', () => {
  it('a burst of requests for one customer and one key gets no 429', async () => {
    const p = await makeProduct(svc, { capacity: 1_000_000 });
    await makeLine(svc, p, 'c1', { limit: 1_000_000 });
    const statuses: number[] = [];
    for (let round = 0; round < 6; round++) {
      const batch = await Promise.all([
        ...Array.from({ length: 25 }, () => raw(svc, 'GET', `/v1/products/${p}/customers/c1`)),
        ...Array.from({ length: 25 }, () => reserve(svc, p, { customerId: 'c1', amount: 1 })),
      ]);
      statuses.push(...batch.map((r) => r.status));
    }
    expect(statuses.filter((s) => s === 429)).toEqual([]);
    expect(statuses.every((s) => s === 200 || s === 201)).toBe(true);
    expect((await getLine(svc, p, 'c1')).held).toBe(150);
  });
});

describe('unknown routes', () => {
  it('answer 404 problem+json', async () => {
    const res = await raw(svc, 'GET', '/v1/nothing-here');
    expectProblem(res, 404, 'ROUTE_NOT_FOUND');
  });
});
