/**
 * The Redis ceiling for one product: `redis-benchmark` FCALL of our reserve
 * function (as the service calls it) and EVALSHA of the minimal reserve (bench/lua/minimal-reserve-4.lua) against
 * the run's own redis-server, with -P 16 (and -P 1), unique reservation and
 * idempotency keys per call (__rand_int__ with -r 1e9).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { QuotaEngine } from '../../src/engine/quotaEngine.js';
import type { Keys } from '../../src/redis/keys.js';
import { keysFor, SCRIPTS } from '../../src/engine/scriptCatalogue.js';
import { benchLuaDir } from '../lib/paths.js';
import { pinned } from '../hotPath/pinning.js';

export interface RedisBenchmarkRun {
  label: string;
  pipeline: number;
  clients: number;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** The exact command line (for the report). */
  command: string;
}

export function redisBenchmark(
  label: string,
  port: number,
  requests: number,
  pipeline: number,
  command: string[],
  cpus?: string,
): Promise<RedisBenchmarkRun> {
  const clients = 50;
  const args = [
    '-p',
    String(port),
    '-n',
    String(requests),
    '-c',
    String(clients),
    '-P',
    String(pipeline),
    '-r',
    '1000000000',
    '--csv',
    ...command,
  ];
  const shellWord = (a: string) => (a === '' || /[^A-Za-z0-9_./:=-]/.test(a) ? `'${a}'` : a);
  const shown = `redis-benchmark ${args.map(shellWord).join(' ')}`;
  return new Promise((resolve, reject) => {
    const [program, programArgs] = cpus ? pinned(cpus, 'redis-benchmark', args) : ['redis-benchmark', args];
    const child = spawn(program, programArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'ENOENT'
          ? new Error(
              'redis-benchmark not found: it comes with redis-server (Debian/Ubuntu: ' +
                'apt-get install -y redis-server; macOS: brew install redis)',
            )
          : e,
      ),
    );
    child.once('exit', (code) => {
      // CSV: a header line, then "<test>","rps","avg","min","p50","p95","p99","max"; the test name is the command.
      const rows = out
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('"') && !l.startsWith('"test"'));
      const fields = rows
        .at(-1)
        ?.match(/"([^"]*)"/g)
        ?.map((f) => f.slice(1, -1));
      const tail = fields?.slice(-7).map(Number);
      if (code !== 0 || !tail || tail.some((n) => Number.isNaN(n))) {
        return reject(new Error(`${shown}: exit ${code}; stdout: ${out.slice(-500)}; stderr: ${err.slice(-500)}`));
      }
      const [rps, , , p50, , p99] = tail as [number, number, number, number, number, number, number];
      resolve({ label, pipeline, clients, requests, rps: Math.round(rps), p50Ms: p50, p99Ms: p99, command: shown });
    });
  });
}

/**
 * Where one EVALSHA's time goes inside Redis, from INFO commandstats (which
 * counts the commands a script calls too): each command's calls and µs per
 * EVALSHA; the rest of the EVALSHA's own time is the Lua interpreter (and
 * cjson). Time outside commands (network, parsing, the AOF write and fsync)
 * is the gap up to the wall time per call at the measured rate.
 */
export interface ScriptProfile {
  /** EVALSHA calls per socket read: how well the calls arrive batched. */
  evalshaPerRead: number;
  evalshaUsecPerCall: number;
  commandsUsecPerCall: number;
  luaUsecPerCall: number;
  /** 1e6 / rate: per EVALSHA, what one Redis thread spent on everything. */
  wallUsecPerCall: number;
  perCommand: { command: string; callsPerReserve: number; usecPerReserve: number }[];
}

export async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usec: number }>> {
  const info = await redis.info('commandstats');
  const out = new Map<string, { calls: number; usec: number }>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm))
    out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  return out;
}

/** Resets Redis's statistics, runs `run`, and says where its EVALSHAs' time went. */
export async function profiledRun<T extends { rps: number }>(
  redis: Redis,
  run: () => Promise<T>,
): Promise<T & { profile: ScriptProfile }> {
  await redis.config('RESETSTAT');
  const result = await run();
  const stats = await commandStats(redis);
  const reads = Number(/total_reads_processed:(\d+)/.exec(await redis.info('stats'))?.[1] ?? 0);
  // Our reserve runs as FCALL, the minimal one as EVALSHA; a run has one or the other.
  const evalsha = stats.get('fcall') ?? stats.get('evalsha') ?? { calls: 1, usec: 0 };
  const r1 = (x: number) => Math.round(x * 10) / 10;
  const perCommand = [...stats]
    .filter(([name]) => !['fcall', 'evalsha', 'config', 'info', 'ping', 'function|load'].includes(name))
    .map(([command, s]) => ({
      command,
      callsPerReserve: r1(s.calls / evalsha.calls),
      usecPerReserve: r1(s.usec / evalsha.calls),
    }))
    .sort((a, b) => b.usecPerReserve - a.usecPerReserve);
  const commandsUsec = perCommand.reduce((sum, c) => sum + c.usecPerReserve, 0);
  const evalshaUsec = evalsha.usec / evalsha.calls;
  return {
    ...result,
    profile: {
      evalshaPerRead: r1(evalsha.calls / Math.max(reads, 1)),
      evalshaUsecPerCall: r1(evalshaUsec),
      commandsUsecPerCall: r1(commandsUsec),
      luaUsecPerCall: r1(evalshaUsec - commandsUsec),
      wallUsecPerCall: r1(1e6 / result.rps),
      perCommand,
    },
  };
}

export interface RedisBaselines {
  ours: RedisBenchmarkRun & { profile: ScriptProfile };
  minimal: RedisBenchmarkRun & { profile: ScriptProfile };
  /** The same two at appendfsync everysec: how much of the gap is the AOF (not a target; production runs always). */
  everysec: { ours: RedisBenchmarkRun; minimal: RedisBenchmarkRun; ratio: number };
  oursP1: RedisBenchmarkRun;
  minimalP1: RedisBenchmarkRun;
  /** ours / minimal at -P 16. */
  ratio: number;
  /** Our script's command line, to run it again later (bracketing the engine's runs). */
  oursArgs: string[];
  /** Our script once more, after the engine's runs: the engine is compared with the mean of the two. */
  oursAgain?: RedisBenchmarkRun;
  ourSha: string;
  minimalSha: string;
  /** The same reserve as EVALSHA of a standalone script and as FCALL of the library function. */
  stages: ScriptStage[];
}

export interface ScriptStage {
  step: string;
  /** EVALSHA µs per call of the script cut short after this step (cumulative). */
  usecUpTo: number;
  /** This step's share: the difference from the previous cut. */
  usec: number;
}

/**
 * The same reserve, called both ways (issue 8: scripts as Functions): EVALSHA
 * of the standalone script (its includes' functions and tables are created
 * on every call) and FCALL of the library function (created once per library
 * load). Interleaved rounds, µs per call from INFO commandstats.
 */
async function evalshaVsFcall(
  redis: Redis,
  port: number,
  requests: number,
  ours: string[],
  source: string,
): Promise<ScriptStage[]> {
  const sha = (await redis.script('LOAD', source)) as string;
  const variants = [
    {
      step: 'EVALSHA of the standalone reserve script (includes set up on every call)',
      args: ['EVALSHA', sha, ...ours.slice(2)],
    },
    { step: 'FCALL of the library function (includes set up once per library load)', args: ours },
  ];
  for (const v of variants) await redisBenchmark('warm-up', port, Math.ceil(requests / 8), 16, v.args);
  const rounds = 3;
  const usec = variants.map(() => 0);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < variants.length; i++) {
      const run = await profiledRun(redis, () =>
        redisBenchmark(variants[i]!.step, port, Math.ceil(requests / rounds), 16, variants[i]!.args),
      );
      usec[i]! += run.profile.evalshaUsecPerCall / rounds;
    }
  }
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return variants.map((v, i) => ({
    step: v.step,
    usecUpTo: r1(usec[i]!),
    usec: r1(usec[i]! - (i > 0 ? usec[0]! : 0)),
  }));
}

/** Product `b` (huge capacity, long holds) and its line `c` (huge limit), as the engine creates them. */
export async function createBenchProduct(engine: QuotaEngine, productId: string, customerId: string): Promise<void> {
  const created = await engine.upsertProduct(
    productId,
    { capacity: 1e15, holdTtlSeconds: 86_400, minAmount: 1, maxAmount: null },
    'put',
  );
  if (!created.ok) throw new Error(`could not create product ${productId}: ${created.code}`);
  const line = await engine.upsertLines(productId, [
    { customerId, limit: 1e15, status: 'active', statusReason: null, tier: null },
  ]);
  if (!line.ok) throw new Error(`could not create line ${productId}/${customerId}: ${line.code}`);
}

/** Runs of one command as one: the rate over all requests and the time they took; latencies averaged. */
function mergeBenchmarkRuns(runs: RedisBenchmarkRun[]): RedisBenchmarkRun {
  const requests = runs.reduce((s, r) => s + r.requests, 0);
  const seconds = runs.reduce((s, r) => s + r.requests / r.rps, 0);
  const mean = (f: (r: RedisBenchmarkRun) => number) =>
    Math.round((runs.reduce((s, r) => s + f(r), 0) / runs.length) * 1000) / 1000;
  return {
    ...runs[0]!,
    requests,
    rps: Math.round(requests / seconds),
    p50Ms: mean((r) => r.p50Ms),
    p99Ms: mean((r) => r.p99Ms),
  };
}

/** redis-benchmark's rate for our script that the engine is compared with: the mean of the runs before and after it. */
export const oursReference = (rb: RedisBaselines) =>
  rb.oursAgain ? Math.round((rb.ours.rps + rb.oursAgain.rps) / 2) : rb.ours.rps;

export async function runRedisBaselines(
  redis: Redis,
  engine: QuotaEngine,
  keys: Keys,
  port: number,
  requests: number,
): Promise<RedisBaselines> {
  await engine.loadScripts();
  await createBenchProduct(engine, 'b', 'c');
  const ourSha = engine.library.functionName('reserve');
  // KEYS and ARGV from the script catalogue (lua/reserve-7.lua's header), with a fresh reservation and key per call.
  const request = {
    productId: 'b',
    customerId: 'c',
    reservationId: '__rand_int__',
    amount: 1,
    idempotencyKey: '__rand_int__',
    fingerprint: 'fp',
  };
  const settings = { reclaimLimit: 100, idempotencyTtlSeconds: 86_400, idempotencyRefusalTtlSeconds: 3_600 };
  const scriptKeys = keysFor(SCRIPTS.reserve, request, keys);
  const ours = [
    'FCALL',
    ourSha,
    String(scriptKeys.length),
    ...scriptKeys,
    ...SCRIPTS.reserve.args(request, settings).map(String),
  ];

  const minimalSource = readFileSync(join(benchLuaDir, 'minimal-reserve-4.lua'), 'utf8');
  const minimalSha = (await redis.script('LOAD', minimalSource)) as string;
  await redis.set('qa:{m}:pool', String(1e15));
  await redis.set('qa:{m}:line:c', String(1e15));
  const minimal = [
    'EVALSHA',
    minimalSha,
    '4',
    'qa:{m}:pool',
    'qa:{m}:line:c',
    'qa:{m}:hold:__rand_int__',
    'qa:{m}:idem:__rand_int__',
    '1',
    '86400',
    'c',
  ];

  // Warm-up (not measured): both scripts compiled, connections and allocator warm.
  await redisBenchmark('warm-up', port, Math.ceil(requests / 10), 16, ours);
  await redisBenchmark('warm-up', port, Math.ceil(requests / 10), 16, minimal);
  // Interleaved rounds, so a burst of noise from elsewhere on the machine hits both alike.
  const rounds = 2;
  const oursRuns: RedisBenchmarkRun[] = [];
  const minimalRuns: RedisBenchmarkRun[] = [];
  let oursProfile: ScriptProfile | undefined;
  let minimalProfile: ScriptProfile | undefined;
  for (let r = 0; r < rounds; r++) {
    const each = Math.ceil(requests / rounds);
    if (r === 0) {
      const o = await profiledRun(redis, () => redisBenchmark('our reserve script', port, each, 16, ours));
      oursProfile = o.profile;
      oursRuns.push(o);
      const m = await profiledRun(redis, () => redisBenchmark('minimal reserve script', port, each, 16, minimal));
      minimalProfile = m.profile;
      minimalRuns.push(m);
    } else {
      oursRuns.push(await redisBenchmark('our reserve script', port, each, 16, ours));
      minimalRuns.push(await redisBenchmark('minimal reserve script', port, each, 16, minimal));
    }
  }
  const oursRun = { ...mergeBenchmarkRuns(oursRuns), profile: oursProfile! };
  const minimalRun = { ...mergeBenchmarkRuns(minimalRuns), profile: minimalProfile! };
  const oursP1 = await redisBenchmark('our reserve script', port, Math.ceil(requests / 4), 1, ours);
  const minimalP1 = await redisBenchmark('minimal reserve script', port, Math.ceil(requests / 4), 1, minimal);
  const fsync = ((await redis.config('GET', 'appendfsync')) as string[])[1]!;
  await redis.config('SET', 'appendfsync', 'everysec');
  let everysec: RedisBaselines['everysec'];
  try {
    const o = await redisBenchmark('our reserve script, appendfsync everysec', port, Math.ceil(requests / 2), 16, ours);
    const m = await redisBenchmark(
      'minimal reserve script, appendfsync everysec',
      port,
      Math.ceil(requests / 2),
      16,
      minimal,
    );
    everysec = { ours: o, minimal: m, ratio: Math.round((o.rps / m.rps) * 1000) / 1000 };
  } finally {
    await redis.config('SET', 'appendfsync', fsync);
  }
  const stages = await evalshaVsFcall(
    redis,
    port,
    Math.ceil(requests / 4),
    ours,
    engine.scripts.get('reserve')!.source,
  );
  return {
    ours: oursRun,
    minimal: minimalRun,
    oursP1,
    minimalP1,
    everysec,
    ratio: Math.round((oursRun.rps / minimalRun.rps) * 1000) / 1000,
    ourSha,
    minimalSha,
    oursArgs: ours,
    stages,
  };
}
