/**
 * Sharded products, side by side with the unsharded baseline in one run
 * (ratios, not absolutes: the machine is shared).
 *
 * One node: the same spike of reserves on a product with 1 and with 4
 * sub-pools, interleaved, at two capacities: 2x the demand (never runs out:
 * the sub-pools start evenly split, i.e. the rebalancer has caught up) and
 * 0.8x (runs out at 80%: the end of the spike borrows and refuses).
 * Throughput and p99 of engine.reserve (64 in flight), Redis time per reserve
 * from INFO commandstats (every command of the round, borrowing and the
 * refusals' reads included, divided by the reserves), refusals and borrows.
 * After every round the invariants are checked: allotments + in transit +
 * withheld = capacity, held + committed <= capacity, each sub-pool's held
 * equals its records, the transfers balance on both sides, and at exhaustion
 * the product's free quota is below the smallest refused amount.
 *
 * Local Redis Cluster (3 masters): a 3-shard product's spike; each master's
 * share of the Redis time (INFO commandstats, all commands), the busiest
 * master's share against the even split 1/3; the same invariants after.
 *
 * Run: npx tsc -p tsconfig.bench.json && node dist/bench/sharding.js [reserves per round, default 10000] [rounds,
 * default 3] [cluster: 1 (default) or 0]
 * It starts its own redis-server (and cluster) on free ports and stops them.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis, type Cluster } from 'ioredis';
import { createQuotaEngine, type QuotaEngine } from '../src/engine/quotaEngine.js';
import { createLogger } from '../src/logger.js';
import { createKeys, type Keys } from '../src/redis/keys.js';
import { readAllRecords } from '../src/redis/storedRecords.js';
import { openRedisTopology, type RedisClient } from '../src/redis/topology.js';
import { startLocalCluster } from '../test/support/redisCluster.js';
import { sleep } from '../test/support/wait.js';

const RESERVES = Number(process.argv[2] ?? 10_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const CLUSTER = (process.argv[4] ?? '1') === '1';
const IN_FLIGHT = 64;
const CUSTOMERS = 2_000;
const MEAN_AMOUNT = 50;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

interface Counts {
  borrowGranted: number;
  borrowRefused: number;
  transfers: number;
}

function engineWithCounts(redis: RedisClient, keys: Keys, counts: Counts) {
  return createQuotaEngine({
    redis,
    keys,
    shardEvents: {
      onBorrow: (_p, o) => (o === 'granted' ? counts.borrowGranted++ : counts.borrowRefused++),
      onTransfer: () => counts.transfers++,
    },
  });
}

async function createProduct(
  engine: QuotaEngine,
  productId: string,
  capacity: number,
  shards: number,
  customers: number,
) {
  const created = await engine.upsertProduct(productId, { capacity, shards }, 'put');
  if (!created.ok) throw new Error(`product ${productId}: ${created.code}`);
  for (let i = 0; i < customers; i += 500) {
    await engine.upsertLines(
      productId,
      Array.from({ length: Math.min(500, customers - i) }, (_, j) => ({
        customerId: `c${i + j}`,
        limit: 1_000_000,
        status: 'active' as const,
        statusReason: null,
        tier: null,
      })),
    );
  }
}

/** The spike: `reserves` reserves of 1..99 from `customers` customers, IN_FLIGHT at a time. */
async function spike(engine: QuotaEngine, productId: string, reserves: number, customers: number) {
  const latencies: number[] = [];
  const refused: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < reserves) {
        const i = next++;
        const amount = 1 + ((i * 7919) % 99);
        const t0 = process.hrtime.bigint();
        const o = await engine.reserve({
          productId,
          customerId: `c${i % customers}`,
          amount,
          reservationId: randomUUID(),
          idempotencyKey: randomUUID(),
          fingerprint: 'f',
        });
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (!o.ok) {
          if (o.code !== 'POOL_EXHAUSTED') throw new Error(`reserve refused ${o.code}`);
          refused.push(amount);
        }
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort((a, b) => a - b);
  return { rps: reserves / seconds, p99: latencies[Math.floor(latencies.length * 0.99)]!, refused };
}

/** Redis time (µs) and calls of every command since the last RESETSTAT, the stats commands aside. */
async function commandStats(node: Redis): Promise<{ usec: number; calls: number }> {
  const stats = (await node.call('INFO', 'commandstats')) as string;
  const rows = [...stats.matchAll(/cmdstat_([\w|]+):calls=(\d+),usec=(\d+)/g)].filter(
    (m) => !['info', 'config', 'cluster', 'ping'].includes(m[1]!),
  );
  return { usec: rows.reduce((s, m) => s + Number(m[3]), 0), calls: rows.reduce((s, m) => s + Number(m[2]), 0) };
}

/** The invariants after a spike (README: Invariants; Sharded products): the broken ones, empty when all hold. */
async function checkInvariants(
  engine: QuotaEngine,
  redis: RedisClient,
  keys: Keys,
  productId: string,
  capacity: number,
  refused: number[],
) {
  const broken: string[] = [];
  const read = await engine.readPool(productId);
  if (!read.ok) return [`readPool: ${read.code}`];
  const p = read.value;
  const allotments = p.shards!.reduce((s, x) => s + x.allotment, 0);
  if (allotments + (p.inTransit ?? 0) + (p.withheld ?? 0) !== capacity)
    broken.push(`allotments ${allotments} + in transit + withheld != capacity ${capacity}`);
  if (p.held + p.committed > capacity) broken.push(`oversold: held ${p.held} + committed ${p.committed} > ${capacity}`);
  const tags = await engine.shards.tagsOf(productId);
  for (const [i, tag] of tags.entries()) {
    const held = (await readAllRecords(redis, keys, tag))
      .filter((r) => r.status === 'held')
      .reduce((s, r) => s + Number(r.amount), 0);
    if (held !== p.shards![i]!.held) broken.push(`sub-pool ${i}: held ${p.shards![i]!.held}, records ${held}`);
  }
  broken.push(...(await engine.shards.auditTransfers(productId)).violations);
  const free = capacity - p.held - p.committed;
  // Use only grows in a spike, so every refusal's proof (free < its amount) still holds at the end.
  if (refused.length > 0 && free >= Math.min(...refused))
    broken.push(`stranded: ${free} free, smallest refused ${Math.min(...refused)}`);
  return broken;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function oneNode() {
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  await sleep(300);
  const redis = new Redis({ port, host: '127.0.0.1' });
  const broken: string[] = [];
  try {
    const keys = createKeys(`bench${Date.now()}`);
    for (const cover of [2, 0.8]) {
      const counts: Counts = { borrowGranted: 0, borrowRefused: 0, transfers: 0 };
      const engine = engineWithCounts(redis, keys, counts);
      await engine.loadScripts();
      const results: Record<
        number,
        { rps: number[]; p99: number[]; us: number[]; calls: number[]; refused: number[]; free: number[] }
      > = {};
      for (let round = 0; round < ROUNDS; round++) {
        for (const shards of [1, 4]) {
          const productId = `bench-${shards}-${round}-${randomUUID().slice(0, 8)}`;
          const capacity = Math.floor(RESERVES * MEAN_AMOUNT * cover);
          await createProduct(engine, productId, capacity, shards, CUSTOMERS);
          await redis.call('CONFIG', 'RESETSTAT');
          const run = await spike(engine, productId, RESERVES, CUSTOMERS);
          const { usec, calls } = await commandStats(redis);
          broken.push(
            ...(await checkInvariants(engine, redis, keys, productId, capacity, run.refused)).map(
              (b) => `${productId}: ${b}`,
            ),
          );
          const p = await engine.readPool(productId);
          const r = (results[shards] ??= { rps: [], p99: [], us: [], calls: [], refused: [], free: [] });
          r.calls.push(calls / RESERVES);
          r.rps.push(run.rps);
          r.p99.push(run.p99);
          r.us.push(usec / RESERVES);
          r.refused.push(run.refused.length);
          r.free.push(p.ok ? p.value.available : -1);
        }
      }
      const m = (s: number) => ({
        rps: median(results[s]!.rps),
        p99: median(results[s]!.p99),
        us: median(results[s]!.us),
        calls: median(results[s]!.calls),
      });
      const one = m(1);
      const four = m(4);
      console.log(
        `\none node, capacity ${cover} x demand: ${RESERVES} reserves per round, ` +
          `${IN_FLIGHT} in flight, ${CUSTOMERS} customers, medians of ${ROUNDS} rounds`,
      );
      console.log(
        `  1 shard : ${one.rps.toFixed(0)} reserves/s, p99 ${one.p99.toFixed(2)} ms, Redis ` +
          `${one.us.toFixed(1)} µs and ${one.calls.toFixed(2)} commands per reserve; refused per round ` +
          `${results[1]!.refused.join('/')}; free at the end ${results[1]!.free.join('/')}`,
      );
      console.log(
        `  4 shards: ${four.rps.toFixed(0)} reserves/s, p99 ${four.p99.toFixed(2)} ms, Redis ` +
          `${four.us.toFixed(1)} µs and ${four.calls.toFixed(2)} commands per reserve; refused per round ` +
          `${results[4]!.refused.join('/')}; free at the end ${results[4]!.free.join('/')}`,
      );
      console.log(
        `  ratios 4/1: throughput ${(four.rps / one.rps).toFixed(2)}, p99 ` +
          `${(four.p99 / one.p99).toFixed(2)}, Redis time per reserve ` +
          `${(four.us / one.us).toFixed(2)}`,
      );
      console.log(
        `  4-shard rounds: reserves that borrowed ${counts.borrowGranted} granted, ` +
          `${counts.borrowRefused} refused; transfers ${counts.transfers}`,
      );
    }
  } finally {
    redis.disconnect();
    server.kill('SIGTERM');
  }
  return broken;
}

async function onCluster() {
  const cluster = await startLocalCluster();
  const nodes = cluster.seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) }));
  const topology = await openRedisTopology(
    { kind: 'cluster', nodes, password: undefined },
    '.',
    createLogger('silent'),
  );
  const c = topology.client as Cluster;
  const broken: string[] = [];
  try {
    const keys = createKeys(`benchc${Date.now()}`);
    const counts: Counts = { borrowGranted: 0, borrowRefused: 0, transfers: 0 };
    const engine = engineWithCounts(c, keys, counts);
    await engine.loadScripts();
    const productId = `hot-${randomUUID().slice(0, 8)}`;
    const reserves = Math.max(3_000, Math.floor(RESERVES / 2));
    const capacity = reserves * MEAN_AMOUNT * 2;
    await createProduct(engine, productId, capacity, 3, 600);
    const tags = await engine.shards.tagsOf(productId);
    const onMasters = new Set(await Promise.all(tags.map((tag) => cluster.masterOf(keys.pool(tag)))));
    const masters = c.nodes('master');
    await Promise.all(masters.map((m) => m.call('CONFIG', 'RESETSTAT')));
    const run = await spike(engine, productId, reserves, 600);
    const usec = (await Promise.all(masters.map(commandStats))).map((x) => x.usec);
    const total = usec.reduce((s, u) => s + u, 0);
    const busiest = Math.max(...usec) / total;
    broken.push(
      ...(await checkInvariants(engine, c, keys, productId, capacity, run.refused)).map((b) => `${productId}: ${b}`),
    );
    console.log(
      `\ncluster (3 masters): a 3-shard product, sub-pools on ${onMasters.size} masters; ` +
        `${reserves} reserves, ${IN_FLIGHT} in flight, ${run.rps.toFixed(0)} reserves/s`,
    );
    console.log(
      `  Redis time per master ${usec.map((u) => (u / total).toFixed(3)).join(' / ')}; busiest ` +
        `master's share ${busiest.toFixed(3)} (even 0.333: ` +
        `${((busiest * 3 - 1) * 100).toFixed(0)}% over); projected: ${(1 / busiest).toFixed(2)}x one core's ceiling`,
    );
  } finally {
    c.disconnect();
    await cluster.stop();
  }
  return broken;
}

async function main() {
  const broken = [...(await oneNode()), ...(CLUSTER ? await onCluster() : [])];
  console.log(
    broken.length === 0 ? '\ninvariants: all hold after every round' : `\ninvariants BROKEN:\n  ${broken.join('\n  ')}`,
  );
  process.exitCode = broken.length === 0 ? 0 : 1;
}

void main();
