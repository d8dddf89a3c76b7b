/**
 * Sharded products over HTTP (contract: "Sharded products"): `shards` in the
 * config, fixed at creation (400 naming `shards`); the snapshot lists the
 * sub-pools; a customer on any shard reserves, commits and settles through
 * the same routes (reservation ids carry the shard).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardOfCustomer } from '../../../src/engine/shards.js';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  admin,
  client,
  commit,
  expectInvalid,
  getPool,
  hold,
  makeLine,
  makeProduct,
  sleep,
  uniqueId,
} from '../../support/api.js';

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext({ SWEEP_INTERVAL_MS: '300', RELAY_INTERVAL_MS: '500', RELAY_GRACE_MS: '200' });
});
afterAll(() => svc?.stop());

describe('sharded products over HTTP', () => {
  it('shards fixed at creation, listed in the snapshot; draws on every shard commit and settle', async () => {
    const productId = await makeProduct(svc, { capacity: 4_000, shards: 4 });
    const pool = await getPool(svc, productId);
    expect(pool.capacity).toBe(4_000);
    expect(pool.shards).toHaveLength(4);
    expect(pool.shards.reduce((s: number, x: { allotment: number }) => s + x.allotment, 0)).toBe(4_000);

    expectInvalid(await admin(svc, 'PUT', `/v1/products/${productId}`, { capacity: 4_000, shards: 2 }), 'shards');
    expectInvalid(await admin(svc, 'PATCH', `/v1/products/${productId}`, { shards: 8 }), 'shards');
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${uniqueId('p')}`, { capacity: 1, shards: 65 }), 'shards');
    const kept = await admin(svc, 'PUT', `/v1/products/${productId}`, { capacity: 4_000 });
    expect(kept.status).toBe(200);
    expect(kept.body.shards).toHaveLength(4);
    const unsharded = await getPool(svc, await makeProduct(svc, { capacity: 10 }));
    expect(unsharded.shards).toEqual([{ index: 0, allotment: 10, held: 0, committed: 0, available: 10 }]);

    // One customer per shard; the last draws more than its shard's allotment (borrows).
    const customers = [0, 1, 2, 3].map((s) => {
      for (let i = 0; ; i++) if (shardOfCustomer(`h${i}`, 4) === s) return `h${i}`;
    });
    for (const c of customers) await makeLine(svc, productId, c, { limit: 5_000 });
    const ids: string[] = [];
    for (const c of customers.slice(0, 3)) ids.push((await hold(svc, productId, c, 500)).reservationId);
    ids.push((await hold(svc, productId, customers[3]!, 2_500)).reservationId);
    const line = await client(svc, 'GET', `/v1/products/${productId}/customers/${customers[0]}`);
    expect(line.body.drawable).toBe(0);
    expect(line.body.blockers).toEqual(['POOL_EXHAUSTED']);
    for (const id of ids) expect((await commit(svc, productId, id)).status).toBe(200);
    for (let i = 0; i < 50; i++) {
      const all = await Promise.all(
        ids.map((id) => client(svc, 'GET', `/v1/products/${productId}/reservations/${id}`)),
      );
      if (all.every((r) => r.body.status === 'settled')) break;
      await sleep(200);
    }
    const after = await getPool(svc, productId);
    expect([after.committed, after.settled, after.available]).toEqual([4_000, 4_000, 0]);
  }, 60_000);
});
