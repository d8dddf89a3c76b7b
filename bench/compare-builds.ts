/**
 * `npm run bench:builds -- <other dist/> [rounds]`: this build's reserve route
 * and another build's (its dist/ folder, e.g. a `git archive` of an earlier
 * commit built with tsc -p tsconfig.build.json), each in one API process
 * pinned to CPU 0 (Redis and autocannon on CPU 1), alternated 2 s at a time
 * (the order flips every round) at 100 connections: requests/s and the API
 * process's CPU per answer of each. A quick before/after on a busy machine;
 * `LOG_REQUESTS` from the environment is passed to both.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createThroughputProduct, reserveRequests } from './baselines/httpRoutes.js';
import { installSignalHandlers, runCleanup } from './lib/cleanup.js';
import { runAutocannon } from './lib/httpLoad.js';
import { cpuMeter } from './lib/processes.js';
import { serviceEnv, startApi, startLedger, startRedis } from './lib/stack.js';
import { allCpus, pin } from './hotPath/pinning.js';

async function main(): Promise<void> {
  installSignalHandlers();
  const otherDist = process.argv[2];
  if (!otherDist) throw new Error('usage: npm run bench:builds -- <other dist/ folder> [rounds]');
  const rounds = Number(process.argv[3] ?? 6);
  const workDir = mkdtempSync(join(tmpdir(), 'qa-builds-'));
  const stack = await startRedis();
  pin(stack.server.process.pid!, '1');
  pin(process.pid, '1');
  const ledger = await startLedger(workDir, 0, 0, 1);
  const env = {
    ...serviceEnv(stack.server.url, ledger, workDir, 'info'),
    ...(process.env.LOG_REQUESTS ? { LOG_REQUESTS: process.env.LOG_REQUESTS } : {}),
  };
  await createThroughputProduct(stack);
  const builds = [
    { name: 'this build', api: await startApi(env, 1, workDir, 'this-build') },
    {
      name: otherDist,
      api: await startApi(env, 1, workDir, 'other-build', { exec: join(otherDist, 'src', 'main.js') }),
    },
  ];
  for (const b of builds) pin(b.api.cluster.pids[0]!, '0');
  const totals = builds.map(() => ({ answers: 0, seconds: 0, cpuSeconds: 0 }));
  let n = 0;
  // Warm-up by requests, not seconds (the JIT needs thousands; a busy machine answers a few hundred a second).
  for (const b of builds)
    await runAutocannon({
      title: 'warm-up',
      baseUrl: b.api.baseUrl,
      connections: 100,
      amount: 10_000,
      requests: reserveRequests(`warm-${n++}`, n),
    });
  for (let r = 0; r < rounds; r++) {
    for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
      const b = builds[i]!;
      const meter = cpuMeter({ api: b.api.cluster.pids });
      const run = await runAutocannon({
        title: b.name,
        baseUrl: b.api.baseUrl,
        connections: 100,
        duration: 2,
        requests: reserveRequests(`r${n++}`, n),
      });
      const core = meter.stop().api![0]!;
      totals[i]!.answers += run.responses;
      totals[i]!.seconds += run.seconds;
      totals[i]!.cpuSeconds += core * run.seconds;
      console.log(
        `${b.name}: ${run.rps} req/s, API at ${Math.round(core * 100)}% of a core, ` +
          `${Math.round((core * run.seconds * 1e6) / Math.max(1, run.responses))} µs per answer, ` +
          `${JSON.stringify(run.statusCounts)}`,
      );
    }
  }
  builds.forEach((b, i) => {
    const t = totals[i]!;
    console.log(
      `${b.name}, all rounds: ${Math.round(t.answers / t.seconds)} req/s, ` +
        `${Math.round((t.cpuSeconds * 1e6) / t.answers)} µs of API CPU per answer`,
    );
  });
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
