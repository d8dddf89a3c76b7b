/**
 * What sets the reserve's p99 at a paced rate (issue 11's "p99 at half the
 * peak < 5 ms"): our API and the bare express app (bench/hotPath/minimalApp.ts),
 * each timed inside itself, in alternating rounds at the same rate, under
 * named variants of the set-up, so a cause shows as a ratio in one run.
 *
 *   npx tsc -p tsconfig.bench.json && node dist/bench/half-peak.js
 *        [--rate 2200] [--seconds 6] [--rounds 2] [--variants default,everysec,semi2]
 *
 * Variants: `default` (AOF appendfsync always, as production; Node's GC
 * defaults), `everysec` (appendfsync everysec), `semi<N>` (both apps with
 * --max-semi-space-size=N), `trace` (both apps with --trace-gc; the scavenge
 * pauses are summarised from their logs). Pinning as the hot-path bench: the
 * apps on CPU 0, Redis and this generator on CPU 1; the generator runs at
 * nice 19 during the rounds, so Redis (on its core) is not kept waiting by it.
 * After the rounds, the invariants of the product our API drew on.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createThroughputProduct, THROUGHPUT_PRODUCT } from './baselines/httpRoutes.js';
import { installSignalHandlers, runCleanup } from './lib/cleanup.js';
import { jsonHeaders } from './lib/grants.js';
import { runPaced } from './lib/httpLoad.js';
import { checkProducts } from './lib/invariants.js';
import { distDir } from './lib/paths.js';
import { startCluster } from './lib/processes.js';
import { serviceEnv, startApi, startLedger, startRedis } from './lib/stack.js';
import { allCpus, pin } from './hotPath/pinning.js';
import { fillMinimalCounters, loadMinimalScripts } from './hotPath/minimalScripts.js';
import { bucketsOf, latencyBetween, scrapeBuckets, type InServiceLatency } from './hotPath/serviceHistogram.js';
import { freePort } from '../src/redis/redisServer.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
};
const RATE = Number(arg('rate', '2200'));
const SECONDS = Number(arg('seconds', '6'));
const ROUNDS = Number(arg('rounds', '2'));
const VARIANTS = arg('variants', 'default,everysec').split(',');
const CUSTOMERS = 1_000;

interface Variant {
  appendfsync: 'always' | 'everysec';
  nodeFlags: string[];
}

function variantOf(name: string): Variant {
  if (name === 'default') return { appendfsync: 'always', nodeFlags: [] };
  if (name === 'everysec') return { appendfsync: 'everysec', nodeFlags: [] };
  if (name === 'trace') return { appendfsync: 'always', nodeFlags: ['--trace-gc'] };
  const semi = /^semi(\d+)$/.exec(name);
  if (semi) return { appendfsync: 'always', nodeFlags: [`--max-semi-space-size=${semi[1]}`] };
  throw new Error(`unknown variant ${name} (default, everysec, trace, semi<N>)`);
}

/** Scavenge pauses (ms) from a --trace-gc log: count, median, p90, max. */
function scavenges(logFile: string): string {
  const ms = [...readFileSync(logFile, 'utf8').matchAll(/Scavenge [^\n]*?MB, ([\d.]+) \//g)]
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
  if (ms.length === 0) return 'no scavenge logged';
  const p90 = ms[Math.floor(ms.length * 0.9)];
  return `${ms.length} scavenges, median ${ms[ms.length >> 1]} ms, p90 ${p90} ms, max ${ms.at(-1)} ms`;
}

async function main(): Promise<void> {
  installSignalHandlers();
  const workDir = mkdtempSync(join(tmpdir(), 'qa-half-peak-'));
  const stack = await startRedis();
  const ledger = await startLedger(workDir, 0, 0, 1);
  const env = serviceEnv(stack.server.url, ledger, workDir, 'info');
  await createThroughputProduct(stack);
  const shas = await loadMinimalScripts(stack.redis);
  await fillMinimalCounters(
    stack.redis,
    Array.from({ length: CUSTOMERS }, (_, i) => `h${i}`),
  );
  pin(stack.server.process.pid!, '1');
  pin(process.pid, '1');
  const selector = { route: '/v1/products/:productId/reservations', method: 'POST', statusClass: '2xx' };
  const book = { held: 0, lineHeld: new Map<string, number>(), unexpected: [] as string[] };
  let n = 0;
  /** Reserves of 1 on a round-robin customer; our answers go to the book. */
  const reserves = (ours: boolean) => ({
    makeRequest: () => {
      const i = n++;
      const customerId = `h${i % CUSTOMERS}`;
      return {
        method: 'POST' as const,
        path: `/v1/products/${THROUGHPUT_PRODUCT}/reservations`,
        headers: { ...jsonHeaders, 'idempotency-key': `hp-${i}` },
        body: JSON.stringify({ customerId, amount: 1 }),
      };
    },
    onResponse: (_i: number, status: number, body: string) => {
      if (!ours) return;
      if (status !== 201) return void book.unexpected.push(`${status} ${body.slice(0, 200)}`);
      const { customerId } = JSON.parse(body) as { customerId: string };
      book.held += 1;
      book.lineHeld.set(customerId, (book.lineHeld.get(customerId) ?? 0) + 1);
    },
  });
  const paced = (baseUrl: string, seconds: number, ours: boolean) =>
    runPaced({ title: baseUrl, baseUrl, rate: RATE, seconds, warmupSeconds: 0.5, maxSockets: 100, ...reserves(ours) });

  console.log(`rate ${RATE}/s, ${ROUNDS} round(s) of ${SECONDS} s per app and variant; in-app p50 / p99 (ms)`);
  for (const name of VARIANTS) {
    const v = variantOf(name);
    await stack.redis.config('SET', 'appendfsync', v.appendfsync);
    const api = await startApi(env, 1, workDir, `half-peak-api-${name}`, { execArgv: v.nodeFlags });
    const port = await freePort();
    const bareLog = join(workDir, `half-peak-bare-${name}.log`);
    const bare = await startCluster({
      name: 'bare app',
      exec: join(distDir, 'bench', 'hotPath', 'minimalApp.js'),
      workers: 1,
      port,
      env: { REDIS_URL: stack.server.url, MINIMAL_SHAS: JSON.stringify(shas) },
      execArgv: v.nodeFlags,
      logFile: bareLog,
    });
    const bareUrl = `http://127.0.0.1:${port}`;
    for (const pid of [...api.cluster.pids, ...bare.pids]) pin(pid, '0');
    try {
      await paced(api.baseUrl, 3, true); // warm-up (JIT, connections)
      await paced(bareUrl, 3, false);
      for (let r = 0; r < ROUNDS; r++) {
        os.setPriority(19);
        let ours: InServiceLatency;
        let theirs: InServiceLatency;
        try {
          const before = await scrapeBuckets(api.baseUrl, selector);
          await paced(api.baseUrl, SECONDS, true);
          ours = latencyBetween(before, await scrapeBuckets(api.baseUrl, selector));
          await fetch(`${bareUrl}/in-service/start`, { method: 'POST' });
          await paced(bareUrl, SECONDS, false);
          const latencies = (await (await fetch(`${bareUrl}/in-service`)).json()) as number[];
          theirs = latencyBetween(new Map(), bucketsOf(latencies));
        } finally {
          os.setPriority(0);
        }
        console.log(
          `${name.padEnd(9)} round ${r + 1}: ours ${ours.p50Ms} / ${ours.p99Ms}, bare ${theirs.p50Ms} / ` +
            `${theirs.p99Ms}; p99 ours/bare ${(ours.p99Ms / theirs.p99Ms).toFixed(2)}×`,
        );
      }
    } finally {
      await Promise.all([api.cluster.stop(), bare.stop()]);
    }
    if (name === 'trace')
      console.log(`  GC, ours: ${scavenges(join(workDir, `half-peak-api-${name}.log`))}; bare: ${scavenges(bareLog)}`);
  }
  pin(process.pid, allCpus());

  const { checks } = await checkProducts({
    redis: stack.redis,
    keys: stack.keys,
    productIds: [THROUGHPUT_PRODUCT],
    expected: new Map([[THROUGHPUT_PRODUCT, { held: book.held, lineHeld: book.lineHeld }]]),
    sampledOvers: [],
    samples: 0,
    unexpectedAnswers: book.unexpected,
  });
  for (const c of checks) console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
  if (checks.some((c) => !c.ok)) process.exitCode = 1;
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => runCleanup());
