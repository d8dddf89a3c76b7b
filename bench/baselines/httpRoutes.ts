/**
 * The HTTP figures, all on one product (`thr`: 1,000 lines, nothing ever
 * runs out, so every reserve is a grant, as in the bare route):
 *
 * - our reserve route in one API process, against the bare express route
 *   doing the same EVALSHA in one process: peak requests/s (closed loop,
 *   same connections), and p99 at the same paced rate (half our peak);
 * - the bare express hello route (express alone);
 * - node:cluster with 1 and 2 API processes: peak requests/s and how busy
 *   Redis, the API processes and the load generator were; 2 processes both
 *   with a port each (connections split evenly, as a load balancer would)
 *   and sharing one port (node:cluster's own hand-off of connections);
 * - optionally a CPU profile of one API process at peak.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type autocannon from 'autocannon';
import type { BenchOptions } from '../options.js';
import { jsonHeaders } from '../lib/grants.js';
import { mergeRuns, runAutocannon, runPaced, type LoadResult, type PacedResult } from '../lib/httpLoad.js';
import { freePort } from '../../src/redis/redisServer.js';
import { summarizeCpuProfile, type ProfileSummary } from '../lib/cpuProfile.js';
import { bareRouteMain } from '../lib/paths.js';
import { cpuMeter, startCluster } from '../lib/processes.js';
import { KEY_PREFIX, startApi, type RedisStack } from '../lib/stack.js';
import { prng, randomInt, ratio } from '../lib/stats.js';

export const THROUGHPUT_PRODUCT = 'thr';
const CUSTOMERS = 1_000;

export interface PeakRun extends LoadResult {
  cpu: Record<string, number[]>;
}

export interface HttpFigures {
  ours1: PeakRun;
  /** 2 API processes, a port each, connections split evenly (what a load balancer does). */
  ours2: PeakRun;
  /** 2 API processes sharing one port: node:cluster hands each new connection to a worker. */
  ours2Shared: PeakRun;
  bare: PeakRun;
  hello: PeakRun;
  oursHalf1: PacedResult;
  bareHalf: PacedResult;
  oursHalf2: PacedResult;
  /**
   * oursHalf1 again with Redis at appendfsync everysec: how much of the p99 is the per-write fsync (not production's
   * setting).
   */
  oursHalf1Everysec: PacedResult;
  rpsRatio: number;
  p99Ratio: number;
  clusterGain: number;
  profile?: ProfileSummary;
}

/** `thr`: huge capacity and 1,000 lines of huge limits, made with the engine (no HTTP). */
export async function createThroughputProduct(stack: RedisStack): Promise<void> {
  const created = await stack.engine.upsertProduct(
    THROUGHPUT_PRODUCT,
    { capacity: 1e15, holdTtlSeconds: 86_400 },
    'put',
  );
  if (!created.ok) throw new Error(`could not create ${THROUGHPUT_PRODUCT}: ${created.code}`);
  for (let i = 0; i < CUSTOMERS; i += 500) {
    const lines = Array.from({ length: Math.min(500, CUSTOMERS - i) }, (_, j) => ({
      customerId: `h${i + j}`,
      limit: 1e15,
      status: 'active' as const,
      statusReason: null,
      tier: null,
    }));
    const r = await stack.engine.upsertLines(THROUGHPUT_PRODUCT, lines);
    if (!r.ok) throw new Error(`could not create lines of ${THROUGHPUT_PRODUCT}: ${r.code}`);
  }
}

/** A reserve on `thr`: random customer and amount, unique Idempotency-Key. Identical bytes for both routes. */
function reserveOf(tag: string, seed: number) {
  const random = prng(seed);
  let n = 0;
  return () => {
    const i = n++;
    return {
      path: `/v1/products/${THROUGHPUT_PRODUCT}/reservations`,
      headers: { ...jsonHeaders, 'idempotency-key': `${tag}-${i}` },
      body: JSON.stringify({
        customerId: `h${randomInt(random, 0, CUSTOMERS - 1)}`,
        amount: randomInt(random, 1, 100),
      }),
    };
  };
}

export function reserveRequests(tag: string, seed: number): autocannon.Request[] {
  const next = reserveOf(tag, seed);
  return [{ method: 'POST', setupRequest: (req) => ({ ...req, ...next(), method: 'POST' }) }];
}

interface Target {
  key: string;
  title: string;
  urls: string | string[];
  pids: Record<string, number[]>;
  requests?: (tag: string, seed: number) => autocannon.Request[];
}

/** Share of a core per process over several runs: their mean, weighted by each run's length. */
function mergeCpu(parts: { seconds: number; cpu: Record<string, number[]> }[]): Record<string, number[]> {
  const total = parts.reduce((s, p) => s + p.seconds, 0);
  const out: Record<string, number[]> = {};
  for (const p of parts) {
    for (const [k, list] of Object.entries(p.cpu)) {
      const acc = (out[k] ??= list.map(() => 0));
      list.forEach((v, i) => (acc[i] = (acc[i] ?? 0) + (v * p.seconds) / total));
    }
  }
  for (const list of Object.values(out)) list.forEach((v, i) => (list[i] = Math.round(v * 100) / 100));
  return out;
}

/**
 * Peak (closed loop) of several targets, in interleaved rounds: each round
 * runs every target once, so a burst of outside noise lands on all of them
 * rather than on whichever happened to be running. One warm-up per target
 * first. (autocannon ends a run on its one-second tick: whole seconds.)
 */
async function interleavedPeaks(targets: Target[], o: BenchOptions, runId: string): Promise<Record<string, PeakRun>> {
  const rounds = o.smoke ? 1 : 3;
  const parts = new Map<string, { run: LoadResult; seconds: number; cpu: Record<string, number[]> }[]>(
    targets.map((t) => [t.key, []]),
  );
  const requestsOf = (t: Target, tag: string, seed: number) => (t.requests ?? reserveRequests)(tag, seed);
  for (const t of targets) {
    await runAutocannon({
      title: `${t.title} (warm-up)`,
      baseUrl: t.urls,
      connections: o.peakConnections,
      duration: o.warmupSeconds,
      requests: requestsOf(t, `${runId}-${t.key}w`, o.seed),
    });
  }
  for (let r = 0; r < rounds; r++) {
    for (const t of targets) {
      const cpu = cpuMeter(t.pids);
      const run = await runAutocannon({
        title: t.title,
        baseUrl: t.urls,
        connections: o.peakConnections,
        duration: Math.max(1, Math.round(o.peakSeconds / rounds)),
        requests: requestsOf(t, `${runId}-${t.key}${r}`, o.seed + r),
      });
      parts.get(t.key)!.push({ run, seconds: run.seconds, cpu: cpu.stop() });
    }
  }
  return Object.fromEntries(
    targets.map((t) => {
      const p = parts.get(t.key)!;
      return [
        t.key,
        {
          ...mergeRuns(
            t.title,
            p.map((x) => x.run),
          ),
          cpu: mergeCpu(p),
        },
      ];
    }),
  );
}

/** Latency at a paced rate, per target, in interleaved rounds (the first with a warm-up at the rate). */
async function interleavedPaced(
  targets: (Target & { rate: number })[],
  o: BenchOptions,
  runId: string,
): Promise<Record<string, PacedResult>> {
  const rounds = o.smoke ? 1 : 2;
  const parts = new Map<string, PacedResult[]>(targets.map((t) => [t.key, []]));
  for (let r = 0; r < rounds; r++) {
    for (const t of targets) {
      const next = reserveOf(`${runId}-${t.key}p${r}`, o.seed + r);
      const run = await runPaced({
        title: t.title,
        baseUrl: t.urls,
        rate: Math.max(1, Math.round(t.rate)),
        seconds: o.peakSeconds / rounds,
        warmupSeconds: r === 0 ? (o.smoke ? 0.5 : Math.max(1, o.warmupSeconds / 2)) : 0,
        maxSockets: o.peakConnections,
        makeRequest: () => ({ method: 'POST', ...next() }),
      });
      parts.get(t.key)!.push(run);
    }
  }
  return Object.fromEntries(targets.map((t) => [t.key, mergeRuns(t.title, parts.get(t.key)!)]));
}

export async function runHttpFigures(
  o: BenchOptions,
  stack: RedisStack,
  env: Record<string, string>,
  workDir: string,
  runId: string,
  profileDir: string | undefined,
  log: (s: string) => void,
): Promise<HttpFigures> {
  const redisPid = stack.server.process.pid!;

  log(
    'starting: our API with 1 process, with 2 (a port each), with 2 (one ' +
      'shared port), and the bare express route (1 process)',
  );
  const one = await startApi(env, 1, workDir, 'api-x1');
  const two = await startApi(env, 2, workDir, 'api-x2', { separatePorts: true });
  const shared = await startApi(env, 2, workDir, 'api-x2-shared');
  const barePort = await freePort();
  const bareCluster = await startCluster({
    name: 'bare-route',
    exec: bareRouteMain,
    workers: 1,
    port: barePort,
    env: { REDIS_URL: stack.server.url, KEY_PREFIX, RESERVE_FUNCTION: stack.engine.library.functionName('reserve') },
    logFile: join(workDir, 'bare-route.log'),
  });
  const bareUrl = `http://127.0.0.1:${barePort}`;
  const redis = [redisPid];
  const targets = {
    ours1: {
      key: 'ours1',
      title: 'our reserve route, 1 API process',
      urls: one.baseUrl,
      pids: { api: one.cluster.pids, redis },
    },
    bare: {
      key: 'bare',
      title: 'bare express EVALSHA route, 1 process',
      urls: bareUrl,
      pids: { api: bareCluster.pids, redis },
    },
    ours2: {
      key: 'ours2',
      title: 'our reserve route, 2 API processes (a port each)',
      urls: two.baseUrls,
      pids: { api: two.cluster.pids, redis },
    },
    ours2Shared: {
      key: 'ours2Shared',
      title: 'our reserve route, 2 API processes (one shared port)',
      urls: shared.baseUrl,
      pids: { api: shared.cluster.pids, redis },
    },
  };

  log(
    `peaks, closed loop, ${o.peakConnections} connections, interleaved rounds: ours (1 ` +
      `process), bare route, ours (2 processes, a port each / one shared port)`,
  );
  const peaks = await interleavedPeaks([targets.ours1, targets.bare, targets.ours2, targets.ours2Shared], o, runId);
  const hello = (
    await interleavedPeaks(
      [
        {
          key: 'hello',
          title: 'bare express hello route',
          urls: bareUrl,
          pids: targets.bare.pids,
          requests: () => [{ method: 'GET', path: '/hello' }],
        },
      ],
      { ...o, peakSeconds: o.peakSeconds / 2 },
      runId,
    )
  ).hello!;

  const rate = peaks.ours1!.rps / 2;
  log(
    `latency at a paced rate, interleaved: ours (1 process) and the bare route at ${Math.round(rate)}/s ` +
      `(half our 1-process peak); ours (2 processes) at ${Math.round(peaks.ours2!.rps / 2)}/s`,
  );
  const pacedRuns = await interleavedPaced(
    [
      { ...targets.ours1, title: `our reserve route, 1 API process, ${Math.round(rate)}/s`, rate },
      { ...targets.bare, title: `bare express EVALSHA route, ${Math.round(rate)}/s`, rate },
      {
        ...targets.ours2,
        title: `our reserve route, 2 API processes, ${Math.round(peaks.ours2!.rps / 2)}/s`,
        rate: peaks.ours2!.rps / 2,
      },
    ],
    o,
    runId,
  );
  log(
    `the same paced run of ours (1 process) with Redis at appendfsync ` +
      `everysec, to see what the per-write fsync costs the p99`,
  );
  const fsync = ((await stack.redis.config('GET', 'appendfsync')) as string[])[1]!;
  await stack.redis.config('SET', 'appendfsync', 'everysec');
  let everysecRuns: Record<string, PacedResult>;
  try {
    everysecRuns = await interleavedPaced(
      [
        {
          ...targets.ours1,
          key: 'ours1Everysec',
          title: `our reserve route, 1 API process, ${Math.round(rate)}/s, appendfsync everysec`,
          rate,
        },
      ],
      o,
      runId,
    );
  } finally {
    await stack.redis.config('SET', 'appendfsync', fsync);
  }
  await Promise.all([one.cluster.stop(), two.cluster.stop(), shared.cluster.stop(), bareCluster.stop()]);
  const ours1 = peaks.ours1!;
  const ours2 = peaks.ours2!;
  const ours2Shared = peaks.ours2Shared!;
  const bare = peaks.bare!;
  const oursHalf1 = pacedRuns.ours1!;
  const bareHalf = pacedRuns.bare!;
  const oursHalf2 = pacedRuns.ours2!;

  let profile: ProfileSummary | undefined;
  if (profileDir) {
    log('CPU profile of 1 API process at peak (--cpu-prof)');
    const profiled = await startApi(env, 1, workDir, 'api-profiled', {
      execArgv: ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', 'api-process.cpuprofile'],
    });
    await runAutocannon({
      title: 'profiled (warm-up)',
      baseUrl: profiled.baseUrl,
      connections: o.peakConnections,
      duration: o.warmupSeconds,
      requests: reserveRequests(`${runId}-pw`, o.seed),
    });
    const loadStarted = performance.now();
    await runAutocannon({
      title: 'profiled',
      baseUrl: profiled.baseUrl,
      connections: o.peakConnections,
      duration: o.peakSeconds,
      requests: reserveRequests(`${runId}-p`, o.seed),
    });
    const loadEnded = performance.now();
    await profiled.cluster.stop();
    const stopped = performance.now();
    const file = readdirSync(profileDir).find((f) => f === 'api-process.cpuprofile');
    // The profile runs from the process's start to its exit: keep the measured load only.
    if (file)
      profile = summarizeCpuProfile(join(profileDir, file), {
        fromEndMs: [stopped - loadStarted, stopped - loadEnded],
      });
    else log('  no profile was written (the API process did not exit cleanly?)');
  }

  return {
    ours1,
    ours2,
    ours2Shared,
    bare,
    hello,
    oursHalf1,
    bareHalf,
    oursHalf2,
    oursHalf1Everysec: everysecRuns.ours1Everysec!,
    rpsRatio: ratio(ours1.rps, bare.rps),
    p99Ratio: ratio(oursHalf1.latency.p99, bareHalf.latency.p99),
    clusterGain: ratio(ours2.rps, ours1.rps),
    profile,
  };
}
