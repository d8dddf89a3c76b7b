/**
 * The service on a Sentinel-watched Redis (one master, one replica, three
 * sentinels, started here and stopped even when a test fails): the master
 * is killed and the service goes on by itself, writes answering 503 during
 * the failover and then succeeding, with no restart.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { makeLine, makeProduct, reserve, sleep, uniqueId } from '../support/api.js';
import { startLocalSentinel, type LocalSentinel } from '../support/redisSentinel.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';

let sentinel: LocalSentinel;
let svc: ServiceContext;

beforeAll(async () => {
  sentinel = await startLocalSentinel();
  svc = await startServiceContext({ REDIS_SENTINELS: sentinel.sentinels, REDIS_SENTINEL_NAME: sentinel.name });
}, 60_000);

afterAll(async () => {
  await svc?.stop();
  await sentinel?.stop();
});

it(
  'goes on by itself after the master is killed: writes ' + 'succeed again within 15 s, acknowledged holds kept',
  async () => {
    expect(svc.service.redis.kind).toBe('sentinel');
    const productId = await makeProduct(svc, { capacity: 1_000_000, holdTtlSeconds: 600 }, uniqueId('sp'));
    await makeLine(svc, productId, 'c1');
    const before: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await reserve(svc, productId, { customerId: 'c1', amount: 10 });
      expect(r.status).toBe(201);
      before.push(r.body.reservationId);
    }

    const killedAt = Date.now();
    await sentinel.kill(sentinel.masterPort);
    const statuses = new Map<number, number>();
    const key = uniqueId('k');
    let answeredAt = 0;
    while (Date.now() - killedAt < 30_000) {
      const started = Date.now();
      // the same key: the contract's retry
      const r = await reserve(svc, productId, { customerId: 'c1', amount: 10 }, key);
      expect(Date.now() - started, 'every answer within 2 s').toBeLessThan(2_000);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 201) {
        answeredAt = Date.now();
        break;
      }
      expect(r.status).toBe(503);
      await sleep(100);
    }
    console.log(
      `SENTINEL failover: writes back after ${answeredAt - killedAt} ms; ` +
        `answers ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
    expect(answeredAt, 'writes succeed again').toBeGreaterThan(0);
    expect(answeredAt - killedAt).toBeLessThan(15_000);
    expect(await sentinel.currentMaster()).toBe(sentinel.replicaPort);
    // The holds acknowledged before the kill were replicated (the replica's link was up and idle before the kill).
    for (const id of before) {
      const r = await svc.client('GET', `/v1/products/${productId}/reservations/${id}`);
      expect(r.status).toBe(200);
    }
    expect((await svc.call('GET', '/readyz', { key: null })).status).toBe(200);
  },
  60_000,
);
