/** ROLE=worker serves health and metrics (its jobs' metrics), and no API. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';

let worker: ServiceContext;
beforeAll(async () => {
  worker = await startServiceContext({ ROLE: 'worker' });
});
afterAll(() => worker.stop());

it('serves /healthz, /readyz and /metrics with the job metrics, but no API routes', async () => {
  expect((await worker.call('GET', '/healthz', { key: null })).status).toBe(200);
  expect((await worker.call('GET', '/readyz', { key: null })).body).toMatchObject({ status: 'ready' });
  const metrics = await worker.call('GET', '/metrics', { key: null });
  expect(metrics.status).toBe(200);
  expect(metrics.body).toContain('quota_settlement_outcomes_total{outcome="settled",changed="true"} 0');
  expect(metrics.body).toContain('quota_audit_runs_total');
  // Pool gauges come from the API role only (no duplicate series when both are scraped).
  expect(metrics.body).not.toContain('quota_pool_capacity');
  const api = await worker.admin('PUT', '/v1/products/p1', { capacity: 1 });
  expect(api.status).toBe(404);
  expect(api.body.code).toBe('ROUTE_NOT_FOUND');
});
