/**
 * Issue 10 item 2: background jobs heal themselves after Redis loses its
 * data (FLUSHALL here; a restart without persistence or a failover to an
 * empty node look the same to the service). After the loss, without any
 * restart: the job schedulers come back, an expired hold nobody touches is
 * reclaimed by the sweeper, and a committed reservation that never got its
 * settlement job (a commit whose 503 hid its success) is relayed and settled.
 *
 * FLUSHALL is destructive, so this file runs its own redis-server.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AUDIT_JOB } from '../../src/audit/invariantAudit.js';
import { createQuotaEngine } from '../../src/engine/quotaEngine.js';
import { createKeys } from '../../src/redis/keys.js';
import { startRedisServer, type RedisServerHandle } from '../../src/redis/redisServer.js';
import { RELAY_JOB } from '../../src/settlement/outboxRelay.js';
import { SWEEP_JOB } from '../../src/sweeper/expirySweeper.js';
import { makeLine, makeProduct, uniqueId } from '../support/api.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import { readRecord } from '../../src/redis/storedRecords.js';
import { waitFor } from '../support/wait.js';

let redisServer: RedisServerHandle;
let svc: ServiceContext;
let redis: Redis;

beforeAll(async () => {
  redisServer = await startRedisServer();
  svc = await startServiceContext({
    REDIS_URL: redisServer.url,
    SWEEP_INTERVAL_MS: '200',
    RELAY_INTERVAL_MS: '300',
    RELAY_GRACE_MS: '0',
    AUDIT_INTERVAL_MS: '500',
  });
  redis = new Redis(redisServer.url);
});
afterAll(async () => {
  redis?.disconnect();
  await svc?.stop().catch(() => undefined);
  await redisServer?.stop();
});

/** waitFor, also saying how long it took. */
async function timed<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<{ value: T; afterMs: number }> {
  const t0 = Date.now();
  const value = await waitFor(what, probe, { timeoutMs, everyMs: 200 });
  return { value, afterMs: Date.now() - t0 };
}

it('after FLUSHALL the sweeper, the outbox relay and the audit run again, without a restart', async () => {
  const keys = createKeys(svc.keyPrefix);
  const queues = [SWEEP_JOB, RELAY_JOB, AUDIT_JOB].map(
    (name) => new Queue(name, { connection: redis, prefix: keys.queuePrefix() }),
  );
  try {
    for (const q of queues) expect(await q.getJobScheduler(q.name), q.name).toBeDefined();

    await redis.flushall();
    const lostAt = Date.now();
    for (const q of queues) expect(await q.getJobScheduler(q.name)).toBeUndefined();

    // The operator re-creates what was lost; then traffic goes on.
    const expiring = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, expiring, 'c1', { limit: 100 });
    const hold = await svc.client(
      'POST',
      `/v1/products/${expiring}/reservations`,
      { customerId: 'c1', amount: 3, ttlSeconds: 1 },
      { 'Idempotency-Key': uniqueId('k') },
    );
    expect(hold.status).toBe(201);

    // A commit that landed but whose settlement job was never queued: made behind the service's back.
    const committed = await makeProduct(svc, { capacity: 100 });
    await makeLine(svc, committed, 'c1', { limit: 100 });
    const engine = createQuotaEngine({ redis, keys });
    const reservationId = uniqueId('r');
    const reserved = await engine.reserve({
      productId: committed,
      customerId: 'c1',
      reservationId,
      amount: 4,
      idempotencyKey: uniqueId('k'),
      fingerprint: 'f',
    });
    expect(reserved.ok).toBe(true);
    expect((await engine.commit(committed, reservationId)).ok).toBe(true);

    const schedulers = await timed(
      'the schedulers re-created',
      async () => {
        for (const q of queues) if (!(await q.getJobScheduler(q.name))) return undefined;
        return true;
      },
      15_000,
    );
    // Nobody touches the first product again: only the sweeper can expire the hold.
    const expired = await timed(
      'the expired hold reclaimed',
      async () =>
        (await readRecord(redis, keys, expiring, hold.body.reservationId))?.status === 'expired' ? true : undefined,
      15_000,
    );
    const settled = await timed(
      'the committed reservation relayed and settled',
      async () => {
        const r = await svc.client('GET', `/v1/products/${committed}/reservations/${reservationId}`);
        return r.body.status === 'settled' ? true : undefined;
      },
      15_000,
    );
    const pool = await svc.client('GET', `/v1/products/${expiring}`);
    expect(pool.body.held).toBe(0);
    console.log(
      `self-heal after FLUSHALL: schedulers back ${Date.now() - lostAt} ms after the ` +
        `loss (waited ${schedulers.afterMs} ms); hold reclaimed after ` +
        `${expired.afterMs} ms more; relay settled after ${settled.afterMs} ms more`,
    );
  } finally {
    for (const q of queues) await q.close();
  }
}, 60_000);
