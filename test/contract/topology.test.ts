/**
 * The Redis topology factory and REDIS_WAIT_REPLICAS on one node (the run's
 * private redis-server, a master with no replica): a start against Redis
 * that does not answer fails with a message naming the variable, and a
 * write that no replica can confirm answers 503 UNAVAILABLE, stands, and is
 * counted. The cluster and sentinel flows are in cluster.test.ts and
 * sentinel.test.ts.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { isRedisUnavailable } from '../../src/http/app.js';
import { createLogger } from '../../src/logger.js';
import { createDurableWrites, ReplicasUnconfirmedError } from '../../src/redis/durableWrite.js';
import { freePort } from '../../src/redis/redisServer.js';
import { openRedisTopology } from '../../src/redis/topology.js';
import { expectProblem, makeLine, makeProduct, reserve, retryAfterOf, uniqueId } from '../support/api.js';
import { spawnRedis, stopProcess, type NodeProcess } from '../support/redisProcesses.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import { reserveAndCommit, waitStatus } from '../support/settlement.js';
import { waitFor } from '../support/wait.js';

describe('a start against a Redis that does not answer fails, naming the variable', () => {
  it('REDIS_CLUSTER_NODES', async () => {
    const port = await freePort();
    await expect(
      openRedisTopology(
        { kind: 'cluster', nodes: [{ host: '127.0.0.1', port }], password: undefined },
        '.',
        createLogger('silent'),
      ),
    ).rejects.toThrow(/REDIS_CLUSTER_NODES\) does not answer/);
  });

  it('REDIS_SENTINELS (within its 10 s connect deadline, not forever)', async () => {
    const port = await freePort();
    const started = Date.now();
    await expect(
      openRedisTopology(
        { kind: 'sentinel', sentinels: [{ host: '127.0.0.1', port }], name: 'm', password: undefined },
        '.',
        createLogger('silent'),
      ),
    ).rejects.toThrow(/REDIS_SENTINELS\) does not answer/);
    expect(Date.now() - started).toBeLessThan(12_000);
  }, 20_000);
});

describe('REDIS_WAIT_REPLICAS on a master without replicas', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(() => redis.disconnect());

  it(
    'WAIT in the same round trip: not confirmed -> ' +
      'ReplicasUnconfirmedError (a 503 for the API), and the write stands',
    async () => {
      const durable = createDurableWrites({ replicas: 1, timeoutMs: 50, logger: createLogger('silent') });
      const key = uniqueId('dw');
      const error = await durable.call(redis, 'set', [key, 'v'], key).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ReplicasUnconfirmedError);
      expect((error as ReplicasUnconfirmedError).confirmed).toBe(0);
      expect(isRedisUnavailable(error)).toBe(true);
      expect(await redis.get(key)).toBe('v');
      // Zero replicas asked: nothing to wait for.
      const none = createDurableWrites({ replicas: 0, timeoutMs: 50, logger: createLogger('silent') });
      expect(none.covers('reserve')).toBe(false);
      expect(await none.call(redis, 'set', [key, 'w'], key)).toBe('OK');
    },
  );

  it('covers every writing script and no read', () => {
    const durable = createDurableWrites({ replicas: 1, timeoutMs: 50, logger: createLogger('silent') });
    for (const s of ['reserve', 'commit', 'release', 'repay', 'upsert-pool', 'upsert-lines', 'record-settlement'])
      expect(durable.covers(s)).toBe(true);
    for (const s of ['read-pool', 'read-line', 'get-reservation', 'reclaim-expired', 'audit-product'])
      expect(durable.covers(s)).toBe(false);
  });
});

describe('through the API: REDIS_WAIT_REPLICAS=1 against a master without replicas', () => {
  let plain: ServiceContext;
  let waiting: ServiceContext;
  let redis: Redis;
  beforeAll(async () => {
    const prefix = uniqueId('wr');
    plain = await startServiceContext({ KEY_PREFIX: prefix });
    waiting = await startServiceContext({ KEY_PREFIX: prefix, REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '100' });
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    redis?.disconnect();
    await plain?.stop();
    await waiting?.stop();
  });

  it(
    'a reserve answers 503 UNAVAILABLE with Retry-After, its retry too; the ' +
      'hold stands; reads still answer; the metric and gauge say why',
    async () => {
      const productId = await makeProduct(plain, { capacity: 1_000 });
      await makeLine(plain, productId, 'c1');
      const key = uniqueId('k');
      const first = await reserve(waiting, productId, { customerId: 'c1', amount: 10 }, key);
      expectProblem(first, 503, 'UNAVAILABLE');
      expect(retryAfterOf(first)).toBeGreaterThanOrEqual(1);
      const again = await reserve(waiting, productId, { customerId: 'c1', amount: 10 }, key);
      expectProblem(again, 503, 'UNAVAILABLE');
      // The write stood (once): the instance without WAIT replays it.
      const replay = await reserve(plain, productId, { customerId: 'c1', amount: 10 }, key);
      expect(replay.status).toBe(201);
      const pool = await waiting.client('GET', `/v1/products/${productId}`);
      expect(pool.status).toBe(200);
      expect(pool.body.held).toBe(10);
      const metrics = String((await waiting.call('GET', '/metrics', { key: null })).body);
      expect(metrics).toMatch(/^quota_redis_replicas_unconfirmed_writes_total 2$/m);
      expect(metrics).toMatch(/^quota_redis_replicas_attached\{node="master"\} 0$/m);
      expect(metrics).toMatch(/^quota_redis_wait_replicas 1$/m);
    },
  );
});

describe('REDIS_PASSWORD: a Redis that requires a password (requirepass)', () => {
  let node: NodeProcess;
  let svc: ServiceContext | undefined;
  beforeAll(async () => {
    const port = await freePort();
    node = spawnRedis(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--requirepass', 'pw-9f3']);
    await waitFor('the redis-server with a password', async () => {
      const probe = new Redis({ port, password: 'pw-9f3', lazyConnect: true, retryStrategy: () => null });
      probe.on('error', () => {});
      try {
        await probe.connect();
        return true;
      } finally {
        probe.disconnect();
      }
    });
  });
  afterAll(async () => {
    await svc?.stop();
    await stopProcess(node);
  });

  it('the API and the BullMQ workers authenticate: a commit settles', async () => {
    svc = await startServiceContext({
      REDIS_URL: `redis://127.0.0.1:${node.port}`,
      REDIS_PASSWORD: 'pw-9f3',
      RELAY_INTERVAL_MS: '500',
    });
    const productId = await makeProduct(svc, { capacity: 1_000 });
    await makeLine(svc, productId, 'c1');
    const committed = await reserveAndCommit(svc, productId, 'c1', 100);
    expect((await waitStatus(svc, productId, committed.reservationId)).status).toBe('settled');
  });

  it('a wrong password fails the start, naming REDIS_URL and REDIS_PASSWORD', async () => {
    await expect(
      openRedisTopology(
        { kind: 'single', url: `redis://127.0.0.1:${node.port}`, password: 'wrong' },
        '.',
        createLogger('silent'),
      ),
    ).rejects.toThrow(/REDIS_URL.*WRONGPASS.*check REDIS_PASSWORD/);
  });
});
