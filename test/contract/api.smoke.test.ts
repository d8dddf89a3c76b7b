import { afterAll, beforeAll, expect, it } from 'vitest';
import { uniqueId } from '../support/engineContext.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext();
});
afterAll(() => svc.stop());

it('serves a reserve end to end over HTTP', async () => {
  const p = uniqueId('p');
  expect((await svc.admin('PUT', `/v1/products/${p}`, { capacity: 100 })).status).toBe(201);
  expect((await svc.admin('PUT', `/v1/products/${p}/customers/c1`, { limit: 50 })).status).toBe(201);
  const r = await svc.client(
    'POST',
    `/v1/products/${p}/reservations`,
    { customerId: 'c1', amount: 20 },
    { 'Idempotency-Key': 'k1' },
  );
  expect(r.status).toBe(201);
  expect(r.headers.get('location')).toBe(`/v1/products/${p}/reservations/${r.body.reservationId}`);
});
