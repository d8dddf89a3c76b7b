/**
 * What REDIS_WAIT_REPLICAS=1 costs inside Redis, without HTTP: engine.reserve
 * called directly on a local Redis Cluster with a fixed number of calls in
 * flight over 9 products (3 per master), in alternating rounds of WAIT 0 and
 * WAIT 1 (so a busy shared machine hurts both alike). Then the invariants:
 * the audit compares every product's counters with its records.
 *
 * Used by the cluster comparison of `npm run bench` (bench/cluster/
 * clusterComparison.ts) and by the stand-alone bench/cluster-wait.ts.
 */
import { randomUUID } from 'node:crypto';
import { createInvariantAudit } from '../../src/audit/invariantAudit.js';
import { createQuotaEngine } from '../../src/engine/quotaEngine.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import { createDurableWrites } from '../../src/redis/durableWrite.js';
import { createKeys } from '../../src/redis/keys.js';
import { openRedisTopology } from '../../src/redis/topology.js';
import { productsPerMaster, type LocalCluster } from '../../test/support/redisCluster.js';
import { runInFlight, type InFlightRun } from '../baselines/engineDirect.js';
import { ratio, summarize } from '../lib/stats.js';

export interface EngineWaitOptions {
  secondsPerRound: number;
  rounds: number;
  inFlight: number;
}

export interface EngineWaitTotals {
  rps: number;
  /** Medians over the rounds. */
  p99: number;
  p50: number;
  failures: number;
}

export interface EngineWaitResult {
  at: string;
  setup: {
    masters: number;
    replicasPerMaster: number;
    products: number;
    inFlight: number;
    secondsPerRound: number;
    rounds: number;
    waitTimeoutMs: number;
  };
  wait0: EngineWaitTotals;
  wait1: EngineWaitTotals;
  throughputRatio: number;
  p99Ratio: number;
  p50Ratio: number;
  invariants: { products: number; violations: number; outcomes: string[] };
  /** Every product consistent, no violation, no failed call. */
  ok: boolean;
  runs: Record<0 | 1, InFlightRun[]>;
}

const WAIT_TIMEOUT_MS = 500;

/** Runs on `cluster` under its own key prefix (`bw`), so it can share the cluster with other runs. */
export async function measureEngineWait(
  cluster: LocalCluster,
  o: EngineWaitOptions,
  log: (s: string) => void = () => {},
): Promise<EngineWaitResult> {
  const logger = createLogger('silent');
  const nodes = cluster.seeds.split(',').map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) }));
  const topology = await openRedisTopology({ kind: 'cluster', nodes, password: undefined }, '.', logger);
  try {
    const redis = topology.client;
    const keys = createKeys('bw');
    const engines = {
      0: createQuotaEngine({ redis, keys }),
      // As src/main.ts builds it: confirmed writes take turns on 8 connections per node.
      1: createQuotaEngine({
        redis,
        keys,
        durableWrites: createDurableWrites({
          replicas: 1,
          timeoutMs: WAIT_TIMEOUT_MS,
          logger,
          pool: [redis, ...(await topology.moreClients(7))],
        }),
      }),
    };
    const products = [...(await productsPerMaster(cluster, (p) => keys.pool(p), 3, 'bw-p')).values()].flat();
    for (const p of products) {
      await engines[0].upsertProduct(p, { capacity: 1_000_000_000_000, holdTtlSeconds: 3_600 }, 'put');
      const lines = Array.from({ length: 100 }, (_, c) => ({
        customerId: `c${c}`,
        limit: 1_000_000_000_000,
        status: 'active' as const,
        statusReason: null,
        tier: null,
      }));
      const created = await engines[0].upsertLines(p, lines);
      if (!created.ok) throw new Error(`lines: ${created.code}`);
    }
    const run = `${Date.now().toString(36)}`;
    const reserve = (wait: 0 | 1, tag: string) => (i: number) => {
      const productId = products[i % products.length]!;
      return engines[wait]
        .reserve({
          productId,
          customerId: `c${i % 100}`,
          reservationId: randomUUID(),
          amount: 1,
          idempotencyKey: `${run}-${tag}-${i}`,
          fingerprint: 'fp',
        })
        .then((outcome) => {
          if (!outcome.ok) throw new Error(outcome.code);
        });
    };
    const warmup = Math.min(2, o.secondsPerRound);
    await runInFlight('warm-up', o.inFlight, warmup, reserve(0, 'w0'));
    await runInFlight('warm-up', o.inFlight, warmup, reserve(1, 'w1'));
    const runs: Record<0 | 1, InFlightRun[]> = { 0: [], 1: [] };
    for (let r = 0; r < o.rounds; r++) {
      for (const wait of (r % 2 === 0 ? [0, 1] : [1, 0]) as (0 | 1)[]) {
        const one = await runInFlight(
          `WAIT ${wait}, round ${r + 1}`,
          o.inFlight,
          o.secondsPerRound,
          reserve(wait, `r${r}w${wait}`),
        );
        runs[wait].push(one);
        log(
          `${one.label}: ${one.rps} reserves/s, p50 ${one.latency.p50.toFixed(2)} ms, ` +
            `p99 ${one.latency.p99.toFixed(2)} ms, failures ${one.failures}`,
        );
      }
    }
    const total = (wait: 0 | 1): EngineWaitTotals => {
      const rs = runs[wait];
      const calls = rs.reduce((s, x) => s + x.calls, 0);
      const secs = rs.reduce((s, x) => s + x.seconds, 0);
      return {
        rps: Math.round(calls / secs),
        p99: median(rs.map((x) => x.latency.p99)),
        p50: median(rs.map((x) => x.latency.p50)),
        failures: rs.reduce((s, x) => s + x.failures, 0),
      };
    };
    const wait0 = total(0);
    const wait1 = total(1);
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
    const consistent = audit.products.every((p) => p.outcome === 'consistent');
    return {
      at: new Date().toISOString(),
      setup: {
        masters: 3,
        replicasPerMaster: 1,
        products: products.length,
        inFlight: o.inFlight,
        secondsPerRound: o.secondsPerRound,
        rounds: o.rounds,
        waitTimeoutMs: WAIT_TIMEOUT_MS,
      },
      wait0,
      wait1,
      throughputRatio: ratio(wait1.rps, wait0.rps),
      p99Ratio: ratio(wait1.p99, wait0.p99),
      p50Ratio: ratio(wait1.p50, wait0.p50),
      invariants: {
        products: audit.products.length,
        violations: audit.violations,
        outcomes: [...new Set(audit.products.map((p) => p.outcome))],
      },
      ok: consistent && audit.violations === 0 && wait0.failures + wait1.failures === 0,
      runs,
    };
  } finally {
    await topology.close();
  }
}

function median(xs: number[]): number {
  return summarize(xs).p50;
}
