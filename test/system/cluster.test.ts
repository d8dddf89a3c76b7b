/**
 * The service on a Redis Cluster of 3 masters and 3 replicas (Debian's
 * redis-server 7.0, started by this file once, stopped even when a test
 * fails): contract-level flows through real HTTP with products on every
 * master, then a master killed under load, with REDIS_WAIT_REPLICAS 0 and 1.
 */
import { Queue } from 'bullmq';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInvariantAudit } from '../../src/audit/invariantAudit.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { createQuotaEngine } from '../../src/engine/quotaEngine.js';
import { createKeys, type Keys } from '../../src/redis/keys.js';
import { openRedisTopology, type BullConnections } from '../../src/redis/topology.js';
import {
  admin,
  client,
  commit,
  expectProblem,
  getPool,
  getReservation,
  makeLine,
  makeProduct,
  release,
  repay,
  reserve,
  sleep,
  uniqueId,
} from '../support/api.js';
import { productsPerMaster, startLocalCluster, type LocalCluster } from '../support/redisCluster.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import { readRecord } from '../../src/redis/storedRecords.js';

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
    // A job whose worker lost its connection mid-job comes back after its lock (stalled): 5 s here, not 30.
    SETTLEMENT_LOCK_MS: '5000',
    AUDIT_INTERVAL_MS: '3600000',
    LOG_LEVEL: process.env.CLUSTER_TEST_LOG_LEVEL ?? 'silent',
  };
}

/** A direct client to the cluster for checks, built as the service builds its own. */
async function directClient(): Promise<Cluster> {
  const nodes = cluster.seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) }));
  const topology = await openRedisTopology(
    { kind: 'cluster', nodes, password: undefined },
    '.',
    createLogger('silent'),
  );
  return topology.client as Cluster;
}

/** Runs the invariant audit over every product (counters against the sums of the records), on the cluster. */
async function auditViolations(
  c: Cluster,
  keys: Keys,
): Promise<{ violations: number; products: number; outcomes: string[] }> {
  const engine = createQuotaEngine({ redis: c, keys });
  const noBull: BullConnections = { queue: () => ({}), worker: () => ({}) };
  const audit = createInvariantAudit({
    bullmq: noBull,
    redis: c,
    keys,
    engine,
    logger: createLogger('silent'),
    metrics: createMetrics(),
    intervalMs: 60_000,
  });
  const report = await audit.auditOnce();
  return {
    violations: report.violations,
    products: report.products.length,
    outcomes: [...new Set(report.products.map((p) => p.outcome))],
  };
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
  }, 120_000);

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
      await waitSettled(svc, [[p, a.body.reservationId]], 20_000); // only settled money can be repaid
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
        products.map(async (p, i) => (await readRecord(direct, keys, p, held[i]!))?.status ?? 'missing'),
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
      burst.flatMap((p) =>
        Array.from({ length: 60 }, (_, i) => reserve(svc, p, { customerId: `c${i % 10}`, amount: 30 })),
      ),
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

  it(
    'metrics read the pools of every master at scrape time ' + '(per-node pipelines), and the replicas each master has',
    async () => {
      const res = await svc.call('GET', '/metrics', { key: null });
      expect(res.status).toBe(200);
      const text = String(res.body);
      for (const p of products) expect(text).toMatch(new RegExp(`quota_pool_capacity\\{product="${p}"\\} 10000`));
      const attached = [...text.matchAll(/^quota_redis_replicas_attached\{node="[^"]+"\} (\d+)$/gm)].map((m) =>
        Number(m[1]),
      );
      expect(attached).toEqual([1, 1, 1]);
      expect(text).toMatch(/^quota_redis_wait_replicas 1$/m);
    },
  );
});

async function waitSettled(svc: ServiceContext, reservations: [string, string][], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const statuses = await Promise.all(
      reservations.map(async ([p, id]) => (await getReservation(svc, p, id)).status as string),
    );
    if (statuses.every((s) => s === 'settled')) return;
    if (Date.now() > deadline) throw new Error(`not all settled: ${statuses.filter((s) => s !== 'settled').join(',')}`);
    await sleep(250);
  }
}

void client;

interface Acked {
  productId: string;
  reservationId: string;
  amount: number;
}

interface FailoverFigures {
  waitReplicas: number;
  requests: number;
  unavailable503: number;
  failoverWindowMs: number;
  lastUnavailableAfterKillMs: number;
  ackedReserves: number;
  ackedCommits: number;
  ackedRepayments: number;
  lostReserves: number;
  lostCommits: number;
  unexpected: string[];
}

describe.each([0, 1])('a master killed under load (REDIS_WAIT_REPLICAS=%i)', (waitReplicas) => {
  it(
    'elects a new master; every acknowledged reserve and commit stands (with WAIT 1), counters equal ' +
      'the records, nothing oversold, each commit settles once, the service goes on by itself',
    async () => {
      const t0 = Date.now();
      const phase = (what: string) =>
        console.log(`FAILOVER phase WAIT ${waitReplicas} +${Date.now() - t0} ms: ${what}`);
      await cluster.waitHealthy(1, 60_000);
      phase('cluster healthy');
      const prefix = uniqueId(`fo${waitReplicas}`);
      const keys = createKeys(prefix);
      const svc = await startServiceContext(serviceEnv(waitReplicas, prefix));
      phase('service started');
      const direct = await directClient();
      phase('direct client connected');
      try {
        const byMaster = await productsPerMaster(cluster, (p) => keys.pool(p), 3, `${prefix}-p`);
        // The busiest product sits on the master that also holds the BullMQ queues' slot: the kill hits settlement too.
        const victim = await cluster.masterOf(`${keys.queuePrefix()}:settlement:wait`);
        const busiest = byMaster.get(victim)![0]!;
        const products = [busiest, ...[...byMaster.values()].flat().filter((p) => p !== busiest)];
        const onVictim = new Set(byMaster.get(victim)!);
        const capacity = (p: string) => (p === busiest ? 150_000 : 1_000_000_000);
        for (const p of products) {
          await makeProduct(svc, { capacity: capacity(p), holdTtlSeconds: 600 }, p);
          for (let c = 0; c < 10; c++) await makeLine(svc, p, `c${c}`, { limit: 1_000_000_000 });
        }

        const figures: FailoverFigures = {
          waitReplicas,
          requests: 0,
          unavailable503: 0,
          failoverWindowMs: 0,
          lastUnavailableAfterKillMs: 0,
          ackedReserves: 0,
          ackedCommits: 0,
          ackedRepayments: 0,
          lostReserves: 0,
          lostCommits: 0,
          unexpected: [],
        };
        const ackedReserves: Acked[] = [];
        const ackedCommits: Acked[] = [];
        let killedAt = 0;
        let lastUnavailableOnVictim = 0;

        /** Sends until the answer is not 503 (same key, same body: the contract's retry), within 40 s. */
        const retrying = async (productId: string, send: () => ReturnType<typeof reserve>) => {
          const deadline = Date.now() + 40_000;
          for (;;) {
            figures.requests++;
            const res = await send();
            if (res.status >= 500 && res.status !== 503)
              figures.unexpected.push(`${res.status} ${JSON.stringify(res.body)}`);
            if (res.status !== 503) return res;
            figures.unavailable503++;
            if (killedAt)
              figures.lastUnavailableAfterKillMs = Math.max(figures.lastUnavailableAfterKillMs, Date.now() - killedAt);
            if (killedAt && onVictim.has(productId))
              lastUnavailableOnVictim = Math.max(lastUnavailableOnVictim, Date.now());
            if (Date.now() > deadline) return res;
            await sleep(50);
          }
        };

        let running = true;
        const rnd = (n: number) => Math.floor(Math.random() * n);
        const loop = async () => {
          while (running) {
            const productId = Math.random() < 0.5 ? busiest : products[1 + rnd(products.length - 1)]!;
            const customerId = `c${rnd(10)}`;
            const amount = 1 + rnd(100);
            const key = uniqueId('k');
            const r = await retrying(productId, () => reserve(svc, productId, { customerId, amount }, key));
            if (r.status === 201) {
              const acked = { productId, reservationId: r.body.reservationId as string, amount };
              ackedReserves.push(acked);
              const dice = Math.random();
              if (dice < 0.7) {
                const c = await retrying(productId, () => commit(svc, productId, acked.reservationId));
                if (c.status === 200 && (c.body.status === 'committed' || c.body.status === 'settled'))
                  ackedCommits.push(acked);
                else if (c.status === 404)
                  figures.lostReserves++; // acknowledged, then gone
                else figures.unexpected.push(`commit answered ${c.status} ${JSON.stringify(c.body)}`);
              } else if (dice < 0.85) {
                const rel = await retrying(productId, () => release(svc, productId, acked.reservationId));
                if (rel.status === 404) figures.lostReserves++;
              }
            } else if (!(r.status === 409 && r.body.code === 'POOL_EXHAUSTED')) {
              figures.unexpected.push(`reserve answered ${r.status} ${JSON.stringify(r.body)}`);
            }
            if (Math.random() < 0.2) {
              const payKey = uniqueId('k');
              const pay = await retrying(productId, () => repay(svc, productId, customerId, { amount: 1 }, payKey));
              if (pay.status === 200) figures.ackedRepayments++;
            }
            await sleep(5);
          }
        };
        phase('products configured');
        const loops = Array.from({ length: 6 }, () => loop());

        await sleep(2_500);
        killedAt = Date.now();
        await cluster.kill(victim);
        // An orchestrator brings the failed node back a few seconds later: it rejoins as a replica of the new master.
        await sleep(5_000);
        phase('restarting the killed node');
        await cluster.restart(victim);
        await cluster.waitHealthy(1, 60_000);
        phase('cluster healthy again');
        await sleep(2_000);
        running = false;
        await Promise.all(loops);

        // The window: from the kill to the last 503 a write on the killed master's products got.
        figures.failoverWindowMs = lastUnavailableOnVictim ? lastUnavailableOnVictim - killedAt : -1;
        figures.ackedReserves = ackedReserves.length;
        figures.ackedCommits = ackedCommits.length;
        console.log(`FAILOVER load ${JSON.stringify(figures)}`);

        phase('load stopped');
        // A new master serves the busiest product; the old one is back as a replica.
        const newMaster = await cluster.masterOf(keys.pool(busiest));
        expect(newMaster).not.toBe(victim);

        // Every acknowledged reserve exists; every acknowledged commit is committed or settled.
        for (const a of ackedReserves) {
          if ((await readRecord(direct, keys, a.productId, a.reservationId)) === null) figures.lostReserves++;
        }
        // Settlement catches up (the relay re-enqueues anything a 503 cut short). A worker whose blocking wait died
        // with the master takes no job until src/jobs/watchedWorker.ts replaces it (15 s); before that, this wait ran
        // out.
        const deadline = Date.now() + 60_000;
        for (;;) {
          const backlog = (await Promise.all(products.map((p) => direct.zcard(keys.status(p, 'committed'))))).reduce(
            (s, n) => s + n,
            0,
          );
          if (backlog === 0) break;
          if (Date.now() > deadline) {
            const queueClient = new Cluster(
              cluster.seeds.split(',').map((x) => ({ host: '127.0.0.1', port: Number(x.split(':')[1]) })),
            );
            queueClient.on('error', () => {});
            const queue = new Queue('settlement', { connection: queueClient, prefix: keys.queuePrefix() });
            const counts = await queue.getJobCounts().catch((err: Error) => err.message);
            const left = (
              await Promise.all(products.map((p) => direct.zrange(keys.status(p, 'committed'), 0, -1)))
            ).flat();
            const states = await Promise.all(
              left.map(
                async (id) =>
                  `${id}:${(await queue.getJob(id))?.id ? await (await queue.getJob(id))!.getState() : 'no job'}`,
              ),
            );
            await queue.close().catch(() => undefined);
            queueClient.disconnect();
            throw new Error(
              `settlement backlog still ${backlog}; queue ${JSON.stringify(counts)}; jobs ${states.join(', ')}`,
            );
          }
          await sleep(250);
        }
        for (const a of ackedCommits) {
          const status = (await readRecord(direct, keys, a.productId, a.reservationId))?.status;
          if (status !== 'settled') figures.lostCommits++;
          else expect(await direct.hexists(keys.internalLedger(a.productId), a.reservationId)).toBe(1);
        }
        // Each settled reservation is in its product's ledger once, and the ledger holds nothing else.
        for (const p of products) {
          expect(await direct.hlen(keys.internalLedger(p))).toBe(await direct.zcard(keys.status(p, 'settled')));
        }
        // Never oversold; counters equal the sums of the records (the invariant audit, run on the cluster).
        for (const p of products) {
          const pool = await getPool(svc, p);
          expect(pool.held + pool.committed).toBeLessThanOrEqual(capacity(p));
        }
        const audit = await auditViolations(direct, keys);
        const { lostReserves, lostCommits } = figures;
        console.log(`FAILOVER result ${JSON.stringify({ waitReplicas, lostReserves, lostCommits, audit })}`);
        expect(audit.violations, JSON.stringify(audit)).toBe(0);

        // The service went on by itself (same process, never restarted) and is ready.
        expect((await svc.call('GET', '/readyz', { key: null })).status).toBe(200);
        expect(figures.unexpected).toEqual([]);
        expect(figures.failoverWindowMs).toBeGreaterThan(0);
        expect(figures.ackedReserves).toBeGreaterThan(50);
        expect(figures.unavailable503).toBeGreaterThan(0); // the kill was felt
        if (waitReplicas >= 1) {
          expect(figures.lostReserves).toBe(0);
          expect(figures.lostCommits).toBe(0);
        }
      } finally {
        direct.disconnect();
        await svc.stop();
        phase('service stopped');
      }
    },
    240_000,
  );
});
