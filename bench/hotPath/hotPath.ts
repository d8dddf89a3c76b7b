/**
 * Issue 11's comparison, measured as the issue states it, in one pass:
 *
 * Redis level (Redis pinned to one core, the clients to the other):
 *   reserve   `redis-benchmark -P 16` FCALL of our function against EVALSHA
 *             of the minimal script (bench/lua/minimal-reserve-4.lua);
 *   commit,   the same pipelining (-P 16) from a Node driver, since
 *   release   redis-benchmark can only draw random ids and a commit needs a
 *             live hold: each call ends one of the holds made just before;
 *   each with the script's own time per call (INFO commandstats: the FCALL's
 *   or EVALSHA's usec, its Redis commands included).
 *
 * HTTP level (the API process pinned to one core; Redis and autocannon, this
 * process, on the other; 100 connections): our route in one API process
 * against the bare express app (bench/hotPath/minimalApp.ts) running one
 * EVALSHA of the minimal script, for reserve, commit and release, in
 * interleaved rounds; requests/s, p99, and per-call script time from INFO
 * commandstats while each run goes on. Then our reserve at half its peak,
 * paced, with the p99 read from the service's own histogram.
 *
 * Then the invariants of the product the HTTP runs used: counters equal
 * exactly what the answers granted, committed and released (requests whose
 * answer the stop cut off are sent again with the same key: a stored answer
 * or the state answers them), the records add up to every counter, and the
 * status indexes agree with the records.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type autocannon from 'autocannon';
import { Redis } from 'ioredis';
import { keysFor, SCRIPTS, type ScriptSettings } from '../../src/engine/scriptCatalogue.js';
import { freePort } from '../../src/redis/redisServer.js';
import { commandStats, createBenchProduct, profiledRun, redisBenchmark } from '../baselines/redisBenchmark.js';
import { createThroughputProduct, THROUGHPUT_PRODUCT } from '../baselines/httpRoutes.js';
import { jsonHeaders } from '../lib/grants.js';
import { runAutocannon, runPaced, type LoadResult } from '../lib/httpLoad.js';
import { checkProducts, type Check } from '../lib/invariants.js';
import { distDir } from '../lib/paths.js';
import { cpuMeter, startCluster } from '../lib/processes.js';
import { startApi, type RedisStack } from '../lib/stack.js';
import { prng, randomInt } from '../lib/stats.js';
import { fillMinimalCounters, loadMinimalScripts, minimalArgs, type MinimalShas } from './minimalScripts.js';
import { allCpus, canPin, pin } from './pinning.js';
import { bucketsOf, latencyBetween, scrapeBuckets } from './serviceHistogram.js';

export interface HotPathOptions {
  smoke: boolean;
  /** Seconds of each measured HTTP run. */
  seconds: number;
  /** Interleaved rounds of ours and the bare app per operation. */
  rounds: number;
  warmupSeconds: number;
  /** Reserves each app answers before the measured rounds. */
  warmupRequests: number;
  connections: number;
  /** redis-benchmark -n per round (the commit/release driver ends half as many holds per round). */
  redisRequests: number;
  seed: number;
  /**
   * Another build of the service (a dist/ folder): its reserve route runs in the same rounds (before/after in one run).
   */
  compareDist?: string;
  /** Node flags for our API process only (e.g. GC settings under trial); the bare app runs with Node's defaults. */
  apiNodeFlags?: string[];
}

const API_CPU = '0';
const REDIS_CPU = '1';
const SETTINGS: ScriptSettings = {
  reclaimLimit: 100,
  idempotencyTtlSeconds: 86_400,
  idempotencyRefusalTtlSeconds: 3_600,
};
const CUSTOMERS = 1_000;
const OPS = ['reserve', 'commit', 'release'] as const;
type Op = (typeof OPS)[number];

export interface ScriptTime {
  calls: number;
  usecPerCall: number;
}

export interface RedisLevel {
  op: Op;
  tool: string;
  ours: { rps: number; script: ScriptTime; command?: string };
  minimal: { rps: number; script: ScriptTime; command?: string };
  rpsRatio: number;
  /** Script time per call, ours / minimal. */
  usecRatio: number;
}

export interface HttpLevel {
  op: Op;
  ours: LoadResult & { script: ScriptTime; cpu: Record<string, number[]> };
  bare: LoadResult & { script: ScriptTime; cpu: Record<string, number[]> };
  rpsRatio: number;
  p99Ratio: number;
  usecRatio: number;
  /**
   * µs of the API process's CPU per answer, ours and bare: the route's cost, whatever share of a core the machine left
   * it.
   */
  apiCpuUsecPerRequest: { ours: number; bare: number };
  /** bare / ours CPU per answer: the requests/s ratio a core to itself would give (less noisy on a busy machine). */
  cpuEfficiencyRatio: number;
}

export interface HalfPeak {
  rate: number;
  inService: ReturnType<typeof latencyBetween>;
  /** The bare app's, timed inside it the same way and read from the same buckets. */
  bareInService: ReturnType<typeof latencyBetween>;
  /** What the generator saw (its CPU contention included), ours and bare at the same rate. */
  generatorP99Ms: { ours: number; bare: number };
  statusCounts: Record<string, number>;
}

/** The other build's reserve route, from the same rounds. */
export interface ComparedBuild {
  dist: string;
  reserve: LoadResult & { script: ScriptTime; cpu: Record<string, number[]> };
  /** Its requests/s over the bare app's, and ours over it. */
  rpsRatioToBare: number;
  oursOverIt: { rps: number; apiCpuUsecPerRequest: number };
  apiCpuUsecPerRequest: number;
  /** Its in-service p99 at the same paced rate as ours. */
  half?: { inService: ReturnType<typeof latencyBetween>; generatorP99Ms: number };
}

export interface HotPathResults {
  pinning: string;
  compared?: ComparedBuild;
  redis: RedisLevel[];
  http: HttpLevel[];
  half: HalfPeak;
  checks: Check[];
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** The FCALL (ours) or EVALSHA (minimal) time per call since the last CONFIG RESETSTAT. */
async function scriptTime(redis: Redis, command: 'fcall' | 'evalsha'): Promise<ScriptTime> {
  const s = (await commandStats(redis)).get(command) ?? { calls: 0, usec: 0 };
  return { calls: s.calls, usecPerCall: r1(s.usec / Math.max(1, s.calls)) };
}

/** `calls` sent over `connections` connections, 16 in flight per pipeline on each (redis-benchmark's -P 16). */
async function pipelined(url: string, calls: string[][], connections = 8, depth = 16): Promise<{ rps: number }> {
  const clients = Array.from({ length: connections }, () => new Redis(url, { lazyConnect: false }));
  await Promise.all(clients.map((c) => c.ping()));
  let next = 0;
  const started = performance.now();
  await Promise.all(
    clients.map(async (c) => {
      while (next < calls.length) {
        const p = c.pipeline();
        for (let i = 0; i < depth && next < calls.length; i++) {
          const [command, ...args] = calls[next++]!;
          p.call(command!, ...args);
        }
        const replies = await p.exec();
        const failed = replies?.find(([err]) => err);
        if (failed) throw failed[0];
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  clients.forEach((c) => c.disconnect());
  return { rps: Math.round(calls.length / seconds) };
}

/** The Redis-level comparisons (no HTTP). */
async function redisLevel(
  stack: RedisStack,
  shas: MinimalShas,
  o: HotPathOptions,
  log: (s: string) => void,
): Promise<RedisLevel[]> {
  const { redis, engine, keys, server } = stack;
  const port = server.port;
  await createBenchProduct(engine, 'b', 'c');
  await fillMinimalCounters(redis, ['c']);
  const fn = (name: string) => engine.library.functionName(name);
  const reserveRequest = {
    productId: 'b',
    customerId: 'c',
    reservationId: '__rand_int__',
    amount: 1,
    idempotencyKey: '__rand_int__',
    fingerprint: 'fp',
  };
  const oursReserve = [
    'FCALL',
    fn('reserve'),
    String(SCRIPTS.reserve.keys.length),
    ...keysFor(SCRIPTS.reserve, reserveRequest, keys),
    ...SCRIPTS.reserve.args(reserveRequest, SETTINGS).map(String),
  ];
  const minimalReserve = ['EVALSHA', shas.reserve, ...minimalArgs.reserve('__rand_int__', '__rand_int__', 'c', 1)];
  const out: RedisLevel[] = [];

  // reserve: redis-benchmark, interleaved rounds, script time from INFO commandstats.
  await redisBenchmark('warm-up', port, Math.ceil(o.redisRequests / 4), 16, oursReserve, API_CPU);
  await redisBenchmark('warm-up', port, Math.ceil(o.redisRequests / 4), 16, minimalReserve, API_CPU);
  const acc = {
    ours: { n: 0, s: 0, us: 0, calls: 0, command: '' },
    minimal: { n: 0, s: 0, us: 0, calls: 0, command: '' },
  };
  for (let r = 0; r < o.rounds; r++) {
    for (const [side, args] of [
      ['ours', oursReserve],
      ['minimal', minimalReserve],
    ] as const) {
      const run = await profiledRun(redis, () =>
        redisBenchmark(`${side} reserve`, port, o.redisRequests, 16, args, API_CPU),
      );
      const a = acc[side];
      a.n += run.requests;
      a.s += run.requests / run.rps;
      a.us += run.profile.evalshaUsecPerCall * run.requests;
      a.command = run.command;
    }
  }
  const reserve = (side: 'ours' | 'minimal') => ({
    rps: Math.round(acc[side].n / acc[side].s),
    script: { calls: acc[side].n, usecPerCall: r1(acc[side].us / acc[side].n) },
    command: acc[side].command,
  });
  const ours = reserve('ours');
  const minimal = reserve('minimal');
  out.push({
    op: 'reserve',
    tool: 'redis-benchmark -c 50 -P 16',
    ours,
    minimal,
    rpsRatio: r3(ours.rps / minimal.rps),
    usecRatio: r3(ours.script.usecPerCall / minimal.script.usecPerCall),
  });
  log(
    `reserve, redis-benchmark -P 16: ours ${ours.rps}/s ${ours.script.usecPerCall} µs/call, minimal ` +
      `${minimal.rps}/s ${minimal.script.usecPerCall} µs/call: time ${out.at(-1)!.usecRatio}×`,
  );

  // commit and release: holds made first (not measured), then each ended once, pipelined.
  for (const op of ['commit', 'release'] as const) {
    const sums = { ours: { n: 0, s: 0, us: 0 }, minimal: { n: 0, s: 0, us: 0 } };
    for (let r = 0; r < o.rounds; r++) {
      const n = Math.ceil(o.redisRequests / 2);
      const tag = `${op}${r}-${Date.now().toString(36)}`;
      const ids = Array.from({ length: n }, (_, i) => `${tag}-${i}`);
      await pipelined(
        server.url,
        ids.map((id) => [
          'FCALL',
          fn('reserve'),
          String(SCRIPTS.reserve.keys.length),
          ...keysFor(SCRIPTS.reserve, { ...reserveRequest, reservationId: id, idempotencyKey: id }, keys),
          ...SCRIPTS.reserve.args({ ...reserveRequest, reservationId: id, idempotencyKey: id }, SETTINGS).map(String),
        ]),
      );
      await pipelined(
        server.url,
        ids.map((id) => ['EVALSHA', shas.reserve, ...minimalArgs.reserve(id, id, 'c', 1)]),
      );
      const entry = SCRIPTS[op];
      const oursCalls = ids.map((id) => [
        'FCALL',
        fn(op),
        String(entry.keys.length),
        ...keysFor(entry, { productId: 'b', reservationId: id }, keys),
        ...entry.args({ productId: 'b', reservationId: id }, SETTINGS).map(String),
      ]);
      const minimalCalls = ids.map((id) => ['EVALSHA', shas[op], ...minimalArgs[op](id)]);
      for (const [side, calls, command] of [
        ['ours', oursCalls, 'fcall'],
        ['minimal', minimalCalls, 'evalsha'],
      ] as const) {
        await redis.config('RESETSTAT');
        const run = await pipelined(server.url, calls);
        const t = await scriptTime(redis, command);
        sums[side].n += n;
        sums[side].s += n / run.rps;
        sums[side].us += t.usecPerCall * n;
      }
    }
    const side = (s: 'ours' | 'minimal') => ({
      rps: Math.round(sums[s].n / sums[s].s),
      script: { calls: sums[s].n, usecPerCall: r1(sums[s].us / sums[s].n) },
    });
    const oo = side('ours');
    const mm = side('minimal');
    out.push({
      op,
      tool: 'Node driver, 8 connections, 16 pipelined each',
      ours: oo,
      minimal: mm,
      rpsRatio: r3(oo.rps / mm.rps),
      usecRatio: r3(oo.script.usecPerCall / mm.script.usecPerCall),
    });
    log(
      `${op}, pipelined -P 16: ours ${oo.rps}/s ${oo.script.usecPerCall} µs/call, minimal ` +
        `${mm.rps}/s ${mm.script.usecPerCall} µs/call: time ${out.at(-1)!.usecRatio}×`,
    );
  }
  return out;
}

/** What the answers did to the HTTP product, for the invariant checks. */
class Book {
  held = 0;
  committed = 0;
  lineHeld = new Map<string, number>();
  lineDrawn = new Map<string, number>();
  holds: { id: string; customerId: string; amount: number }[] = [];
  unexpected: string[] = [];
  add(map: Map<string, number>, c: string, d: number) {
    map.set(c, (map.get(c) ?? 0) + d);
  }
}

interface Sent {
  path: string;
  body: string;
  key?: string;
  onAnswer(status: number, body: string): void;
}

/**
 * Closed-loop requests from a generator; each connection remembers what it
 * sent, so an answer is matched to its request, and what the stop cut off
 * is sent again afterwards (same Idempotency-Key, or the same commit or
 * release, both answered from what was done).
 */
function trackedRequests(next: () => Sent | undefined) {
  const unanswered = new Set<Sent>();
  const requests: autocannon.Request[] = [
    {
      method: 'POST',
      setupRequest: (req, ctx: object) => {
        const context = ctx as { sent?: Sent };
        const s = next();
        context.sent = s;
        // Nothing left (a connection builds its next request before the run stops): a harmless read.
        if (!s) return { ...req, method: 'GET', path: '/healthz', body: undefined };
        unanswered.add(s);
        return {
          ...req,
          method: 'POST',
          path: s.path,
          body: s.body,
          headers: { ...jsonHeaders, ...(s.key ? { 'idempotency-key': s.key } : {}) },
        };
      },
      onResponse: (status: number, body: string, ctx: object) => {
        const s = (ctx as { sent?: Sent }).sent;
        if (!s || !unanswered.delete(s)) return;
        s.onAnswer(status, body);
      },
    },
  ];
  return {
    requests,
    async resend(baseUrl: string) {
      for (const s of unanswered) {
        const res = await fetch(baseUrl + s.path, {
          method: 'POST',
          headers: { ...jsonHeaders, ...(s.key ? { 'idempotency-key': s.key } : {}) },
          body: s.body,
        });
        s.onAnswer(res.status, await res.text());
      }
      const n = unanswered.size;
      unanswered.clear();
      return n;
    },
  };
}

const base = `/v1/products/${THROUGHPUT_PRODUCT}/reservations`;

/** Reserves on the HTTP product; our answers go to the book (the bare app's are only counted). */
function reserves(tag: string, seed: number, book?: Book) {
  const random = prng(seed);
  let i = 0;
  return () => {
    const customerId = `h${randomInt(random, 0, CUSTOMERS - 1)}`;
    const amount = randomInt(random, 1, 100);
    const key = `${tag}-${i++}`;
    return {
      path: base,
      key,
      body: JSON.stringify({ customerId, amount }),
      onAnswer(status: number, body: string) {
        if (!book) return;
        if (status !== 201) return void book.unexpected.push(`reserve ${key}: ${status} ${body.slice(0, 200)}`);
        book.held += amount;
        book.add(book.lineHeld, customerId, amount);
        book.holds.push({ id: (JSON.parse(body) as { reservationId: string }).reservationId, customerId, amount });
      },
    } satisfies Sent;
  };
}

/** Ends holds, one request each; our answers go to the book. */
function enders(op: 'commit' | 'release', holds: { id: string; customerId: string; amount: number }[], book?: Book) {
  let i = 0;
  return () => {
    const h = holds[i++];
    if (!h) return undefined;
    return {
      path: `${base}/${h.id}/${op}`,
      body: '{}',
      onAnswer(status: number, body: string) {
        if (!book) return;
        if (status !== 200) return void book.unexpected.push(`${op} ${h.id}: ${status} ${body.slice(0, 200)}`);
        book.held -= h.amount;
        book.add(book.lineHeld, h.customerId, -h.amount);
        if (op === 'commit') {
          book.committed += h.amount;
          book.add(book.lineDrawn, h.customerId, h.amount);
        }
      },
    } satisfies Sent;
  };
}

export async function runHotPath(
  stack: RedisStack,
  env: Record<string, string>,
  workDir: string,
  o: HotPathOptions,
  log: (s: string) => void,
  profileDir?: string,
): Promise<HotPathResults> {
  const { redis } = stack;
  const redisPid = stack.server.process.pid!;
  const pinning = canPin
    ? `taskset: the API process (or the bare app) on CPU ${API_CPU}; Redis and the load generator (this ` +
      `process) on CPU ${REDIS_CPU}; redis-benchmark and the Redis-level driver on CPU ${API_CPU}`
    : 'not pinned (taskset missing or a single CPU)';
  log(`pinning: ${pinning}`);
  const shas = await loadMinimalScripts(redis);
  await stack.engine.loadScripts();
  pin(redisPid, REDIS_CPU);
  pin(process.pid, API_CPU);
  let http: HttpLevel[] = [];
  let half: HalfPeak | undefined;
  let checks: Check[] = [];
  let redisRuns: RedisLevel[] = [];
  let compared: ComparedBuild | undefined;
  try {
    redisRuns = await redisLevel(stack, shas, o, log);

    pin(process.pid, REDIS_CPU);
    await createThroughputProduct(stack);
    await fillMinimalCounters(
      redis,
      Array.from({ length: CUSTOMERS }, (_, i) => `h${i}`),
    );
    const execArgv = [
      ...(o.apiNodeFlags ?? []),
      ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', 'hot-path-api.cpuprofile'] : []),
    ];
    const ours = await startApi(env, 1, workDir, 'hot-path-api', { execArgv });
    const barePort = await freePort();
    const bare = await startCluster({
      name: 'bare app',
      exec: join(distDir, 'bench', 'hotPath', 'minimalApp.js'),
      workers: 1,
      port: barePort,
      env: { REDIS_URL: stack.server.url, MINIMAL_SHAS: JSON.stringify(shas) },
      logFile: join(workDir, 'bare-app.log'),
    });
    const other = o.compareDist
      ? await startApi(env, 1, workDir, 'hot-path-api-compared', { exec: join(o.compareDist, 'src', 'main.js') })
      : undefined;
    for (const pid of [...ours.cluster.pids, ...bare.pids, ...(other?.cluster.pids ?? [])]) pin(pid, API_CPU);
    const bareUrl = `http://127.0.0.1:${barePort}`;
    const book = new Book();
    const targets = {
      ours: { url: ours.baseUrl, pid: ours.cluster.pids[0]!, command: 'fcall' as const, book },
      bare: { url: bareUrl, pid: bare.pids[0]!, command: 'evalsha' as const, book: undefined },
      other: { url: other?.baseUrl ?? '', pid: other?.cluster.pids[0] ?? 0, command: 'fcall' as const, book },
    };
    const reserveSides = other ? (['ours', 'bare', 'other'] as const) : (['ours', 'bare'] as const);
    const bareHolds: { id: string; customerId: string; amount: number }[] = [];

    /** One closed-loop run with commandstats around it. */
    const measured = async (
      side: 'ours' | 'bare' | 'other',
      title: string,
      next: () => Sent | undefined,
      opts: { duration?: number; amount?: number },
    ) => {
      const t = targets[side];
      const tracked = trackedRequests(next);
      await redis.config('RESETSTAT');
      const cpu = cpuMeter({ api: [t.pid], redis: [redisPid] });
      // (autocannon refuses more connections than requests)
      const connections = Math.max(1, Math.min(o.connections, opts.amount ?? o.connections));
      const run = await runAutocannon({ title, baseUrl: t.url, connections, ...opts, requests: tracked.requests });
      const usage = cpu.stop();
      const script = await scriptTime(redis, t.command);
      await tracked.resend(t.url);
      return Object.assign(run, { script, cpu: usage }); // the same object: keeps its latencies (raw)
    };

    // Warm-up: every app, JIT and connections (answers counted in the book like any other). By
    // requests, not seconds: on a busy machine a few seconds are a few hundred requests, and our
    // route then runs its first measured round still half-compiled (in bench:builds on a loaded
    // machine, CPU per answer fell 2.5-3x over each build's first few thousand reserves).
    for (const side of reserveSides) {
      const w = trackedRequests(reserves(`${side}-warm-${randomUUID()}`, o.seed, targets[side].book));
      await runAutocannon({
        title: `${side} warm-up`,
        baseUrl: targets[side].url,
        connections: o.connections,
        amount: o.warmupRequests,
        requests: w.requests,
      });
      await w.resend(targets[side].url);
    }

    const runs = new Map<string, (LoadResult & { script: ScriptTime; cpu: Record<string, number[]> })[]>();
    const push = (k: string, r: LoadResult & { script: ScriptTime; cpu: Record<string, number[]> }) =>
      runs.set(k, [...(runs.get(k) ?? []), r]);
    for (let r = 0; r < o.rounds; r++) {
      for (const side of reserveSides) {
        const before = book.holds.length;
        const run = await measured(
          side,
          `${side} reserve`,
          reserves(`${side}-r${r}-${randomUUID()}`, o.seed + r, targets[side].book),
          { duration: o.seconds },
        );
        push(`reserve:${side}`, run);
        log(
          `  ${side} reserve, round ${r + 1}: ${run.rps}/s, p99 ${run.latency.p99} ms, ` +
            `${run.script.usecPerCall} µs per ${targets[side].command}, API CPU ${run.cpu.api}`,
        );
        if (side === 'ours' && book.holds.length === before) throw new Error('our reserve route granted nothing');
      }
    }
    // The bare app's holds to end: made by the minimal script directly (its answers are not tracked).
    const need = Math.ceil(Math.max(...(runs.get('reserve:bare') ?? []).map((x) => x.rps)) * o.seconds * 1.2);
    const bareRandom = prng(o.seed + 99);
    // Besides the measured rounds' holds, a warm-up's worth per operation for each app: the warm-up above ran
    // reserves only, and a route's first measured round would otherwise pay its JIT compilation.
    const warmEnds = Math.min(5_000, o.warmupRequests);
    for (let i = 0; i < need * o.rounds * 2 + warmEnds * 2; i++)
      bareHolds.push({
        id: `bh-${i}-${randomUUID()}`,
        customerId: `h${randomInt(bareRandom, 0, CUSTOMERS - 1)}`,
        amount: 1,
      });
    await pipelined(
      stack.server.url,
      bareHolds.map((h) => ['EVALSHA', shas.reserve, ...minimalArgs.reserve(h.id, h.id, h.customerId, h.amount)]),
    );
    // Ours: the holds the reserve runs made (plus more through the engine if they are too few).
    const oursNeed =
      Math.ceil(Math.max(...(runs.get('reserve:ours') ?? []).map((x) => x.rps)) * o.seconds * 1.2) * o.rounds * 2 +
      warmEnds * 2;
    while (book.holds.length < oursNeed) {
      const more = trackedRequests(reserves(`ours-extra-${randomUUID()}`, o.seed + 7, book));
      const amount = Math.max(o.connections, Math.min(oursNeed - book.holds.length, 20_000));
      await runAutocannon({
        title: 'more holds',
        baseUrl: ours.baseUrl,
        connections: o.connections,
        amount,
        requests: more.requests,
      });
      await more.resend(ours.baseUrl);
    }
    const oursHolds = book.holds.splice(0);
    const warmHolds = { ours: oursHolds.splice(0, warmEnds * 2), bare: bareHolds.splice(0, warmEnds * 2) };
    for (const [i, op] of (['commit', 'release'] as const).entries()) {
      for (const side of ['ours', 'bare'] as const) {
        const list = warmHolds[side].slice(i * warmEnds, (i + 1) * warmEnds);
        const w = trackedRequests(enders(op, list, targets[side].book));
        await runAutocannon({
          title: `${side} ${op} warm-up`,
          baseUrl: targets[side].url,
          connections: o.connections,
          amount: list.length,
          requests: w.requests,
        });
        await w.resend(targets[side].url);
      }
    }
    const perRun = (list: typeof oursHolds, i: number, n: number) => list.slice(i * n, (i + 1) * n);
    let used = 0;
    for (const op of ['commit', 'release'] as const) {
      for (let r = 0; r < o.rounds; r++, used++) {
        for (const side of ['ours', 'bare'] as const) {
          const list =
            side === 'ours'
              ? perRun(oursHolds, used, Math.floor(oursHolds.length / (o.rounds * 2)))
              : perRun(bareHolds, used, need);
          const run = await measured(side, `${side} ${op}`, enders(op, list, targets[side].book), {
            amount: list.length,
            duration: o.seconds * 3,
          });
          push(`${op}:${side}`, run);
          log(
            `  ${side} ${op}, round ${r + 1}: ${run.rps}/s, p99 ${run.latency.p99} ms, ` +
              `${run.script.usecPerCall} µs per ${targets[side].command}`,
          );
        }
      }
    }
    const merge = (k: string) => {
      const list = runs.get(k)!;
      const seconds = list.reduce((s, x) => s + x.seconds, 0);
      const responses = list.reduce((s, x) => s + x.responses, 0);
      const calls = list.reduce((s, x) => s + x.script.calls, 0);
      const usec = list.reduce((s, x) => s + x.script.usecPerCall * x.script.calls, 0);
      const statusCounts: Record<string, number> = {};
      for (const x of list)
        for (const [c, v] of Object.entries(x.statusCounts)) statusCounts[c] = (statusCounts[c] ?? 0) + v;
      const raw = list.flatMap((x) => x.raw ?? []).sort((a, b) => a - b);
      const p99 = raw.length ? raw[Math.min(raw.length - 1, Math.ceil(0.99 * raw.length) - 1)]! : 0;
      const cpuApi = list.reduce((s, x) => s + (x.cpu.api?.[0] ?? 0) * x.seconds, 0) / seconds;
      const cpuRedis = list.reduce((s, x) => s + (x.cpu.redis?.[0] ?? 0) * x.seconds, 0) / seconds;
      return {
        ...list[0]!,
        seconds: r3(seconds),
        responses,
        rps: Math.round(responses / seconds),
        latency: { ...list[0]!.latency, p99: r3(p99), count: raw.length },
        statusCounts,
        series: [],
        script: { calls, usecPerCall: r1(usec / Math.max(1, calls)) },
        cpu: { api: [Math.round(cpuApi * 100) / 100], redis: [Math.round(cpuRedis * 100) / 100] },
      };
    };
    http = OPS.map((op) => {
      const oo = merge(`${op}:ours`);
      const bb = merge(`${op}:bare`);
      const cpuPer = (x: typeof oo) => r1(((x.cpu.api?.[0] ?? 0) * 1e6) / Math.max(1, x.rps));
      const apiCpuUsecPerRequest = { ours: cpuPer(oo), bare: cpuPer(bb) };
      return {
        op,
        ours: oo,
        bare: bb,
        rpsRatio: r3(oo.rps / bb.rps),
        p99Ratio: r3(oo.latency.p99 / bb.latency.p99),
        usecRatio: r3(oo.script.usecPerCall / bb.script.usecPerCall),
        apiCpuUsecPerRequest,
        cpuEfficiencyRatio: r3(apiCpuUsecPerRequest.bare / apiCpuUsecPerRequest.ours),
      };
    });

    // Half the measured peak, paced; the p99 from the service's own histogram.
    const rate = Math.max(1, Math.round(http[0]!.ours.rps / 2));
    log(
      `reserve at half the peak, ${rate}/s paced, ` +
        `${o.seconds * o.rounds} s; p99 from ` +
        `quota_http_request_duration_seconds`,
    );
    const selector = { route: '/v1/products/:productId/reservations', method: 'POST', statusClass: '2xx' };
    const pacedSent = (side: 'ours' | 'bare' | 'other') => {
      const next = reserves(`${side}-half-${randomUUID()}`, o.seed + 11, targets[side].book);
      const sent = new Map<number, Sent>();
      return {
        makeRequest: (i: number) => {
          const s = next();
          sent.set(i, s);
          return {
            method: 'POST' as const,
            path: s.path,
            headers: { ...jsonHeaders, 'idempotency-key': s.key },
            body: s.body,
          };
        },
        onResponse: (i: number, status: number, body: string) => sent.get(i)?.onAnswer(status, body),
      };
    };
    const pacedOf = (side: 'ours' | 'bare' | 'other') =>
      runPaced({
        title: `${side} reserve at ${rate}/s`,
        baseUrl: targets[side].url,
        rate,
        seconds: o.seconds * o.rounds,
        warmupSeconds: o.smoke ? 0.5 : 1,
        maxSockets: o.connections,
        ...pacedSent(side),
      });
    const before = await scrapeBuckets(ours.baseUrl, selector);
    const oursPaced = await pacedOf('ours');
    const after = await scrapeBuckets(ours.baseUrl, selector);
    await fetch(`${bareUrl}/in-service/start`, { method: 'POST' });
    const barePaced = await pacedOf('bare');
    const bareLatencies = (await (await fetch(`${bareUrl}/in-service`)).json()) as number[];
    let otherHalf: ComparedBuild['half'];
    if (other) {
      const b = await scrapeBuckets(other.baseUrl, selector);
      const run = await pacedOf('other');
      otherHalf = {
        inService: latencyBetween(b, await scrapeBuckets(other.baseUrl, selector)),
        generatorP99Ms: run.latency.p99,
      };
      log(
        `  the compared build at the same rate: in-service p99 ` +
          `${otherHalf.inService.p99Ms} ms, generator p99 ${run.latency.p99} ms`,
      );
    }
    half = {
      rate,
      inService: latencyBetween(before, after),
      bareInService: latencyBetween(new Map(), bucketsOf(bareLatencies)),
      generatorP99Ms: { ours: oursPaced.latency.p99, bare: barePaced.latency.p99 },
      statusCounts: oursPaced.statusCounts,
    };
    log(
      `  in-service p99 ${half.inService.p99Ms} ms (bucket ` +
        `${half.inService.p99BucketMs.join('-')} ms) over ${half.inService.count} ` +
        `reserves; bare app in-app p99 ${half.bareInService.p99Ms} ms; ` +
        `generator p99 ours ${oursPaced.latency.p99} ms, bare ` +
        `${barePaced.latency.p99} ms`,
    );

    await Promise.all([ours.cluster.stop(), bare.stop(), other?.cluster.stop()]);
    if (other) {
      const it = merge('reserve:other');
      const cpuPer = ((it.cpu.api?.[0] ?? 0) * 1e6) / Math.max(1, it.rps);
      compared = {
        dist: o.compareDist!,
        reserve: it,
        rpsRatioToBare: r3(it.rps / http[0]!.bare.rps),
        apiCpuUsecPerRequest: r1(cpuPer),
        oursOverIt: {
          rps: r3(http[0]!.ours.rps / it.rps),
          apiCpuUsecPerRequest: r3(http[0]!.apiCpuUsecPerRequest.ours / cpuPer),
        },
        half: otherHalf,
      };
    }

    const result = await checkProducts({
      redis,
      keys: stack.keys,
      productIds: [THROUGHPUT_PRODUCT],
      expected: new Map([
        [
          THROUGHPUT_PRODUCT,
          { held: book.held, committed: book.committed, lineHeld: book.lineHeld, lineDrawn: book.lineDrawn },
        ],
      ]),
      sampledOvers: [],
      samples: 0,
      unexpectedAnswers: book.unexpected,
    });
    checks = result.checks;
  } finally {
    pin(process.pid, allCpus());
    pin(redisPid, allCpus());
  }
  return { pinning, compared, redis: redisRuns, http, half: half!, checks };
}
