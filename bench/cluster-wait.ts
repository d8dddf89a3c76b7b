/**
 * What REDIS_WAIT_REPLICAS=1 costs on a Redis Cluster: a local cluster of 3
 * masters and 3 replicas (test/support/redisCluster.ts), engine.reserve
 * called directly (no HTTP) with a fixed number of calls in flight over 9
 * products (3 per master), in alternating rounds of WAIT 0 and WAIT 1 (so a
 * busy shared machine hurts both alike). Then the invariants: the audit
 * compares every product's counters with its records.
 *
 *   npx tsc -p tsconfig.bench.json && node dist/bench/cluster-wait.js [seconds-per-round] [rounds] [in-flight]
 *
 * Writes bench/results/cluster-wait-<time>.json and prints the ratios.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInvariantAudit } from '../src/audit/invariantAudit.js';
import { createQuotaEngine } from '../src/engine/quotaEngine.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { createDurableWrites } from '../src/redis/durableWrite.js';
import { createKeys } from '../src/redis/keys.js';
import { openRedisTopology } from '../src/redis/topology.js';
import { productsPerMaster, startLocalCluster } from '../test/support/redisCluster.js';
import { runInFlight, type InFlightRun } from './baselines/engineDirect.js';
import { resultsDir } from './lib/paths.js';
import { ratio, summarize } from './lib/stats.js';

async function main(): Promise<number> {
  const [seconds = 5, rounds = 3, inFlight = 32] = process.argv.slice(2).map(Number);
  const logger = createLogger('silent');
  console.log(`starting a local cluster (3 masters, 3 replicas, AOF appendfsync always)...`);
  const cluster = await startLocalCluster();
  try {
    const nodes = cluster.seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) }));
    const topology = await openRedisTopology({ kind: 'cluster', nodes, password: undefined }, '.', logger);
    const redis = topology.client;
    const keys = createKeys('bw');
    const engines = {
      0: createQuotaEngine({ redis, keys }),
      // As src/main.ts builds it: confirmed writes take turns on 8 connections per node.
      1: createQuotaEngine({ redis, keys, durableWrites: createDurableWrites({ replicas: 1, timeoutMs: 500, logger, pool: [redis, ...(await topology.moreClients(7))] }) }),
    };
    const products = [...(await productsPerMaster(cluster, (p) => keys.pool(p), 3, 'bw-p')).values()].flat();
    for (const p of products) {
      await engines[0].upsertProduct(p, { capacity: 1_000_000_000_000, holdTtlSeconds: 3_600 }, 'put');
      const lines = Array.from({ length: 100 }, (_, c) => ({ customerId: `c${c}`, limit: 1_000_000_000_000, status: 'active' as const, statusReason: null, tier: null }));
      const created = await engines[0].upsertLines(p, lines);
      if (!created.ok) throw new Error(`lines: ${created.code}`);
    }
    const reserve = (wait: 0 | 1, tag: string) => (i: number) => {
      const productId = products[i % products.length]!;
      return engines[wait]
        .reserve({ productId, customerId: `c${i % 100}`, reservationId: randomUUID(), amount: 1, idempotencyKey: `${tag}-${i}`, fingerprint: 'fp' })
        .then((o) => {
          if (!o.ok) throw new Error(o.code);
        });
    };
    await runInFlight('warm-up', inFlight, 2, reserve(0, 'w0'));
    await runInFlight('warm-up', inFlight, 2, reserve(1, 'w1'));
    const runs: Record<0 | 1, InFlightRun[]> = { 0: [], 1: [] };
    for (let r = 0; r < rounds; r++) {
      for (const wait of (r % 2 === 0 ? [0, 1] : [1, 0]) as (0 | 1)[]) {
        const run = await runInFlight(`WAIT ${wait}, round ${r + 1}`, inFlight, seconds, reserve(wait, `r${r}w${wait}`));
        runs[wait].push(run);
        console.log(`${run.label}: ${run.rps} reserves/s, p50 ${run.latency.p50.toFixed(2)} ms, p99 ${run.latency.p99.toFixed(2)} ms, failures ${run.failures}`);
      }
    }
    const total = (wait: 0 | 1) => {
      const rs = runs[wait];
      const calls = rs.reduce((s, x) => s + x.calls, 0);
      const secs = rs.reduce((s, x) => s + x.seconds, 0);
      return { rps: Math.round(calls / secs), p99: median(rs.map((x) => x.latency.p99)), p50: median(rs.map((x) => x.latency.p50)), failures: rs.reduce((s, x) => s + x.failures, 0) };
    };
    const w0 = total(0);
    const w1 = total(1);
    const audit = await createInvariantAudit({
      bullmq: { queue: () => ({}), worker: () => ({}) },
      redis,
      keys,
      engine: engines[0],
      logger,
      metrics: createMetrics(),
      intervalMs: 60_000,
      // Every hold of the run is still live: compare them all (the default stops at 2,000 live records).
      limits: { liveLimit: 10_000_000 },
    }).auditOnce();
    const compared = audit.products.every((p) => p.outcome === 'consistent');
    const result = {
      at: new Date().toISOString(),
      setup: { masters: 3, replicasPerMaster: 1, products: products.length, inFlight, secondsPerRound: seconds, rounds, waitTimeoutMs: 500 },
      wait0: w0,
      wait1: w1,
      throughputRatio: ratio(w1.rps, w0.rps),
      p99Ratio: ratio(w1.p99, w0.p99),
      p50Ratio: ratio(w1.p50, w0.p50),
      invariants: { products: audit.products.length, violations: audit.violations, outcomes: [...new Set(audit.products.map((p) => p.outcome))] },
      runs,
    };
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `cluster-wait-${result.at.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2));
    console.log(JSON.stringify({ wait0: w0, wait1: w1, throughputRatio: result.throughputRatio, p99Ratio: result.p99Ratio, p50Ratio: result.p50Ratio, invariants: result.invariants }));
    console.log(`written ${file}`);
    await topology.close();
    return compared && audit.violations === 0 && w0.failures + w1.failures === 0 ? 0 : 1;
  } finally {
    await cluster.stop();
  }
}

function median(xs: number[]): number {
  return summarize(xs).p50;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
