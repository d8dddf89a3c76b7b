/**
 * `npm run bench` (`-- --smoke` for the short run): the launch-spike
 * benchmark, start to end, in one process that starts and stops everything
 * it needs:
 *
 *  1. a private redis-server (AOF on, appendfsync always);
 *  2. the baselines that need only Redis: redis-benchmark of our reserve
 *     script and of the minimal one, the engine called directly, the naive
 *     GET-then-DECRBY reserve on the launch plan, and the PostgreSQL peer;
 *  3. the service as production runs it (API processes under node:cluster,
 *     one background-jobs process, the test ledger), the launch product's
 *     lines through the bulk import, then the scenarios (spike, steady,
 *     expiry churn, many products), each followed by its invariant checks;
 *  4. the HTTP figures: our route against the bare express route, 1 and 2
 *     API processes, latency at half the peak rate, and a CPU profile;
 *  5. the cluster comparison (`--no-cluster` skips it): spike and many
 *     products on a fresh node, then on a local 3-master Redis Cluster with
 *     REDIS_WAIT_REPLICAS=0 and =1, each followed by its invariant checks,
 *     with FCALL work per master (bench/cluster/clusterComparison.ts);
 *  6. the report in bench/results/.
 *
 * Exits 1 when any invariant is violated or the run fails; missed
 * performance targets are reported, not failed.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runEngineDirect } from './baselines/engineDirect.js';
import { runClusterComparison } from './cluster/clusterComparison.js';
import { createThroughputProduct, reserveRequests, runHttpFigures, type HttpFigures } from './baselines/httpRoutes.js';
import { runNaive } from './baselines/naive.js';
import { runHotPath } from './hotPath/hotPath.js';
import { runPostgresPeer } from './baselines/postgres.js';
import { redisBenchmark, runRedisBaselines } from './baselines/redisBenchmark.js';
import { bulkImport } from './lib/bulkImport.js';
import { installSignalHandlers, runCleanup } from './lib/cleanup.js';
import { runAutocannon } from './lib/httpLoad.js';
import { cpuTimes, describeMachine, machineLoadSince } from './lib/machine.js';
import { resultsDir } from './lib/paths.js';
import { serviceEnv, startApi, startJobsProcess, startLedger, startRedis } from './lib/stack.js';
import { parseOptions } from './options.js';
import { evaluateTargets } from './report/targets.js';
import type { BenchResults } from './report/results.js';
import { stampOf, writeReport } from './report/write.js';
import { launchPlan } from './scenarios/launchPlan.js';
import { runExpiryChurn } from './scenarios/expiryChurn.js';
import { runManyProducts } from './scenarios/manyProducts.js';
import { failed, type ScenarioContext, type ScenarioResult } from './scenarios/scenario.js';
import { LAUNCH_PRODUCT, runSpike } from './scenarios/spike.js';
import { runSteady } from './scenarios/steady.js';

const SCENARIO_API_PROCESSES = 2;

/** `--hot-path`: the run ends after issue 11's comparison. */
class HotPathDone extends Error {}
const LEDGER_FAIL_RATE = 0.2;
const LEDGER_REJECT_RATE = 0.02;

async function main(): Promise<number> {
  installSignalHandlers();
  const options = parseOptions(process.argv.slice(2), process.env);
  const started = performance.now();
  const log = (s: string) =>
    console.log(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${s}`);
  const runId = `r${Date.now().toString(36)}`;
  const workDir = mkdtempSync(join(tmpdir(), 'qa-bench-'));
  const machine = describeMachine();
  const cpuAtStart = cpuTimes();
  const results: BenchResults = {
    startedAt: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    mode: options.hotPathOnly ? (options.smoke ? 'hot path, smoke' : 'hot path') : options.smoke ? 'smoke' : 'full',
    seed: options.seed,
    machine,
    setup: {
      redis: { version: 'unknown', appendonly: 'yes', appendfsync: 'always', autoAofRewrite: 'off' },
      scenarioApiProcesses: SCENARIO_API_PROCESSES,
      apiLogLevel: options.logLevel,
      ledger: { failRate: LEDGER_FAIL_RATE, rejectRate: LEDGER_REJECT_RATE },
      loadGenerator:
        'load from this process: autocannon (closed loop) for the scenarios and peaks, a paced ' +
        'node:http loop for latency at a fixed rate, ioredis/pg loops for the direct baselines',
    },
    baselines: { engineDirect: [], naive: [] },
    scenarios: [],
    targets: [],
    violations: [],
    warnings: [],
    ok: false,
  };
  const profileDir = options.profile ? join(resultsDir, 'profiles', stampOf(results.startedAt)) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  log(
    `${results.command}: seed ${options.seed}, ${machine.cpus} CPUs, ` +
      `${machine.memoryGiB} GiB, Node ${machine.node}; work folder ${workDir}`,
  );

  try {
    for (const tool of ['redisServer', 'redisBenchmark'] as const) {
      if (machine[tool] === 'not found') {
        throw new Error(
          `${tool === 'redisServer' ? 'redis-server' : 'redis-benchmark'} not found: install Redis ` +
            `(Debian/Ubuntu: apt-get install -y redis-server, which has both; macOS: brew install redis)`,
        );
      }
    }
    const plan = launchPlan(options.customers, options.seed);

    // ---------------------------------------------------------------- Redis and the baselines that need only Redis
    log('starting a private redis-server (AOF on, appendfsync always)');
    const stack = await startRedis();
    results.setup.redis.version = stack.version;
    results.setup.redis.appendfsync = stack.appendfsync;

    // ---------------------------------------------------------------- issue 11: the hot path against minimal
    // equivalents
    log(
      `hot path (issue 11): reserve, commit and release against the minimal scripts ` +
        `and a bare express app, ${options.hotPath.connections} connections`,
    );
    const ledger = await startLedger(workDir, LEDGER_FAIL_RATE, LEDGER_REJECT_RATE, options.seed);
    const env = serviceEnv(stack.server.url, ledger, workDir, options.logLevel);
    results.hotPath = await runHotPath(
      stack,
      env,
      workDir,
      { ...options.hotPath, smoke: options.smoke, seed: options.seed },
      (s) => log(`  ${s}`),
      options.hotPathOnly ? profileDir : undefined,
    );
    for (const c of results.hotPath.checks) log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
    for (const c of failed(results.hotPath.checks)) results.violations.push(`hot path: ${c.name}: ${c.detail}`);
    if (options.hotPathOnly) throw new HotPathDone();
    await stack.redis.flushall();

    log('redis-benchmark: EVALSHA of our reserve script and of the minimal reserve script');
    const rb = await runRedisBaselines(
      stack.redis,
      stack.engine,
      stack.keys,
      stack.server.port,
      options.redisBenchmarkRequests,
    );
    results.baselines.redisBenchmark = rb;
    log(
      `  -P 16: ours ${rb.ours.rps}/s, minimal ${rb.minimal.rps}/s (ratio ` +
        `${rb.ratio}); -P 1: ours ${rb.oursP1.rps}/s, minimal ${rb.minimalP1.rps}/s`,
    );

    for (const inFlight of [64, 256]) {
      const profileFile = profileDir && inFlight === 256 ? join(profileDir, 'engine-direct-256.cpuprofile') : undefined;
      const run = await runEngineDirect(
        stack.redis,
        stack.engine,
        inFlight,
        options.engineSeconds,
        Math.min(1, options.warmupSeconds),
        stack.server.process.pid!,
        profileFile,
      );
      results.baselines.engineDirect.push(run);
      log(
        `engine.reserve direct, ${inFlight} in flight: ${run.rps}/s, p99 ` +
          `${run.latency.p99} ms${run.failures ? `, ${run.failures} failures` : ''}`,
      );
      if (run.failures > 0)
        results.violations.push(`engine.reserve direct, ${inFlight} in flight: ${run.failures} calls failed`);
    }

    rb.oursAgain = await redisBenchmark(
      'our reserve script, again after the engine runs',
      stack.server.port,
      options.redisBenchmarkRequests / 2,
      16,
      rb.oursArgs,
    );
    log(
      `redis-benchmark, our script again: ${rb.oursAgain.rps}/s (the engine is ` +
        `compared with the mean of ${rb.ours.rps} and ${rb.oursAgain.rps})`,
    );

    for (const inFlight of options.naiveInFlight) {
      const naive = await runNaive(stack.redis, plan, inFlight);
      results.baselines.naive.push(naive);
      log(
        `naive GET-then-DECRBY, ${inFlight} in flight: granted ${naive.granted} of ${naive.capacity}: oversold ` +
          `${naive.oversold} (${naive.oversoldPercentOfPool}% of the pool), ${naive.linesOverLimit} lines over limit`,
      );
    }

    log('PostgreSQL peer');
    const pg = await runPostgresPeer(
      process.env,
      64,
      options.postgresSeconds,
      Math.min(1, options.warmupSeconds),
      options.seed,
    );
    results.baselines.postgres = pg;
    if (pg.skipped) log(`  skipped: ${pg.reason}`);
    else {
      results.setup.postgres = `PostgreSQL ${pg.version} at ${pg.url}`;
      log(
        `  ${pg.run.rps} reserves/s, p99 ${pg.run.latency.p99} ms (${pg.poolSize} ` +
          `connections, synchronous_commit=${pg.settings.synchronous_commit})`,
      );
    }

    // The service starts on an empty Redis (the scripts stay cached).
    await stack.redis.flushall();

    // ---------------------------------------------------------------- the service and the scenarios
    log(
      `starting the test ledger, the jobs process (ROLE=worker) and ` +
        `${SCENARIO_API_PROCESSES} API processes (node:cluster, ROLE=api)`,
    );
    await startJobsProcess(env, workDir);
    const service = await startApi(env, SCENARIO_API_PROCESSES, workDir, 'api-scenarios');
    const ctx: ScenarioContext = {
      options,
      stack,
      redis: stack.redis,
      keys: stack.keys,
      redisPids: [stack.server.process.pid!],
      api: service.api,
      baseUrl: service.baseUrl,
      ledger,
      runId,
      apiPids: service.cluster.pids,
    };

    log(
      `launch product: capacity ${plan.capacity.toLocaleString('en')} for a demand of ` +
        `${plan.demand.toLocaleString('en')}; bulk import of ${plan.lines.length.toLocaleString('en')} lines`,
    );
    await service.api.putProduct(LAUNCH_PRODUCT, { capacity: plan.capacity, holdTtlSeconds: 3600 });
    results.launchImport = await bulkImport(
      service.baseUrl,
      [{ productId: LAUNCH_PRODUCT, rows: plan.lines }],
      'launch lines',
    );
    log(`  ${results.launchImport.upserted} lines in ${results.launchImport.seconds.toFixed(1)} s`);

    log(`warm-up: ${options.warmupSeconds} s of reserves on another product`);
    await createThroughputProduct(stack);
    await runAutocannon({
      title: 'warm-up',
      baseUrl: service.baseUrl,
      connections: options.spikeConnections,
      duration: options.warmupSeconds,
      requests: reserveRequests(`${runId}-warm`, options.seed),
    });

    const scenarios: [string, () => Promise<ScenarioResult>][] = [
      ['spike', () => runSpike(ctx, plan)],
      ['steady', () => runSteady(ctx)],
      ['expiry churn', () => runExpiryChurn(ctx)],
      ['many products', () => runManyProducts(ctx)],
    ];
    for (const [name, run] of scenarios) {
      log(`scenario: ${name}`);
      const s = await run();
      results.scenarios.push(s);
      if (s.name === 'spike') ctx.expectedRps = s.load.rps;
      log(
        `  ${s.load.responses} answers in ${s.load.seconds.toFixed(1)} s = ${s.load.rps}/s, ` +
          `p99 ${s.load.latency.p99} ms; ${JSON.stringify(s.totals.refusals)}`,
      );
      for (const c of s.checks) log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
      for (const c of failed(s.checks)) results.violations.push(`${s.name}: ${c.name}: ${c.detail}`);
    }
    await service.cluster.stop();

    // ---------------------------------------------------------------- HTTP figures and node:cluster
    log('HTTP figures (same product, every reserve granted)');
    const http = await runHttpFigures(options, stack, env, workDir, runId, profileDir, (s) => log(`  ${s}`));
    results.http = http;
    log(
      `  our route 1 process ${http.ours1.rps}/s, bare route ${http.bare.rps}/s (ratio ` +
        `${http.rpsRatio}); hello ${http.hello.rps}/s; 2 processes ${http.ours2.rps}/s ` +
        `(a port each), ${http.ours2Shared.rps}/s (one shared port)`,
    );
    log(
      `  p99 at ${Math.round(http.oursHalf1.rate)}/s paced: ours ` +
        `${http.oursHalf1.latency.p99} ms, bare ${http.bareHalf.latency.p99} ms; 2 ` +
        `processes at ${Math.round(http.oursHalf2.rate)}/s: ` +
        `${http.oursHalf2.latency.p99} ms`,
    );
    results.warnings.push(...httpWarnings(http));

    // ---------------------------------------------------------------- Redis Cluster vs one node (issue 8)
    if (options.cluster) {
      const clusterPlan = launchPlan(options.clusterCustomers, options.seed);
      const expectedRps = results.scenarios.find((s) => s.name === 'spike')?.load.rps;
      const { comparison, violations } = await runClusterComparison({
        options,
        plan: clusterPlan,
        ledger,
        workDir,
        runId,
        apiProcesses: SCENARIO_API_PROCESSES,
        expectedRps,
        log,
      });
      results.cluster = comparison;
      results.violations.push(...violations);
      for (const q of comparison.ratios) {
        log(
          `  ${q.scenario}: cluster/one node throughput ${q.clusterVsOne.rps}, p99 ` +
            `${q.clusterVsOne.p99}; WAIT 1/WAIT 0 throughput ${q.wait1VsWait0.rps}, p99 ` +
            `${q.wait1VsWait0.p99}`,
        );
      }
    } else log('cluster comparison skipped (--no-cluster)');
  } catch (err) {
    if (!(err instanceof HotPathDone))
      results.violations.push(`the run failed: ${(err as Error).stack ?? String(err)}`);
  }

  log('stopping everything the run started');
  await runCleanup();
  results.finishedAt = new Date().toISOString();
  results.seconds = Math.round((performance.now() - started) / 1000);
  results.machineLoad = machineLoadSince(cpuAtStart);
  results.targets = evaluateTargets(results);
  results.ok = results.violations.length === 0;
  const files = writeReport(results);

  console.log('\nTargets:');
  for (const t of results.targets)
    console.log(`  [${t.verdict.toUpperCase().padEnd(8)}] ${t.target}: ${t.measured} (goal ${t.goal})`);
  console.log(`\nReport: ${files.markdown}\n        ${files.json}\n        ${files.svg}\n        ${files.latest}`);
  if (results.ok) {
    rmSync(workDir, { recursive: true, force: true });
    console.log(`\nAll invariants held (${results.seconds} s).`);
    return 0;
  }
  console.error(`\n${results.violations.length} violation(s):`);
  for (const v of results.violations) console.error(`  - ${v}`);
  console.error(`Logs of the processes kept in ${workDir}`);
  return 1;
}

/** HTTP figures are only comparable when the answers are what they should be. */
function httpWarnings(http: HttpFigures): string[] {
  const out: string[] = [];
  const runs = [
    http.ours1,
    http.ours2,
    http.ours2Shared,
    http.bare,
    http.oursHalf1,
    http.bareHalf,
    http.oursHalf2,
    http.oursHalf1Everysec,
  ];
  for (const r of runs) {
    const total = Object.values(r.statusCounts).reduce((a, b) => a + b, 0);
    const good = r.statusCounts[201] ?? 0;
    if (total === 0 || good / total < 0.99)
      out.push(`${r.title}: only ${good} of ${total} answers were 201 (${JSON.stringify(r.statusCounts)})`);
    if (r.errors > 0) out.push(`${r.title}: ${r.errors} request errors`);
  }
  for (const r of [http.oursHalf1, http.bareHalf, http.oursHalf2, http.oursHalf1Everysec]) {
    if (r.lateStarts > r.responses * 0.01)
      out.push(
        `${r.title}: the paced generator started ${r.lateStarts} requests ` +
          `more than 5 ms late (it could not keep the rate)`,
      );
  }
  return out;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    console.error(err);
    await runCleanup();
    process.exit(1);
  },
);
