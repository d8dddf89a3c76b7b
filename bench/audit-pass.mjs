/**
 * The invariant audit's exact pool comparison at 100,000 live holds in one
 * product (lua/audit-product-11.lua, src/audit/invariantAudit.ts). Not a test:
 * it prints figures and checks the findings, asserts no timings.
 *
 *   npm run build && node bench/audit-pass.mjs [--holds 100000] [--customers 10000] [--lanes 8]
 *
 * Its own redis-server (never the machine's 6379). Holds are made through the
 * engine's reserve, 1,000 in flight at a time. Then, while `lanes` loops
 * reserve, commit (some partly), release and settle, the audit job's own
 * code (auditOnce, default limits) runs until two pool comparisons have
 * completed, a difference (pool held + 1) being planted in the middle of the
 * first pass: the first must be exact (it compares its start instant, before
 * the plant), the second must report held +1. Reported: every audit call's
 * own time inside Redis (the script's clock) and round trip, the longest,
 * the pass's calls and duration, the worst wait of a concurrent PING, the
 * operations the load made meanwhile.
 */
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createInvariantAudit, DEFAULT_AUDIT_LIMITS } from '../dist/src/audit/invariantAudit.js';
import { createQuotaEngine } from '../dist/src/engine/quotaEngine.js';
import { createMetrics } from '../dist/src/metrics.js';
import { connectApiRedis } from '../dist/src/redis/connection.js';
import { createKeys } from '../dist/src/redis/keys.js';
import { startRedisServer } from '../dist/src/redis/redisServer.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const HOLDS = arg('holds', 100_000);
const CUSTOMERS = arg('customers', 10_000);
const LANES = arg('lanes', 8);
const PLANT_AT_CALL = 10;
let planted = false;
const ms = (s) => Math.round(s * 1e6) / 1e3;
const pct = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];

const server = await startRedisServer({});
const redis = await connectApiRedis(server.url);
const loadRedis = await connectApiRedis(server.url);
const pinger = new Redis(server.url);
const keys = createKeys('bench');
const engine = createQuotaEngine({ redis, keys });
const loadEngine = createQuotaEngine({ redis: loadRedis, keys });
await engine.loadScripts();
const p = 'launch';

try {
  await redis.sadd(keys.productIndex(), p);
  await engine.upsertProduct(p, { capacity: 1e15, holdTtlSeconds: 86_400 }, 'put');
  for (let i = 0; i < CUSTOMERS; i += 500) {
    const lines = [];
    for (let c = i; c < Math.min(CUSTOMERS, i + 500); c++)
      lines.push({ customerId: `cust-${c}`, limit: 1e12, status: 'active', statusReason: null, tier: null });
    await engine.upsertLines(p, lines);
  }
  let t = performance.now();
  for (let i = 0; i < HOLDS; i += 1_000) {
    const batch = [];
    for (let j = i; j < Math.min(HOLDS, i + 1_000); j++) {
      batch.push(
        engine.reserve({
          productId: p,
          customerId: `cust-${j % CUSTOMERS}`,
          reservationId: `hold-${j}`,
          amount: 100 + (j % 900),
          idempotencyKey: `k${j}`,
          fingerprint: 'f',
        }),
      );
    }
    for (const r of await Promise.all(batch)) if (!r.ok) throw new Error(JSON.stringify(r));
  }
  console.log(
    `${HOLDS} live holds over ${CUSTOMERS} customers made in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );

  // Concurrent load: reserve; then commit (a quarter partly) + settle, release, or leave held; commit an old hold now
  // and then.
  let running = true;
  let ops = 0;
  let n = 0;
  const lanes = Array.from({ length: LANES }, async () => {
    while (running) {
      const i = n++;
      const id = `x${i}`;
      const r = await loadEngine.reserve({
        productId: p,
        customerId: `cust-${(i * 7) % CUSTOMERS}`,
        reservationId: id,
        amount: 500,
        idempotencyKey: `xk${i}`,
        fingerprint: 'f',
      });
      if (!r.ok) throw new Error(JSON.stringify(r));
      const roll = i % 8;
      if (roll < 3) {
        await loadEngine.commit(p, id, roll === 0 ? 300 : undefined);
        if (roll < 2) await loadEngine.recordSettlement(p, id, 'settled');
      } else if (roll < 6) {
        await loadEngine.release(p, id);
      } else if (roll === 6) {
        // an old hold leaves held mid-walk (or is already committed: OK)
        await loadEngine.commit(p, `hold-${(i * 13) % HOLDS}`);
      }
      ops++;
    }
  });
  let pinging = true;
  let worstPing = 0;
  const pings = (async () => {
    while (pinging) {
      const s = performance.now();
      await pinger.ping();
      worstPing = Math.max(worstPing, performance.now() - s);
      await new Promise((r) => setTimeout(r, 1));
    }
  })();

  // The audit job's own code, default limits, one step at a time so every call is seen.
  const calls = [];
  const instrumented = {
    async auditProduct(productId, limits) {
      const s = performance.now();
      const step = await engine.auditProduct(productId, limits);
      calls.push({
        kind: step.kind,
        micros: step.micros ?? 0,
        poolMicros: step.poolMicros ?? 0,
        set: step.pass?.set,
        roundTripMs: performance.now() - s,
      });
      if (!planted && step.kind === 'pass' && step.pass.calls === PLANT_AT_CALL) {
        await redis.hincrby(keys.pool(p), 'held', 1); // behind the scripts' back, mid-pass
        planted = true;
      }
      return step;
    },
  };
  const audit = createInvariantAudit({
    redisUrl: server.url,
    redis,
    keys,
    engine: instrumented,
    logger: pino({ level: 'silent' }),
    metrics: createMetrics(),
    intervalMs: 30_000,
  });
  const comparisons = [];
  t = performance.now();
  const opsAtStart = ops;
  while (comparisons.length < 2) {
    const runStarted = performance.now();
    const report = await audit.auditOnce();
    const a = report.products[0];
    if (a.pass || (a.outcome !== 'comparing' && a.outcome !== 'catching_up'))
      comparisons.push({ ...a, runMs: performance.now() - runStarted });
  }
  const totalSeconds = (performance.now() - t) / 1000;
  running = false;
  pinging = false;
  await Promise.all(lanes);
  await pings;

  // A third pass with the load stopped, one call at a time, each call's Redis main-thread CPU time measured
  // (INFO cpu before and after): unlike the script's own clock it does not count time the process
  // waited for a CPU (this machine's 2 cores are shared).
  const cpuSeconds = async () => {
    const info = await pinger.info('cpu');
    const f = (name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
    return f('used_cpu_sys_main_thread') + f('used_cpu_user_main_thread');
  };
  const quiet = [];
  for (;;) {
    const before = await cpuSeconds();
    const step = await engine.auditProduct(p, DEFAULT_AUDIT_LIMITS);
    quiet.push({ kind: step.kind, cpuMs: ((await cpuSeconds()) - before) * 1000, micros: step.micros });
    if (step.kind === 'checked') break;
  }

  const [first, second] = comparisons;
  const serverMicros = calls.map((c) => c.micros);
  const longest = calls.reduce((a, b) => (b.micros > a.micros ? b : a));
  const result = {
    holds: HOLDS,
    customers: CUSTOMERS,
    limits: DEFAULT_AUDIT_LIMITS,
    auditCalls: calls.length,
    longestCallInRedisMs: longest.micros / 1000,
    longestCallKind: longest.kind,
    p99CallInRedisMs: pct(serverMicros, 0.99) / 1000,
    medianCallInRedisMs: pct(serverMicros, 0.5) / 1000,
    longestRoundTripMs: ms(Math.max(...calls.map((c) => c.roundTripMs)) / 1000),
    worstConcurrentPingMs: Math.round(worstPing * 1000) / 1000,
    firstPass: { calls: first.pass?.calls, outcome: first.outcome, pool: first.pool, runMs: Math.round(first.runMs) },
    secondPass: {
      calls: second.pass?.calls,
      outcome: second.outcome,
      pool: second.pool,
      runMs: Math.round(second.runMs),
    },
    planted,
    quietPass: {
      calls: quiet.length,
      longestCallCpuMs: Math.round(Math.max(...quiet.map((q) => q.cpuMs)) * 1000) / 1000,
      medianCallCpuMs:
        Math.round(
          pct(
            quiet.map((q) => q.cpuMs),
            0.5,
          ) * 1000,
        ) / 1000,
      longestCallInRedisMs: Math.max(...quiet.map((q) => q.micros)) / 1000,
      totalCpuMs: Math.round(quiet.reduce((a, q) => a + q.cpuMs, 0)),
    },
    loadOperationsDuringAudit: ops - opsAtStart,
    auditSeconds: totalSeconds,
  };
  console.log(JSON.stringify(result, null, 2));
  if (process.argv.includes('--calls'))
    for (const c of calls)
      console.log(
        c.kind,
        c.set ?? '',
        (c.micros / 1000).toFixed(2),
        'ms; pool part',
        (c.poolMicros / 1000).toFixed(2),
        'ms',
      );
  const heldDiff = second.pool.find((d) => d.field === 'held');
  if (!planted || first.pool.length !== 0 || !heldDiff || heldDiff.difference !== 1 || second.pool.length !== 1) {
    throw new Error('unexpected findings: the first pass must be exact, the second must report held +1');
  }
  console.log(
    'findings as expected: first pass exact at its start (before the plant), second pass reports pool.held +1',
  );
} finally {
  pinger.disconnect();
  redis.disconnect();
  loadRedis.disconnect();
  await server.stop();
}
