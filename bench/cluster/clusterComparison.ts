/**
 * The cluster comparison of `npm run bench`: the same launch (the spike of
 * the launch plan: one hot product) and the many-products scenario (100
 * products spread over the masters by their hash tags) run against the
 * service on
 *
 *   1. one redis-server (AOF, appendfsync always), as the rest of the bench;
 *   2. a local Redis Cluster of 3 masters and 3 replicas
 *      (test/support/redisCluster.ts, the same AOF settings), the service
 *      given REDIS_CLUSTER_NODES, REDIS_WAIT_REPLICAS=0;
 *   3. the same cluster with REDIS_WAIT_REPLICAS=1;
 *
 * each with a fresh jobs process and fresh API processes, and the same plan
 * and pool sizes. Every scenario is followed by its invariant checks (read
 * from the node or the cluster directly). Around every load Redis's
 * `INFO commandstats` is reset and read on each master: FCALL calls and CPU
 * microseconds per node, which show how the work spreads (on 2 shared cores
 * three masters cannot add throughput). Last, the engine-level WAIT 0 vs 1
 * (bench/cluster/engineWait.ts) on the same cluster, without HTTP.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import calculateSlot from 'cluster-key-slot';
import { Cluster } from 'ioredis';
import { createKeys } from '../../src/redis/keys.js';
import { startLocalCluster } from '../../test/support/redisCluster.js';
import { withNode } from '../../test/support/redisProcesses.js';
import { bulkImport } from '../lib/bulkImport.js';
import { onCleanup } from '../lib/cleanup.js';
import type { Check } from '../lib/invariants.js';
import { ratio } from '../lib/stats.js';
import {
  KEY_PREFIX,
  serviceEnv,
  startApi,
  startJobsProcess,
  startRedis,
  type LedgerProcess,
  type RedisStack,
} from '../lib/stack.js';
import type { BenchOptions } from '../options.js';
import type { LaunchPlan } from '../scenarios/launchPlan.js';
import { manyProductIds, runManyProducts } from '../scenarios/manyProducts.js';
import { failed, type ScenarioContext, type ScenarioResult } from '../scenarios/scenario.js';
import { LAUNCH_PRODUCT, runSpike } from '../scenarios/spike.js';
import { readFcallStats, resetCommandStats, type NodeFcallStats } from './commandStats.js';
import { measureEngineWait, type EngineWaitResult } from './engineWait.js';

export type ClusterScenarioName = 'spike' | 'many-products';

export interface ClusterLegScenario {
  scenario: ClusterScenarioName;
  responses: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  totals: Record<string, unknown>;
  /** Core share of each process during the load: api, redis (one per master), harness. */
  cpu: Record<string, number[]>;
  /** Per master (the one node: one entry). */
  fcall: NodeFcallStats[];
  checks: Check[];
}

export interface ClusterLeg {
  name: string;
  topology: 'one node' | 'cluster';
  waitReplicas: 0 | 1;
  scenarios: ClusterLegScenario[];
}

export interface ClusterRatios {
  scenario: ClusterScenarioName;
  /** Cluster (WAIT 0) over one node. */
  clusterVsOne: { rps: number; p99: number };
  /** Cluster WAIT 1 over cluster WAIT 0. */
  wait1VsWait0: { rps: number; p99: number };
}

export interface ClusterComparison {
  setup: {
    masters: number;
    replicasPerMaster: number;
    customers: number;
    spikeConnections: number;
    manyProducts: number;
    manyConnections: number;
    manySeconds: number;
    apiProcesses: number;
    /** Master port -> how many of the many-products products it owns, and which owns the launch product. */
    manyProductsPerMaster: Record<string, number>;
    launchProductMaster: number;
  };
  legs: ClusterLeg[];
  ratios: ClusterRatios[];
  engineWait?: EngineWaitResult;
}

export interface ClusterComparisonInput {
  options: BenchOptions;
  plan: LaunchPlan;
  ledger: LedgerProcess;
  workDir: string;
  runId: string;
  apiProcesses: number;
  /** The main spike's rate: sizes the many-products pools alike in every leg. */
  expectedRps?: number;
  log: (s: string) => void;
}

export async function runClusterComparison(
  input: ClusterComparisonInput,
): Promise<{ comparison: ClusterComparison; violations: string[] }> {
  const { options, plan, log } = input;
  const keys = createKeys(KEY_PREFIX);
  const violations: string[] = [];

  log('starting a local Redis Cluster: 3 masters, 3 replicas (AOF on, appendfsync always)');
  const cluster = await startLocalCluster();
  const cancelClusterCleanup = onCleanup('redis cluster', () => cluster.stop());
  const nodes = cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }));
  const client = new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: null } });
  const cancelClientCleanup = onCleanup('redis cluster client', () => {
    client.disconnect();
  });
  let one: RedisStack | undefined;
  try {
    // As on the one node (bench/lib/stack.ts): no AOF rewrite fork in the middle of a measurement.
    for (const n of cluster.nodes) await withNode(n.port, (r) => r.config('SET', 'auto-aof-rewrite-percentage', '0'));
    const masters = await cluster.masterPorts();
    const masterPids = masters.map((port) => cluster.nodes.find((n) => n.port === port)!.process!.child.pid!);
    await client.ping();
    const masterOf = (productId: string) =>
      Number(client.slots[calculateSlot(keys.pool(productId))]![0]!.split(':')[1]);
    const manyProductsPerMaster: Record<string, number> = Object.fromEntries(masters.map((p) => [String(p), 0]));
    for (const p of manyProductIds(options.manyProducts)) manyProductsPerMaster[String(masterOf(p))]!++;

    log('starting a fresh redis-server for the one-node leg');
    one = await startRedis();
    const legs: { name: string; topology: 'one node' | 'cluster'; waitReplicas: 0 | 1 }[] = [
      { name: 'one node', topology: 'one node', waitReplicas: 0 },
      { name: 'cluster, WAIT 0', topology: 'cluster', waitReplicas: 0 },
      { name: 'cluster, WAIT 1', topology: 'cluster', waitReplicas: 1 },
    ];
    const results: ClusterLeg[] = [];
    for (const [i, leg] of legs.entries()) {
      const onCluster = leg.topology === 'cluster';
      // Each leg starts from an empty data set (the functions stay loaded).
      if (onCluster) for (const port of masters) await withNode(port, (r) => r.flushall());
      const ports = onCluster ? masters : [one.server.port];
      const legDir = join(input.workDir, `cluster-comparison-${i}`);
      mkdirSync(legDir, { recursive: true });
      const env = serviceEnv(one.server.url, input.ledger, legDir, options.logLevel);
      if (onCluster) {
        delete env.REDIS_URL;
        env.REDIS_CLUSTER_NODES = cluster.seeds;
      }
      env.REDIS_WAIT_REPLICAS = String(leg.waitReplicas);
      log(`cluster comparison, ${leg.name}: jobs process and ${input.apiProcesses} API processes`);
      const jobs = await startJobsProcess(env, legDir);
      const service = await startApi(
        env,
        input.apiProcesses,
        legDir,
        `api-${onCluster ? `cluster-wait${leg.waitReplicas}` : 'one-node'}`,
      );
      try {
        const ctx: ScenarioContext = {
          options,
          stack: one,
          redis: onCluster ? client : one.redis,
          keys,
          redisPids: onCluster ? masterPids : [one.server.process.pid!],
          api: service.api,
          baseUrl: service.baseUrl,
          ledger: input.ledger,
          runId: `${input.runId}-c${i}`,
          apiPids: service.cluster.pids,
          expectedRps: input.expectedRps,
          onLoadStart: () => resetCommandStats(ports),
        };
        await service.api.putProduct(LAUNCH_PRODUCT, { capacity: plan.capacity, holdTtlSeconds: 3600 });
        await bulkImport(
          service.baseUrl,
          [{ productId: LAUNCH_PRODUCT, rows: plan.lines }],
          `${leg.name}: launch lines`,
        );
        const scenarios: ClusterLegScenario[] = [];
        for (const [name, run] of [
          ['spike', () => runSpike(ctx, plan)],
          ['many-products', () => runManyProducts(ctx)],
        ] as [ClusterScenarioName, () => Promise<ScenarioResult>][]) {
          const s = await run();
          const fcall = await readFcallStats(ports);
          scenarios.push(summarise(name, s, fcall));
          log(
            `  ${leg.name}, ${name}: ${s.load.responses} answers in ` +
              `${s.load.seconds.toFixed(1)} s = ${s.load.rps}/s, p99 ${s.load.latency.p99} ms; ` +
              `FCALL per node ${fcall.map((f) => `${f.port}: ${f.calls} calls, ${f.usecPerCall} us/call`).join('; ')}`,
          );
          for (const c of s.checks) log(`    ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
          for (const c of failed(s.checks))
            violations.push(`cluster comparison, ${leg.name}, ${name}: ${c.name}: ${c.detail}`);
        }
        results.push({ ...leg, scenarios });
      } finally {
        await service.cluster.stop();
        await jobs.stop();
      }
      if (!onCluster) {
        one.redis.disconnect();
        await one.server.stop();
      }
    }

    log('engine-level WAIT 0 vs 1 on the same cluster (engine.reserve directly, no HTTP)');
    const engineWait = await measureEngineWait(cluster, options.clusterEngineWait, (s) => log(`  ${s}`));
    if (!engineWait.ok) {
      violations.push(
        `cluster comparison, engine WAIT 0 vs 1: failures ` +
          `${engineWait.wait0.failures + engineWait.wait1.failures}, audit ` +
          `${JSON.stringify(engineWait.invariants)}`,
      );
    }

    return {
      violations,
      comparison: {
        setup: {
          masters: masters.length,
          replicasPerMaster: 1,
          customers: plan.lines.length,
          spikeConnections: options.spikeConnections,
          manyProducts: options.manyProducts,
          manyConnections: options.manyConnections,
          manySeconds: options.manySeconds,
          apiProcesses: input.apiProcesses,
          manyProductsPerMaster,
          launchProductMaster: masterOf(LAUNCH_PRODUCT),
        },
        legs: results,
        ratios: ratiosOf(results),
        engineWait,
      },
    };
  } finally {
    client.disconnect();
    cancelClientCleanup();
    if (one) {
      one.redis.disconnect();
      await one.server.stop();
    }
    cancelClusterCleanup();
    await cluster.stop();
  }
}

function summarise(scenario: ClusterScenarioName, s: ScenarioResult, fcall: NodeFcallStats[]): ClusterLegScenario {
  return {
    scenario,
    responses: s.load.responses,
    seconds: s.load.seconds,
    rps: s.load.rps,
    p50: s.load.latency.p50,
    p99: s.load.latency.p99,
    errors: s.load.errors,
    totals: s.totals,
    cpu: s.cpu,
    fcall,
    checks: s.checks,
  };
}

function ratiosOf(legs: ClusterLeg[]): ClusterRatios[] {
  const find = (name: string, scenario: ClusterScenarioName) =>
    legs.find((l) => l.name === name)?.scenarios.find((s) => s.scenario === scenario);
  return (['spike', 'many-products'] as const).flatMap((scenario) => {
    const one = find('one node', scenario);
    const w0 = find('cluster, WAIT 0', scenario);
    const w1 = find('cluster, WAIT 1', scenario);
    if (!one || !w0 || !w1) return [];
    return [
      {
        scenario,
        clusterVsOne: { rps: ratio(w0.rps, one.rps), p99: ratio(w0.p99, one.p99) },
        wait1VsWait0: { rps: ratio(w1.rps, w0.rps), p99: ratio(w1.p99, w0.p99) },
      },
    ];
  });
}
