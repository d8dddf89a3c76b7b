/**
 * `npm run bench:profile -- [reserve|commit|release] [seconds]`: a CPU
 * profile (node --cpu-prof) of one API process (pinned to CPU 0, Redis and
 * autocannon on CPU 1) under 100 connections of one operation, and its top
 * self-time functions and areas. The .cpuprofile file (bench/results/profiles/)
 * opens as a flame graph in Chrome DevTools or speedscope. What led to each
 * change of issue 11 is summarised in bench/profiles/README.md.
 */
import type autocannon from 'autocannon';
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createThroughputProduct, reserveRequests, THROUGHPUT_PRODUCT } from './baselines/httpRoutes.js';
import { installSignalHandlers, runCleanup } from './lib/cleanup.js';
import { summarizeCpuProfile } from './lib/cpuProfile.js';
import { jsonHeaders } from './lib/grants.js';
import { runAutocannon } from './lib/httpLoad.js';
import { resultsDir } from './lib/paths.js';
import { cpuMeter } from './lib/processes.js';
import { serviceEnv, startApi, startLedger, startRedis } from './lib/stack.js';
import { allCpus, canPin, pin } from './hotPath/pinning.js';

async function main(): Promise<void> {
  installSignalHandlers();
  const op = (process.argv[2] ?? 'reserve') as 'reserve' | 'commit' | 'release';
  const seconds = Number(process.argv[3] ?? 10);
  const workDir = mkdtempSync(join(tmpdir(), 'qa-profile-'));
  const dir = join(resultsDir, 'profiles', `api-${op}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  const stack = await startRedis();
  pin(stack.server.process.pid!, '1');
  pin(process.pid, '1');
  const ledger = await startLedger(workDir, 0, 0, 1);
  const env = serviceEnv(stack.server.url, ledger, workDir, process.env.BENCH_LOG_LEVEL ?? 'info');
  await createThroughputProduct(stack);
  const api = await startApi(env, 1, workDir, 'profiled', {
    execArgv: ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', 'api.cpuprofile'],
  });
  pin(api.cluster.pids[0]!, '0');

  let holds: string[] = [];
  if (op !== 'reserve') {
    for (let i = 0; holds.length < seconds * 4_000; i++) {
      const r = await stack.engine.reserve({
        productId: THROUGHPUT_PRODUCT,
        customerId: `h${i % 1000}`,
        reservationId: `pf-${i}`,
        amount: 1,
        idempotencyKey: `pf-${i}`,
        fingerprint: 'fp',
      });
      if (r.ok) holds.push(r.value.reservationId);
    }
  }
  const requests: autocannon.Request[] =
    op === 'reserve'
      ? reserveRequests('profile', 1)
      : [
          {
            method: 'POST',
            setupRequest: (req) => ({
              ...req,
              method: 'POST',
              path: `/v1/products/${THROUGHPUT_PRODUCT}/reservations/${holds.pop() ?? 'none'}/${op}`,
              headers: jsonHeaders,
              body: '{}',
            }),
          },
        ];
  await runAutocannon({ title: 'warm-up', baseUrl: api.baseUrl, connections: 100, duration: 2, requests });
  const started = performance.now();
  const cpu = cpuMeter({ api: api.cluster.pids });
  const run = await runAutocannon({ title: op, baseUrl: api.baseUrl, connections: 100, duration: seconds, requests });
  const apiCpu = cpu.stop().api![0]!;
  const ended = performance.now();
  await api.cluster.stop();
  const stopped = performance.now();
  console.log(
    `${op}: ${run.rps}/s, p99 ${run.latency.p99} ms, statuses ` +
      `${JSON.stringify(run.statusCounts)}; API process at ${Math.round(apiCpu * 100)}% of a ` +
      `core = ${Math.round((apiCpu * 1e6) / run.rps)} µs of CPU per answer (profiler on); pinned: ${canPin}`,
  );
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('no profile written');
  const s = summarizeCpuProfile(join(dir, file), { fromEndMs: [stopped - started, stopped - ended] }, 40);
  console.log(`\n${join(dir, file)}: ${s.busyMs} ms busy, ${s.idlePercent}% idle\n\nby area:`);
  for (const a of s.byArea) console.log(`  ${String(a.percent).padStart(5)}%  ${a.area}`);
  console.log('\ntop self time:');
  for (const f of s.topFunctions) console.log(`  ${String(f.percent).padStart(5)}%  ${f.fn}`);
  holds = [];
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(async () => {
    pin(process.pid, allCpus());
    await runCleanup();
    process.exit();
  });
