/**
 * Every metric the README's table documents is one the service really
 * exports after a short scripted run (a reserve, a commit that settles, a
 * refusal), so the table cannot drift from the code.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { uniqueId } from '../support/engineContext.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext({ AUDIT_INTERVAL_MS: '200', SWEEP_INTERVAL_MS: '200' });
});
afterAll(() => svc.stop());

function documentedMetrics(): string[] {
  const readme = readFileSync('README.md', 'utf8');
  const table = readme.slice(readme.indexOf('### Metrics'), readme.indexOf('## Running the full stack'));
  const names = new Set<string>();
  for (const row of table.split('\n').filter((l) => l.startsWith('| `'))) {
    const firstCell = row.split('|')[1] ?? '';
    for (const m of firstCell.matchAll(/`([a-z_]+)`/g)) names.add(m[1]!);
  }
  return [...names];
}

it('exports every metric the README documents', async () => {
  const p = uniqueId('p');
  expect((await svc.admin('PUT', `/v1/products/${p}`, { capacity: 100 })).status).toBe(201);
  expect((await svc.admin('PUT', `/v1/products/${p}/customers/c1`, { limit: 50 })).status).toBe(201);
  const r = await svc.client(
    'POST',
    `/v1/products/${p}/reservations`,
    { customerId: 'c1', amount: 20 },
    { 'Idempotency-Key': 'k1' },
  );
  expect((await svc.client('POST', `/v1/products/${p}/reservations/${r.body.reservationId}/commit`)).status).toBe(200);
  expect(
    (
      await svc.client(
        'POST',
        `/v1/products/${p}/reservations`,
        { customerId: 'c1', amount: 40 },
        { 'Idempotency-Key': 'k2' },
      )
    ).status,
  ).toBe(409);

  let text = '';
  const deadline = Date.now() + 10_000;
  do {
    await new Promise((resolve) => setTimeout(resolve, 200));
    text = (await svc.call('GET', '/metrics', { key: null })).body as string;
  } while (
    Date.now() < deadline &&
    // the settlement and an audit run that covered this product (its per-product gauges appear only then; a run
    // that started before the product existed counts in quota_audit_runs_total but shows no product)
    !(
      /quota_settlement_latency_seconds_count [1-9]/.test(text) &&
      text.includes(`quota_audit_violations{product="${p}"}`)
    )
  );

  const documented = documentedMetrics();
  expect(documented.length).toBeGreaterThan(15);
  const exported = new Set<string>();
  for (const [, name] of text.matchAll(/^([a-z_]+)(?:\{| )/gm)) {
    exported.add(name!);
    exported.add(name!.replace(/_(bucket|sum|count)$/, '')); // a histogram's series
  }
  for (const name of documented)
    expect(exported.has(name) || exported.has(name.replace(/_total$/, '')), name).toBe(true);
  expect(text).toContain(`quota_pool_committed{product="${p}"} 20`);
  expect(text).toMatch(/quota_settlement_latency_seconds_count [1-9]/);
  expect(text).toMatch(/quota_audit_runs_total [1-9]/);
});
