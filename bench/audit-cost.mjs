/**
 * What the invariant audit costs on a product with a million reservation
 * records (src/audit/invariantAudit.ts, lua/audit-product-11.lua). Not a test:
 * it prints figures, asserts no timings.
 *
 *   npm run build && node bench/audit-cost.mjs [--records 1000000] [--customers 100000] [--aof]
 *
 * It starts its own redis-server (never the machine's 6379), writes the
 * settled records straight into Redis with pipelined HSET + ZADD in the layout
 * the scripts write (and sets the pool and line counters to match), adds live
 * records and later settles through the engine, then measures:
 *   1. the first full catch-up over the settled records (script calls, total
 *      time, longest single call client- and server-side, and the longest a
 *      concurrent PING waited: how long Redis was blocked at worst);
 *   2. a steady-state audit run (auditOnce) after 1,000 more settles;
 *   3. the job's own path from an empty checkpoint: runs until the first
 *      comparison, at the default per-run bound;
 *   4. the audit hash's memory.
 * Every phase checks that the audit reports zero violations.
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
const RECORDS = arg('records', 1_000_000);
const CUSTOMERS = arg('customers', 100_000);
const MORE_SETTLES = 1_000;
// Live records over the default live limit (1,000): compared by a pass over several calls.
const LIVE_HELD = 1_200;
const LIVE_COMMITTED = 800;
const AOF = process.argv.includes('--aof');

const ms = (s) => Math.round(s * 1e6) / 1e3;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const log = (...a) => console.log(...a);

const server = await startRedisServer({ appendOnly: AOF });
const loader = new Redis(server.url);
const redis = await connectApiRedis(server.url);
const keys = createKeys('bench');
const scriptTimes = [];
const engine = createQuotaEngine({
  redis,
  keys,
  onScript: (name, seconds) => name === 'audit-product' && scriptTimes.push(seconds),
});
await engine.loadScripts();
const results = {
  records: RECORDS,
  customers: CUSTOMERS,
  aof: AOF,
  limits: DEFAULT_AUDIT_LIMITS,
  redis: (await loader.info('server')).match(/redis_version:(\S+)/)[1],
};

try {
  const p = 'million';
  const customerOf = (i) => `c${i % CUSTOMERS}`;
  await redis.sadd(keys.productIndex(), p);
  await engine.upsertProduct(p, { capacity: 1e15, holdTtlSeconds: 86_400 }, 'put');
  for (let i = 0; i < CUSTOMERS; i += 1_000) {
    const lines = [];
    for (let c = i; c < Math.min(CUSTOMERS, i + 1_000); c++)
      lines.push({ customerId: `c${c}`, limit: 1e12, status: 'active', statusReason: null, tier: null });
    await engine.upsertLines(p, lines);
  }

  // --- 1M settled records, pipelined, as reserve + commit + record-settlement leave them.
  let t = performance.now();
  const [sec] = await loader.time();
  const base = Number(sec) * 1000 - 2 * RECORDS - 60_000; // every score in the past, 2 ms apart
  let total = 0;
  const perCustomer = new Map();
  const CHUNK = 5_000;
  for (let i = 0; i < RECORDS; i += CHUNK) {
    const pipe = loader.pipeline();
    for (let j = i; j < Math.min(RECORDS, i + CHUNK); j++) {
      const id = `r${j}`;
      const customerId = customerOf(j);
      const amount = 100 + (j % 9_901);
      const committed = j % 10 === 0 ? Math.ceil(amount / 2) : amount; // every tenth a partial commit
      const createdAt = base + 2 * j;
      pipe.hset(
        keys.records(p),
        id,
        JSON.stringify({
          reservationId: id,
          productId: p,
          customerId,
          amount: String(amount),
          createdAt: String(createdAt),
          expiresAt: String(createdAt + 300_000),
          committedAmount: String(committed),
          metadata: '{"campaign":"launch"}',
          attempts: '1',
          idempotencyKey: `k${j}`,
          status: 'settled',
          eventIds: `${createdAt}-0,${createdAt}-1,${createdAt + 1}-0`,
          committedAt: String(createdAt),
          settlementUpdatedAt: String(createdAt + 1),
        }),
      );
      pipe.zadd(keys.status(p, 'settled'), String(createdAt + 1), id);
      // as reserve-8 indexes it
      pipe.zadd(keys.bycustomer(p), 0, `${customerId}:${String(createdAt).padStart(13, '0')}:${id}`);
      total += committed;
      perCustomer.set(customerId, (perCustomer.get(customerId) ?? 0) + committed);
    }
    await pipe.exec();
  }
  await loader.hset(keys.pool(p), 'committed', String(total), 'settled', String(total));
  for (let i = 0; i < CUSTOMERS; i += CHUNK) {
    const pipe = loader.pipeline();
    const ids = [];
    for (let c = i; c < Math.min(CUSTOMERS, i + CHUNK); c++) ids.push(`c${c}`);
    const lines = await loader.hmget(keys.lines(p), ...ids);
    ids.forEach((c, k) =>
      pipe.hset(keys.lines(p), c, JSON.stringify({ ...JSON.parse(lines[k]), drawn: String(perCustomer.get(c) ?? 0) })),
    );
    await pipe.exec();
  }
  results.loadSeconds = (performance.now() - t) / 1000;
  results.usedMemory = (await loader.info('memory')).match(/used_memory_human:(\S+)/)[1];
  log(
    `loaded ${RECORDS} settled records over ${CUSTOMERS} customers in ` +
      `${results.loadSeconds.toFixed(1)} s (Redis ${results.usedMemory})`,
  );

  // --- live records through the engine: held and committed holds.
  let n = 0;
  const reserve = async (customerId, amount) => {
    const r = await engine.reserve({
      productId: p,
      customerId,
      reservationId: `live${n++}`,
      amount,
      idempotencyKey: `lk${n}`,
      fingerprint: 'f',
    });
    if (!r.ok) throw new Error(JSON.stringify(r));
    return r.value.reservationId;
  };
  for (let i = 0; i < LIVE_HELD; i++) await reserve(customerOf(i * 7), 500);
  for (let i = 0; i < LIVE_COMMITTED; i++) await engine.commit(p, await reserve(customerOf(i * 13), 700), 600);

  // A PING loop on its own connection: the longest wait is how long a script blocked Redis.
  const pinger = new Redis(server.url);
  let pinging = false;
  let worstPing = 0;
  const pingLoop = async () => {
    while (pinging) {
      const s = performance.now();
      await pinger.ping();
      worstPing = Math.max(worstPing, performance.now() - s);
    }
  };
  // Server-side time: the slow log (script calls over 1 ms; PINGs never are) and commandstats (all of them).
  const resetServerStats = async () => {
    await loader.slowlog('RESET');
    await loader.config('RESETSTAT');
  };
  const serverStats = async () => {
    const entries = await loader.slowlog('GET', 100_000);
    const audits = entries.filter((e) => String(e[3][0]).toLowerCase() === 'fcall');
    const stat = (await loader.info('commandstats')).match(/cmdstat_fcall:calls=(\d+),usec=(\d+)/);
    return {
      calls: Number(stat?.[1] ?? 0),
      totalMs: Math.round(Number(stat?.[2] ?? 0) / 1000),
      longestMs: Math.max(0, ...audits.map((e) => Number(e[2]) / 1000)),
    };
  };
  await loader.config('SET', 'slowlog-log-slower-than', '1000');
  await loader.config('SET', 'slowlog-max-len', '100000');

  // --- 1. first full catch-up, step by step (as many calls as it takes).
  await resetServerStats();
  scriptTimes.length = 0;
  pinging = true;
  worstPing = 0;
  let pings = pingLoop();
  t = performance.now();
  let step;
  do step = await engine.auditProduct(p, DEFAULT_AUDIT_LIMITS);
  while (step.kind !== 'checked');
  const catchUpSeconds = (performance.now() - t) / 1000;
  pinging = false;
  await pings;
  if (step.kind !== 'checked' || step.pool.some((c) => c.expected !== c.actual) || step.lines.length > 0) {
    throw new Error(`catch-up did not end consistent: ${JSON.stringify(step).slice(0, 2000)}`);
  }
  const server1 = await serverStats();
  results.catchUp = {
    calls: scriptTimes.length,
    totalSeconds: catchUpSeconds,
    longestCallMs: ms(Math.max(...scriptTimes)),
    longestCallInRedisMs: 'see serverLongestCallMs (slow log)',
    serverTotalMs: server1.totalMs,
    medianCallMs: ms(median(scriptTimes)),
    serverLongestCallMs: server1.longestMs,
    worstPingMs: Math.round(worstPing * 1000) / 1000,
    settledFolded: step.settledCount,
    linesChecked: step.linesChecked,
  };
  log(
    `\n1. first catch-up: ${results.catchUp.calls} calls, ${catchUpSeconds.toFixed(2)} s in all (Redis busy ` +
      `${results.catchUp.serverTotalMs} ms), median call ${results.catchUp.medianCallMs} ms, longest ` +
      `${results.catchUp.longestCallMs} ms (server ${server1.longestMs} ms), worst concurrent PING ` +
      `${results.catchUp.worstPingMs} ms`,
  );

  // --- 2. steady state: 1,000 more settles since the last run, one audit run (auditOnce, as the job runs it);
  //        a: with live records at the live limit (the heaviest comparison), b: with few live records.
  const quiet = pino({ level: 'warn' });
  const metrics = createMetrics();
  const audit = createInvariantAudit({
    redisUrl: server.url,
    redis,
    keys,
    engine,
    logger: quiet,
    metrics,
    intervalMs: 30_000,
  });
  let repayments = 0;
  const settleMore = async () => {
    for (let i = 0; i < MORE_SETTLES; i++) {
      const id = await reserve(customerOf(i * 31), 900);
      await engine.commit(p, id);
      await engine.recordSettlement(p, id, i % 20 === 0 ? 'reversed' : 'settled');
    }
    for (let i = 0; i < 100; i++) {
      await engine.repay({
        productId: p,
        customerId: customerOf(i * 31),
        amount: 100,
        idempotencyKey: `rk${repayments++}`,
        fingerprint: 'f',
      });
    }
    await new Promise((r) => setTimeout(r, 5));
  };
  const steadyRun = async (label, live) => {
    await resetServerStats();
    pinging = true;
    worstPing = 0;
    pings = pingLoop();
    const report = await audit.auditOnce();
    pinging = false;
    await pings;
    const a = report.products[0];
    if (a.outcome !== 'consistent') throw new Error(`steady run: ${JSON.stringify(a).slice(0, 2000)}`);
    const stats = await serverStats();
    const out = {
      liveRecords: live,
      calls: a.calls,
      runMs: ms(report.seconds),
      longestCallMs: ms(a.longestCallSeconds),
      serverLongestCallMs: stats.longestMs,
      serverTotalMs: stats.totalMs,
      worstPingMs: Math.round(worstPing * 1000) / 1000,
      folded: a.folded,
      linesChecked: a.linesChecked,
    };
    log(
      `${label} after ${MORE_SETTLES} settles, ${live} live records: ${out.calls} call(s), run ${out.runMs} ms, ` +
        `longest call ${out.longestCallMs} ms (server ${out.serverLongestCallMs || '<1'} ms), worst concurrent ` +
        `PING ${out.worstPingMs} ms, ${out.folded} settled folded, ${out.linesChecked} lines checked`,
    );
    return out;
  };
  await settleMore();
  results.steadyAtLiveLimit = await steadyRun('2a. steady state', LIVE_HELD + LIVE_COMMITTED);
  for (let i = 0; i < LIVE_HELD; i++) await engine.release(p, `live${i}`);
  for (const id of await redis.zrange(keys.status(p, 'committed'), 0, -1))
    await engine.recordSettlement(p, id, 'settled');
  await settleMore();
  for (let i = 0; i < 50; i++) await reserve(customerOf(i * 17), 400);
  results.steadyFewLive = await steadyRun('2b. steady state', 50);

  // --- 3. the job's path from an empty checkpoint (a first deploy on an existing store).
  await loader.del(keys.audit(p));
  const runs = [];
  for (;;) {
    const r = await audit.auditOnce();
    const a = r.products[0];
    runs.push({ outcome: a.outcome, calls: a.calls, seconds: r.seconds, longestCallMs: ms(a.longestCallSeconds) });
    if (a.outcome !== 'catching_up') break;
  }
  if (runs.at(-1).outcome !== 'consistent') throw new Error(`job path: ${JSON.stringify(runs)}`);
  results.jobFromEmpty = {
    runsUntilFirstComparison: runs.length,
    perRunSeconds: runs.map((r) => Math.round(r.seconds * 1000) / 1000),
    longestCallMs: Math.max(...runs.map((r) => r.longestCallMs)),
  };
  log(
    `3. job from an empty checkpoint (at most ${DEFAULT_AUDIT_LIMITS.maxCallsPerProduct} ` +
      `calls x ${DEFAULT_AUDIT_LIMITS.settledBatch} records per run): compared on run ` +
      `${runs.length}; per run ${results.jobFromEmpty.perRunSeconds.join(', ')} s`,
  );

  // --- 4. what the audit keeps.
  const auditHash = keys.audit(p);
  results.auditHash = {
    fields: await loader.hlen(auditHash),
    bytes: Number(await loader.memory('USAGE', auditHash, 'SAMPLES', '0')),
  };
  // Each call checks the lines of about lineRecords records (every record of each customer it visits).
  const indexed = await loader.zcard(keys.bycustomer(p));
  results.lineRotationCalls = Math.ceil(indexed / DEFAULT_AUDIT_LIMITS.lineRecords);
  log(
    `4. audit hash: ${results.auditHash.fields} fields, ` +
      `${(results.auditHash.bytes / 1024 / 1024).toFixed(1)} MiB; every line checked once per ` +
      `~${results.lineRotationCalls} calls (${indexed} indexed records / ` +
      `${DEFAULT_AUDIT_LIMITS.lineRecords} per call)`,
  );

  log('\n' + JSON.stringify(results, null, 2));
  pinger.disconnect();
} finally {
  loader.disconnect();
  redis.disconnect();
  await server.stop();
}
