/**
 * The service on a Redis Cluster of 3 masters and 3 replicas (Debian's
 * redis-server 7.0, started by this file once, stopped even when a test
 * fails): contract-level flows through real HTTP with products on every
 * master, then a master killed under load, with REDIS_WAIT_REPLICAS 0 and 1.
 */
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInvariantAudit } from '../src/audit/invariantAudit.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { createQuotaEngine } from '../src/engine/quotaEngine.js';
import { createKeys, type Keys } from '../src/redis/keys.js';
import { openRedisTopology, type BullConnections } from '../src/redis/topology.js';
import { admin, client, commit, expectProblem, getPool, getReservation, makeLine, makeProduct, release, repay, reserve, sleep, uniqueId } from './api/helpers.js';
import { productsPerMaster, startLocalCluster, type LocalCluster } from './support/redisCluster.js';
import { startServiceContext, type ServiceContext } from './support/serviceContext.js';

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await startLocalCluster();
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

/** The service's settings for these tests: fast background jobs, the contract's WAIT as asked. */
function serviceEnv(waitReplicas: number, keyPrefix: string): Record<string, string> {
  return {
    REDIS_CLUSTER_NODES: cluster.seeds,
    REDIS_WAIT_REPLICAS: String(waitReplicas),
    KEY_PREFIX: keyPrefix,
    SWEEP_INTERVAL_MS: '300',
    RELAY_INTERVAL_MS: '1000',
    RELAY_GRACE_MS: '1000',
    SETTLEMENT_BACKOFF_MS: '100',
    AUDIT_INTERVAL_MS: '3600000',
  };
}

/** A direct client to the cluster for checks, built as the service builds its own. */
async function directClient(): Promise<Cluster> {
  const nodes = cluster.seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) }));
  const topology = await openRedisTopology({ kind: 'cluster', nodes, password: undefined }, '.', createLogger('silent'));
  return topology.client as Cluster;
}

/** Runs the invariant audit over every product (counters against the sums of the records), on the cluster. */
async function auditViolations(c: Cluster, keys: Keys): Promise<{ violations: number; products: number; outcomes: string[] }> {
  const engine = createQuotaEngine({ redis: c, keys });
  const noBull: BullConnections = { queue: () => ({}), worker: () => ({}) };
  const audit = createInvariantAudit({ bullmq: noBull, redis: c, keys, engine, logger: createLogger('silent'), metrics: createMetrics(), intervalMs: 60_000 });
  const report = await audit.auditOnce();
  return { violations: report.violations, products: report.products.length, outcomes: [...new Set(report.products.map((p) => p.outcome))] };
}

describe('contract flows on a Redis Cluster (REDIS_WAIT_REPLICAS=1)', () => {
  let svc: ServiceContext;
  let direct: Cluster;
  let keys: Keys;
  /** Two products on each of the three masters. */
  let byMaster: Map<number, string[]>;
  let products: string[];

  beforeAll(async () => {
    const prefix = uniqueId('cf');
    keys = createKeys(prefix);
    svc = await startServiceContext(serviceEnv(1, prefix));
    direct = await directClient();
    byMaster = await productsPerMaster(cluster, (p) => keys.pool(p), 2, `${prefix}-p`);
    products = [...byMaster.values()].flat();
    for (const p of products) {
      await makeProduct(svc, { capacity: 10_000, holdTtlSeconds: 60 }, p);
      await makeLine(svc, p, 'c1', { limit: 10_000 });
    }
  }, 60_000);

  afterAll(async () => {
    direct?.disconnect();
    await svc?.stop();
  });

  it('spreads the products over all three masters, and says which Redis it uses', async () => {
    expect(byMaster.size).toBe(3);
    for (const [port, list] of byMaster) {
      for (const p of list) expect(await cluster.masterOf(keys.pool(p))).toBe(port);
    }
    expect(svc.service.redis.kind).toBe('cluster');
    expect(svc.service.redis.description).toContain(cluster.seeds.split(',')[0]);
  });

  it('reserve, commit, release and repay on a product of every master', async () => {
    for (const p of products) {
      const a = await reserve(svc, p, { customerId: 'c1', amount: 300 });
      expect(a.status, JSON.stringify(a.body)).toBe(201);
      const b = await reserve(svc, p, { customerId: 'c1', amount: 200 });
      expect(b.status).toBe(201);
      expect((await commit(svc, p, a.body.reservationId, { amount: 250 })).status).toBe(200);
      expect((await release(svc, p, b.body.reservationId)).status).toBe(200);
      const pool = await getPool(svc, p);
      expect(pool.held).toBe(0);
      expect(pool.committed).toBe(250); // settled is the part of committed the ledger took
      const r = await repay(svc, p, 'c1', { amount: 100 });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    }
  });

  it('replays an idempotent reserve with the same answer; a repeated commit answers the same reservation', async () => {
    for (const p of products) {
      const key = uniqueId('k');
      const first = await reserve(svc, p, { customerId: 'c1', amount: 10 }, key);
      const again = await reserve(svc, p, { customerId: 'c1', amount: 10 }, key);
      expect(first.status).toBe(201);
      expect(again.status).toBe(201);
      expect(again.body.reservationId).toBe(first.body.reservationId);
      const reused = await reserve(svc, p, { customerId: 'c1', amount: 11 }, key);
      expectProblem(reused, 422, 'IDEMPOTENCY_KEY_REUSED');
      const c1 = await commit(svc, p, first.body.reservationId);
      const c2 = await commit(svc, p, first.body.reservationId);
      expect([c1.status, c2.status]).toEqual([200, 200]);
      expect(c2.body.reservationId).toBe(c1.body.reservationId);
      expect(c2.body.committedAmount).toBe(10);
    }
  });

  it('the sweeper returns expired holds on untouched products of every master', async () => {
    const held: string[] = [];
    for (const p of products) {
      const r = await reserve(svc, p, { customerId: 'c1', amount: 7, ttlSeconds: 1 });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      held.push(r.body.reservationId);
    }
    // Nobody touches them: only the sweeper (per-node peeks, then one script call per product) can reclaim them.
    const deadline = Date.now() + 15_000;
    for (;;) {
      const statuses = await Promise.all(
        products.map(async (p, i) => (await direct.hget(keys.reservation(p, held[i]!), 'status')) ?? 'missing'),
      );
      if (statuses.every((s) => s === 'expired')) break;
      if (Date.now() > deadline) throw new Error(`not all expired: ${statuses.join(',')}`);
      await sleep(200);
    }
    for (const p of products) expect((await getPool(svc, p)).held).toBe(0);
  });

  it('settles every commit into the internal ledger, exactly once', async () => {
    const committed: [string, string][] = [];
    for (const p of products) {
      for (let i = 0; i < 3; i++) {
        const r = await reserve(svc, p, { customerId: 'c1', amount: 5 });
        expect((await commit(svc, p, r.body.reservationId)).status).toBe(200);
        committed.push([p, r.body.reservationId]);
      }
    }
    await waitSettled(svc, committed, 20_000);
    for (const p of products) {
      const ledger = await admin(svc, 'GET', `/v1/products/${p}/ledger?count=1000`);
      expect(ledger.status).toBe(200);
      const ids = (ledger.body.entries as { reservationId: string }[]).map((e) => e.reservationId);
      expect(new Set(ids).size).toBe(ids.length);
      for (const [q, id] of committed) if (q === p) expect(ids).toContain(id);
      // Every settled record of the product is in its ledger, and nothing else is.
      expect(ids.length).toBe(await direct.zcard(keys.status(p, 'settled')));
    }
  });

  it('a concurrency burst on every master: never oversold, exact counts, counters equal the records', async () => {
    const burst = products.map((p) => `${p}-burst`);
    for (const p of burst) {
      await makeProduct(svc, { capacity: 1_000 }, p);
      for (let c = 0; c < 10; c++) await makeLine(svc, p, `c${c}`, { limit: 1_000 });
    }
    // 60 reserves of 30 per product: exactly 33 fit in 1,000.
    const answers = await Promise.all(
      burst.flatMap((p) => Array.from({ length: 60 }, (_, i) => reserve(svc, p, { customerId: `c${i % 10}`, amount: 30 }))),
    );
    for (const [i, p] of burst.entries()) {
      const mine = answers.slice(i * 60, (i + 1) * 60);
      expect(mine.filter((a) => a.status === 201).length).toBe(33);
      expect(mine.filter((a) => a.status === 409 && a.body.code === 'POOL_EXHAUSTED').length).toBe(27);
      const pool = await getPool(svc, p);
      expect(pool.held).toBe(990);
      expect(pool.available).toBe(10);
    }
    const audit = await auditViolations(direct, keys);
    expect(audit.products).toBe(products.length * 2);
    expect(audit.violations).toBe(0);
  });

  it('metrics read the pools of every master at scrape time (per-node pipelines), and the replicas each master has', async () => {
    const res = await svc.call('GET', '/metrics', { key: null });
    expect(res.status).toBe(200);
    const text = String(res.body);
    for (const p of products) expect(text).toMatch(new RegExp(`quota_pool_capacity\\{product="${p}"\\} 10000`));
    const attached = [...text.matchAll(/^quota_redis_replicas_attached\{node="[^"]+"\} (\d+)$/gm)].map((m) => Number(m[1]));
    expect(attached).toEqual([1, 1, 1]);
    expect(text).toMatch(/^quota_redis_wait_replicas 1$/m);
  });
});

async function waitSettled(svc: ServiceContext, reservations: [string, string][], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const statuses = await Promise.all(reservations.map(async ([p, id]) => (await getReservation(svc, p, id)).status as string));
    if (statuses.every((s) => s === 'settled')) return;
    if (Date.now() > deadline) throw new Error(`not all settled: ${statuses.filter((s) => s !== 'settled').join(',')}`);
    await sleep(250);
  }
}

void client;
