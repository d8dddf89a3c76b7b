// The reserve as EVALSHA of the standalone script vs FCALL of the Functions
// library, on a private redis-server (never the machine's 6379), with
// redis-benchmark: fresh reservation id and idempotency key per call
// (__rand_int__), -P 16, 50 clients, ROUNDS interleaved rounds. Prints rps and the µs per call Redis
// spent (INFO commandstats). Optionally also an older reserve script given as
// OLD_RESERVE=<file of a standalone EVAL script> with OLD_KEYS / OLD_ARGS (JSON arrays).
// Usage: npx tsc -p tsconfig.bench.json && node bench/evalsha-vs-fcall.mjs [requests]
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { createQuotaEngine } from '../dist/src/engine/quotaEngine.js';
import { keysFor, SCRIPTS } from '../dist/src/engine/scriptCatalogue.js';
import { createKeys } from '../dist/src/redis/keys.js';
import { startRedisServer } from '../dist/src/redis/redisServer.js';

const REQUESTS = Number(process.argv[2] ?? 200_000);
const AOF = process.env.AOF === '1';
const server = await startRedisServer({ appendOnly: AOF });
const redis = new Redis(server.url);
try {
  const keys = createKeys('qa');
  const engine = createQuotaEngine({ redis, keys });
  await engine.loadScripts();
  await engine.upsertProduct('b', { capacity: 1e15, holdTtlSeconds: 86_400, minAmount: 1, maxAmount: null }, 'put');
  await engine.upsertLines('b', [{ customerId: 'c', limit: 1e15, status: 'active', statusReason: null, tier: null }]);
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
  const tail = [String(scriptKeys.length), ...scriptKeys, ...SCRIPTS.reserve.args(request, settings).map(String)];
  const sha = await redis.script('LOAD', engine.scripts.get('reserve').source);
  const variants = [
    { name: 'EVALSHA reserve (standalone script, new layout)', command: 'evalsha', args: ['EVALSHA', sha, ...tail] },
    {
      name: 'FCALL reserve (Functions library)',
      command: 'fcall',
      args: ['FCALL', engine.library.functionName('reserve'), ...tail],
    },
  ];
  if (process.env.OLD_RESERVE) {
    const { readFileSync } = await import('node:fs');
    const oldSha = await redis.script('LOAD', readFileSync(process.env.OLD_RESERVE, 'utf8'));
    for (const [k, v] of JSON.parse(process.env.OLD_SETUP ?? '[]')) await redis.hset(k, v);
    const oldKeys = JSON.parse(process.env.OLD_KEYS);
    variants.unshift({
      name: 'EVALSHA reserve (the old script and layout)',
      command: 'evalsha',
      args: ['EVALSHA', oldSha, String(oldKeys.length), ...oldKeys, ...JSON.parse(process.env.OLD_ARGS)],
    });
  }
  const bench = (args, n) => {
    const r = spawnSync(
      'redis-benchmark',
      ['-p', String(server.port), '-n', String(n), '-c', '50', '-P', '16', '-r', '1000000000', '--csv', ...args],
      { encoding: 'utf8' },
    );
    const row = r.stdout
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('"') && !l.startsWith('"test"'))
      .at(-1);
    return Number(
      row
        .match(/"([^"]*)"/g)
        .map((f) => f.slice(1, -1))
        .at(-7),
    );
  };
  // CPU time of Redis's main thread (INFO cpu): unlike commandstats' wall µs it does not count time
  // the thread waited for a core, so it holds on a busy, shared machine.
  const cpuSeconds = async () => {
    const info = await redis.info('cpu');
    const f = (name) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)[1]);
    return f('used_cpu_sys_main_thread') + f('used_cpu_user_main_thread');
  };
  const usecPerCall = async (command) => {
    const m = new RegExp(`^cmdstat_${command}:calls=(\\d+),usec=(\\d+)`, 'm').exec(await redis.info('commandstats'));
    return Number(m[2]) / Number(m[1]);
  };
  for (const v of variants) bench(v.args, Math.ceil(REQUESTS / 10)); // warm-up
  const results = variants.map(() => ({ rps: [], usec: [], cpu: [] }));
  const ROUNDS = Number(process.env.ROUNDS ?? 7);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, v] of variants.entries()) {
      await redis.config('RESETSTAT');
      const cpuBefore = await cpuSeconds();
      const n = Math.ceil(REQUESTS / ROUNDS);
      results[i].rps.push(bench(v.args, n));
      results[i].cpu.push((((await cpuSeconds()) - cpuBefore) * 1e6) / n);
      results[i].usec.push(await usecPerCall(v.command));
    }
  }
  // The machine is shared: the median and the minimum of interleaved rounds are the honest summaries.
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const min = (xs) => Math.min(...xs);
  console.log(
    `redis ${(await redis.info('server')).match(/redis_version:(\S+)/)[1]}, appendonly ` +
      `${AOF ? 'yes (fsync always)' : 'no'}, ${REQUESTS} calls per variant in ${ROUNDS} interleaved rounds`,
  );
  console.log(`redis-benchmark -p <port> -n ${Math.ceil(REQUESTS / ROUNDS)} -c 50 -P 16 -r 1000000000 --csv <command>`);
  for (const [i, v] of variants.entries()) {
    const u = results[i].usec;
    console.log(
      `${v.name}: median ${Math.round(median(results[i].rps))} calls/s ` +
        `(best ${Math.round(Math.max(...results[i].rps))}); ` +
        (`Redis main-thread CPU µs per call: median ` +
          `${median(results[i].cpu).toFixed(1)}, min ` +
          `${min(results[i].cpu).toFixed(1)}; `) +
        (`commandstats wall µs per call: median ${median(u).toFixed(1)}, min ` +
          `${min(u).toFixed(1)} (rounds: ${u.map((x) => x.toFixed(1)).join(', ')})`),
    );
  }
  console.log(
    `command: ${variants
      .at(-1)
      .args.map((a) => (a === '' ? "''" : a))
      .join(' ')}`,
  );
} finally {
  redis.disconnect();
  await server.stop();
}
