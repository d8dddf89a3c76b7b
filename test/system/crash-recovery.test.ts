/**
 * Crash recovery, end to end, with real processes: the built service
 * (`node <build>/src/main.js`), a redis-server of this file's own (AOF,
 * appendfsync always) that can be killed and restarted, BullMQ, and the test
 * ledger (testLedger/ledgerServer.ts) over real HTTP. No mocks, no fake timers.
 *
 *  1. SIGKILL of the service in the middle of a burst of commits, restart:
 *     every acknowledged commit settles, the ledger takes each draw exactly
 *     once in effect, the books add up (CONTRACT.md invariants 3 to 5).
 *  2. SIGKILL of redis-server mid-load, restart with its AOF: no acknowledged
 *     reserve or commit is lost, the service recovers by itself, everything
 *     settles exactly once in effect.
 *  3. ROLE=api and ROLE=worker as two processes, only the worker killed.
 *
 * Every process started here (services by process group, redis-server, the
 * ledger) is stopped in afterAll/finally, also when a test fails.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLedgerServer, type LedgerServer } from '../../testLedger/ledgerServer.js';
import { readAllRecords, readRecord } from '../../src/redis/storedRecords.js';
import { createKeys, type Keys } from '../../src/redis/keys.js';
import { freePort, startRedisServer, type RedisServerHandle } from '../../src/redis/redisServer.js';
import { booksOf, DRAWN_STATES, lineBooks } from '../support/books.js';
import { apiKeysEnv, request, type HttpAnswer, type HttpOptions } from '../support/http.js';
import {
  buildService,
  killAllServices,
  killService,
  notable,
  spawnService,
  waitServiceReady,
  type ServiceBuild,
  type ServiceProcess,
} from '../support/serviceProcess.js';
import { sleep, waitFor } from '../support/wait.js';

const ADMIN_KEY = 'crash-admin-key-0001';
const CLIENT_KEY = 'crash-client-key-0001';
const SECRET = 'crash-recovery-settlement-secret';
/** How long everything may take to settle after a crash. */
const SETTLE_DEADLINE_MS = 25_000;

let seq = 0;
const uid = (p: string) => `${p}-${process.pid}-${Date.now().toString(36)}-${(seq++).toString(36)}`;

// ---------------------------------------------------------------------------
// Service processes (test/support/serviceProcess.ts) and HTTP
// ---------------------------------------------------------------------------

let build: ServiceBuild;
const startProcess = (name: string, env: Record<string, string>): ServiceProcess =>
  spawnService(build.entry, env, name);

function countLog(svcs: ServiceProcess[], msg: RegExp): number {
  let n = 0;
  for (const s of svcs) for (const l of s.lines) if (msg.test(l)) n++;
  return n;
}

type Answer = HttpAnswer;

const http = (
  base: string,
  method: string,
  path: string,
  body?: unknown,
  opts: Omit<HttpOptions, 'body'> = {},
): Promise<Answer> => request(base, method, path, { key: CLIENT_KEY, timeoutMs: 10_000, ...opts, body });

/** Waits until the worker-only process says it started (it has no HTTP listener). */
async function waitStarted(svc: ServiceProcess, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    `${svc.name} "quota-allocator started"`,
    async () => {
      if (svc.child.exitCode !== null || svc.child.signalCode !== null) throw new Error(`${svc.name} exited early`);
      return svc.lines.some((l) => l.includes('"quota-allocator started"'));
    },
    { timeoutMs, explain: () => notable(svc) },
  );
}

/** Runs fn over items with at most `limit` in flight; stops taking new items once stop() is true. */
async function pool<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  stop: () => boolean = () => false,
): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: limit }, async () => {
    while (next < items.length && !stop()) {
      const item = items[next++]!;
      await fn(item);
    }
  });
  await Promise.all(runners);
}

// ---------------------------------------------------------------------------
// Product setup and the books
// ---------------------------------------------------------------------------

const CUSTOMERS = 20;
const customerOf = (i: number) => `c${i % CUSTOMERS}`;
const amountOf = (i: number) => 100 + ((i * 37) % 97);

async function setupProduct(base: string, productId: string): Promise<void> {
  const put = await http(base, 'PUT', `/v1/products/${productId}`, { capacity: 1_000_000_000_000 }, { key: ADMIN_KEY });
  expect(put.status, JSON.stringify(put.body)).toBe(201);
  const ndjson =
    Array.from({ length: CUSTOMERS }, (_, i) => JSON.stringify({ customerId: `c${i}`, limit: 1_000_000_000 })).join(
      '\n',
    ) + '\n';
  const bulk = await http(base, 'POST', `/v1/products/${productId}/customers:bulk`, ndjson, {
    key: ADMIN_KEY,
    contentType: 'application/x-ndjson',
  });
  expect(bulk.status, JSON.stringify(bulk.body)).toBe(200);
  expect(bulk.body.upserted).toBe(CUSTOMERS);
}

interface RecordRow {
  reservationId: string;
  customerId: string;
  status: string;
  amount: number;
  committedAmount: number;
}

/** Every reservation record of a product, read straight from Redis (the audit's source). */
async function readRecords(redisUrl: string, keys: Keys, productId: string): Promise<Map<string, RecordRow>> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  redis.on('error', () => {});
  try {
    const out = new Map<string, RecordRow>();
    for (const h of await readAllRecords(redis, keys, productId)) {
      const reservationId = h.reservationId ?? '';
      out.set(reservationId, {
        reservationId,
        customerId: h.customerId ?? '',
        status: h.status ?? '',
        amount: Number(h.amount ?? 0),
        committedAmount: Number(h.committedAmount ?? 0),
      });
    }
    return out;
  } finally {
    redis.disconnect();
  }
}

async function zcards(redisUrl: string, keys: Keys, productId: string): Promise<Record<string, number>> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  redis.on('error', () => {});
  try {
    const out: Record<string, number> = {};
    for (const s of ['held', 'committed', 'settled', 'reversed', 'settlement_unknown'] as const)
      out[s] = await redis.zcard(keys.status(productId, s));
    return out;
  } finally {
    redis.disconnect();
  }
}

/** How many `-> settled` transitions each reservation has in the product's audit stream. */
async function settledTransitions(redisUrl: string, keys: Keys, productId: string): Promise<Map<string, number>> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  redis.on('error', () => {});
  try {
    const counts = new Map<string, number>();
    let start = '-';
    for (;;) {
      const batch = (await redis.xrange(keys.events(productId), start, '+', 'COUNT', 5000)) as Array<
        [string, string[]]
      >;
      for (const [, fields] of batch) {
        const f: Record<string, string> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
        if (f.to === 'settled' && f.reservationId) counts.set(f.reservationId, (counts.get(f.reservationId) ?? 0) + 1);
      }
      if (batch.length < 5000) break;
      start = `(${batch[batch.length - 1]![0]}`;
    }
    return counts;
  } finally {
    redis.disconnect();
  }
}

/** Waits until no reservation of the product is committed (or unknown), with diagnostics on timeout. */
async function waitAllSettled(
  redisUrl: string,
  keys: Keys,
  productId: string,
  svcs: ServiceProcess[],
): Promise<number> {
  const started = Date.now();
  await waitFor(
    `every committed reservation of ${productId} to settle`,
    async () => {
      const z = await zcards(redisUrl, keys, productId);
      return z.committed === 0 && z.settlement_unknown === 0;
    },
    { timeoutMs: SETTLE_DEADLINE_MS, explain: () => 'see the diagnostics below' },
  ).catch(async (err: Error) => {
    throw new Error(
      `${err.message}\n${await stuckReport(redisUrl, keys, productId)}\n${svcs.map((s) => notable(s)).join('\n')}`,
    );
  });
  return Date.now() - started;
}

/** The reservations still committed/unknown, with their attempts, last error and BullMQ job state. */
async function stuckReport(redisUrl: string, keys: Keys, productId: string): Promise<string> {
  const records = await readRecords(redisUrl, keys, productId).catch(() => new Map<string, RecordRow>());
  const stuck = [...records.values()].filter((r) => r.status === 'committed' || r.status === 'settlement_unknown');
  const queue = new Queue('settlement', {
    connection: { host: '127.0.0.1', port: Number(new URL(redisUrl).port) },
    prefix: keys.queuePrefix(),
  });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  redis.on('error', () => {});
  try {
    const rows: string[] = [];
    for (const r of stuck.slice(0, 15)) {
      const job = await queue.getJob(r.reservationId);
      const state = job ? await job.getState() : 'no job';
      const h = (await readRecord(redis, keys, productId, r.reservationId)) ?? {};
      rows.push(
        `  ${r.reservationId} ${r.status} attempts=${h.attempts ?? 0} lastError=${h.lastError ?? ''} ` +
          `job=${state} jobAttempts=${job?.attemptsMade ?? '-'} failedReason=${job?.failedReason ?? ''}`,
      );
    }
    const counts = await queue.getJobCounts();
    return `stuck reservations: ${stuck.length}; settlement queue counts ${JSON.stringify(counts)}\n${rows.join('\n')}`;
  } finally {
    await queue.close().catch(() => {});
    redis.disconnect();
  }
}

interface BooksReport {
  records: number;
  byStatus: Record<string, number>;
  committedRecords: RecordRow[];
  applied: number;
  deliveries: number;
  duplicates: number;
}

/**
 * The books once the dust has settled: pool and line counters equal a
 * recomputation from the reservation records (invariant 3); every committed
 * reservation is settled, in the ledger exactly once with its amount
 * (invariant 5) and has exactly one `settled` transition (invariant 4).
 */
async function checkBooks(
  base: string,
  redisUrl: string,
  keys: Keys,
  ledger: LedgerServer,
  productId: string,
): Promise<BooksReport> {
  const records = await readRecords(redisUrl, keys, productId);
  const rows = [...records.values()];
  const { byStatus } = booksOf(rows);
  const committedRecords = rows.filter((r) => DRAWN_STATES.has(r.status) || r.status === 'reversed');

  // Nothing is left in flight and nothing was reversed or given up on.
  expect(byStatus.committed ?? 0, 'reservations still committed').toBe(0);
  expect(byStatus.settlement_unknown ?? 0, 'reservations in settlement_unknown').toBe(0);
  expect(byStatus.reversed ?? 0, 'reservations reversed (the ledger rejects nothing here)').toBe(0);

  // Pool counters vs. a recomputation from the records.
  const books = booksOf(rows);
  const expected = { held: books.held, committed: books.committed, settled: books.settled };
  const poolAnswer = await http(base, 'GET', `/v1/products/${productId}`);
  expect(poolAnswer.status).toBe(200);
  expect(
    { held: poolAnswer.body.held, committed: poolAnswer.body.committed, settled: poolAnswer.body.settled },
    'pool counters vs. the records',
  ).toEqual(expected);
  expect(poolAnswer.body.settled, 'pool settled == sum of committed amounts').toBe(poolAnswer.body.committed);

  // Line counters vs. the records.
  for (let i = 0; i < CUSTOMERS; i++) {
    const c = `c${i}`;
    const line = await http(base, 'GET', `/v1/products/${productId}/customers/${c}`);
    expect(line.status).toBe(200);
    const mine = lineBooks(books, c); // no repayments here: drawn is every committed amount
    expect(
      { held: line.body.held, drawn: line.body.drawn, settling: line.body.settling },
      `line ${c} counters vs. the records`,
    ).toEqual({
      held: mine.held,
      drawn: mine.committed,
      settling: mine.settling,
    });
  }

  // The ledger: exactly the settled reservations, each once, each with its committed amount.
  const entries = [...ledger.deliveries().values()].filter((e) => e.body.productId === productId);
  const rejected = [...ledger.rejections().values()].filter((e) => e.body.productId === productId);
  expect(rejected.length, 'ledger rejections').toBe(0);
  const settledIds = rows
    .filter((r) => r.status === 'settled')
    .map((r) => r.reservationId)
    .sort();
  expect(entries.map((e) => e.reservationId).sort(), 'ledger effects == settled reservations').toEqual(settledIds);
  for (const e of entries)
    expect(e.body.amount, `ledger amount of ${e.reservationId}`).toBe(records.get(e.reservationId)!.committedAmount);
  expect(entries.length, 'ledger applied == number of committed reservations').toBe(committedRecords.length);

  // Each reservation moved to settled exactly once (audit stream).
  const transitions = await settledTransitions(redisUrl, keys, productId);
  const twice = [...transitions.entries()].filter(([, n]) => n !== 1);
  expect(twice, 'reservations with more than one -> settled transition').toEqual([]);
  expect([...transitions.keys()].sort(), 'settled transitions == settled reservations').toEqual(settledIds);

  const deliveries = entries.reduce((a, e) => a + e.deliveries, 0);
  return {
    records: rows.length,
    byStatus,
    committedRecords,
    applied: entries.length,
    deliveries,
    duplicates: deliveries - entries.length,
  };
}

// ---------------------------------------------------------------------------
// The client's side of reserve + commit
// ---------------------------------------------------------------------------

interface ClientLog {
  /** Reserves answered 201: reservationId -> amount. */
  reserved: Map<string, { amount: number; customerId: string; key: string }>;
  /** Commits answered 200: reservationId -> committed amount. */
  committed: Map<string, number>;
  statuses: Map<string, number>;
  networkErrors: number;
  slowestMs: number;
  /** Answers other than the expected success or 503 (e.g. 500). */
  unexpected: string[];
}

const newClientLog = (): ClientLog => ({
  reserved: new Map(),
  committed: new Map(),
  statuses: new Map(),
  networkErrors: 0,
  slowestMs: 0,
  unexpected: [],
});

function note(log: ClientLog, op: string, a: Answer): void {
  const k = `${op} ${a.status}`;
  log.statuses.set(k, (log.statuses.get(k) ?? 0) + 1);
  log.slowestMs = Math.max(log.slowestMs, a.ms);
}

async function reserve(
  base: string,
  productId: string,
  i: number,
  log: ClientLog,
  key = uid('k'),
): Promise<{ answer?: Answer; reservationId?: string }> {
  const customerId = customerOf(i);
  const amount = amountOf(i);
  let answer: Answer;
  try {
    answer = await http(
      base,
      'POST',
      `/v1/products/${productId}/reservations`,
      { customerId, amount },
      { headers: { 'idempotency-key': key } },
    );
  } catch {
    log.networkErrors++;
    return {};
  }
  note(log, 'reserve', answer);
  if (answer.status === 201) {
    const reservationId = answer.body.reservationId as string;
    log.reserved.set(reservationId, { amount, customerId, key });
    return { answer, reservationId };
  }
  if (answer.status !== 503) log.unexpected.push(`reserve ${answer.status} ${JSON.stringify(answer.body)}`);
  return { answer };
}

async function commit(
  base: string,
  productId: string,
  reservationId: string,
  log: ClientLog,
): Promise<Answer | undefined> {
  let answer: Answer;
  try {
    answer = await http(base, 'POST', `/v1/products/${productId}/reservations/${reservationId}/commit`, {});
  } catch {
    log.networkErrors++;
    return undefined;
  }
  note(log, 'commit', answer);
  if (answer.status === 200) {
    log.committed.set(reservationId, answer.body.committedAmount as number);
    if (answer.body.committedAmount !== log.reserved.get(reservationId)?.amount) {
      log.unexpected.push(`commit of ${reservationId} answered committedAmount ${answer.body.committedAmount}`);
    }
  } else if (answer.status !== 503) log.unexpected.push(`commit ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer;
}

/** After a crash a client retries the commits it never heard back about (commit is idempotent by state). */
async function retryUnansweredCommits(base: string, productId: string, log: ClientLog): Promise<number> {
  const pending = [...log.reserved.keys()].filter((id) => !log.committed.has(id));
  await pool(pending, 16, async (id) => {
    for (let attempt = 0; attempt < 40 && !log.committed.has(id); attempt++) {
      const a = await commit(base, productId, id, log);
      if (a && a.status !== 503) break;
      await sleep(150);
    }
  });
  return pending.length;
}

/** Every acknowledged reserve and commit, as the API shows it now. */
async function checkAcknowledged(base: string, productId: string, log: ClientLog): Promise<void> {
  const problems: string[] = [];
  await pool([...log.reserved.entries()], 16, async ([id, r]) => {
    const a = await http(base, 'GET', `/v1/products/${productId}/reservations/${id}`);
    if (a.status !== 200)
      return void problems.push(`${id}: reserve answered 201 but GET answers ${a.status} ${JSON.stringify(a.body)}`);
    if (a.body.amount !== r.amount) problems.push(`${id}: amount ${a.body.amount}, reserved ${r.amount}`);
    const acked = log.committed.get(id);
    if (acked !== undefined) {
      if (a.body.status !== 'settled')
        problems.push(
          `${id}: commit answered 200 but status is ${a.body.status} ` +
            `(attempts ${a.body.attempts}, lastError ${a.body.lastError})`,
        );
      if (a.body.committedAmount !== acked)
        problems.push(`${id}: committedAmount ${a.body.committedAmount}, acknowledged ${acked}`);
    } else if (!['held', 'settled'].includes(a.body.status))
      problems.push(`${id}: reserved, commit never acknowledged, status ${a.body.status}`);
  });
  expect(problems, 'acknowledged reserves/commits vs. what the service shows').toEqual([]);
}

// ---------------------------------------------------------------------------

describe('crash recovery (real processes, Redis with AOF, BullMQ, ledger over HTTP)', () => {
  let redisDir: string;
  let redisPort: number;
  let redisServer: RedisServerHandle | undefined;
  let ledger: LedgerServer;
  const redisUrl = () => `redis://127.0.0.1:${redisPort}`;

  const baseEnv = (prefix: string, extra: Record<string, string> = {}): Record<string, string> => ({
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    REDIS_URL: redisUrl(),
    QUOTA_API_KEYS: apiKeysEnv({ admin: ADMIN_KEY, client: CLIENT_KEY }),
    KEY_PREFIX: prefix,
    SETTLEMENT_URL: ledger.url,
    SETTLEMENT_SECRET: SECRET,
    SETTLEMENT_TIMEOUT_MS: '3000',
    SETTLEMENT_ATTEMPTS: '8',
    SETTLEMENT_BACKOFF_MS: '100',
    SETTLEMENT_LOCK_MS: '2000',
    RELAY_INTERVAL_MS: '300',
    RELAY_GRACE_MS: '500',
    LOG_LEVEL: 'info',
    ...extra,
  });

  beforeAll(async () => {
    const t0 = performance.now();
    build = await buildService('crash-recovery');
    console.log(`[crash] built in ${Math.round(performance.now() - t0)} ms`);

    redisDir = mkdtempSync(join(tmpdir(), 'qa-crash-redis-'));
    redisPort = await freePort();
    redisServer = await startRedisServer({ appendOnly: true, port: redisPort, dir: redisDir });
    ledger = createLedgerServer({ secret: SECRET, latencyMs: 100 });
    await ledger.start();
  }, 120_000);

  afterAll(async () => {
    await killAllServices();
    await ledger?.stop().catch(() => {});
    await redisServer?.stop().catch(() => {});
    if (redisDir) rmSync(redisDir, { recursive: true, force: true });
    build?.remove();
  }, 30_000);

  it(
    'SIGKILL of the service mid-burst: every acknowledged commit ' + 'settles, once in effect, and the books add up',
    async () => {
      // Some answers are held back after the ledger has applied the draw: a worker
      // killed then leaves an effect the service has not recorded (redelivered later).
      ledger.control({ latencyMs: 120, hangAfterRecordMs: 800, hangRate: 0.15 });
      const prefix = uid('crash1');
      const keys = createKeys(prefix);
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const env = baseEnv(prefix, { PORT: String(port), SETTLEMENT_CONCURRENCY: '8' });
      const first = startProcess('service#1', env);
      let second: ServiceProcess | undefined;
      try {
        await waitServiceReady(base, first);
        const productId = uid('p');
        await setupProduct(base, productId);

        const BURST = 300;
        const KILL_AT = 240; // acknowledged commits: kill while the rest of the burst is still in flight
        const log = newClientLog();
        let killed = false;
        const t0 = performance.now();
        await pool(
          Array.from({ length: BURST }, (_, i) => i),
          32,
          async (i) => {
            const { reservationId } = await reserve(base, productId, i, log);
            if (!reservationId || killed) return;
            const a = await commit(base, productId, reservationId, log);
            if (a?.status === 200 && log.committed.size >= KILL_AT && !killed) {
              killed = true;
              void killService(first);
            }
          },
          () => killed,
        );
        const burstMs = performance.now() - t0;
        if (!killed) void killService(first);
        const exit = await first.exited;
        expect(exit.signal).toBe('SIGKILL');
        const atKill = await zcards(redisUrl(), keys, productId);
        const ackedBeforeKill = log.committed.size;
        await sleep(1_000); // answers the ledger was holding back go nowhere now
        ledger.control({ hangAfterRecordMs: 0 });
        const ledgerAtKill = [...ledger.deliveries().values()].filter((e) => e.body.productId === productId).length;
        console.log(
          `[crash] #1 burst ${Math.round(burstMs)} ms: ${log.reserved.size} ` +
            `reserves and ${log.committed.size} commits acknowledged, ` +
            (`${log.networkErrors} requests cut off by the kill; at the kill Redis had ` +
              `${JSON.stringify(atKill)}, ledger had applied ${ledgerAtKill}`),
        );
        expect(atKill.committed, 'settlements pending at the kill').toBeGreaterThan(50);

        // Restart with the same env and the same Redis.
        second = startProcess('service#2', env);
        const restartedAt = performance.now();
        await waitServiceReady(base, second);
        const readyMs = performance.now() - restartedAt;
        const retried = await retryUnansweredCommits(base, productId, log);
        await waitAllSettled(redisUrl(), keys, productId, [first, second]);
        console.log(
          `[crash] #1 restarted, ready in ${Math.round(readyMs)} ms; client ` +
            `retried ${retried} commits it never heard back about; ` +
            `all settled ${Math.round(performance.now() - restartedAt)} ms after the restart`,
        );

        await checkAcknowledged(base, productId, log);
        expect(log.unexpected, 'answers other than success / 503').toEqual([]);
        const books = await checkBooks(base, redisUrl(), keys, ledger, productId);
        const committedIds = new Set(books.committedRecords.map((r) => r.reservationId));
        expect(
          [...log.committed.keys()].filter((id) => !committedIds.has(id)),
          'acknowledged commits missing after the restart',
        ).toEqual([]);
        expect(books.applied, 'ledger effects == committed reservations').toBe(committedIds.size);
        console.log(
          `[crash] #1 figures: ${ackedBeforeKill} commits acknowledged before the kill ` +
            `(+${log.committed.size - ackedBeforeKill} on retry after it), ` +
            (`${atKill.committed} still committed at the kill, ledger had applied ` +
              `${ledgerAtKill} (Redis: ${atKill.settled} settled); `) +
            (`records ${JSON.stringify(books.byStatus)}; ledger: ${books.applied} ` +
              `effects applied, ${books.deliveries} deliveries reached it `) +
            (`(${books.duplicates} duplicates absorbed by Idempotency-Key); relay re-enqueued ` +
              `${countLog([second], /outbox relay: committed reservation had no live settlement job/)}`),
        );
      } catch (err) {
        console.error(notable(first));
        if (second) console.error(notable(second));
        throw err;
      } finally {
        await killService(first);
        if (second) await killService(second);
      }
    },
    60_000,
  );

  it(
    'redis-server SIGKILLed mid-load and restarted with its AOF: no acknowledged ' +
      'write lost, the service recovers by itself, everything settles once',
    async () => {
      ledger.control({ latencyMs: 20 });
      const prefix = uid('crash2');
      const keys = createKeys(prefix);
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const svc = startProcess('service', baseEnv(prefix, { PORT: String(port) }));
      try {
        await waitServiceReady(base, svc);
        const productId = uid('p');
        await setupProduct(base, productId);

        const log = newClientLog();
        let stop = false;
        let i = 0;
        /** One client: reserve (retrying a 503 with the same Idempotency-Key), then commit (retrying a 503). */
        const client = async () => {
          while (!stop) {
            const n = i++;
            const key = uid('k');
            let reservationId: string | undefined;
            for (let attempt = 0; attempt < 40 && !reservationId; attempt++) {
              const r = await reserve(base, productId, n, log, key);
              reservationId = r.reservationId;
              if (r.answer && r.answer.status !== 503) break;
              if (!reservationId) await sleep(100);
            }
            if (!reservationId) continue;
            for (let attempt = 0; attempt < 40; attempt++) {
              const a = await commit(base, productId, reservationId, log);
              if (a && a.status !== 503) break;
              await sleep(100);
            }
          }
        };
        const clients = Array.from({ length: 16 }, () => client());

        await sleep(1_500);
        const before = { reserved: log.reserved.size, committed: log.committed.size };
        const killedAt = performance.now();
        process.kill(redisServer!.process.pid!, 'SIGKILL');
        await new Promise<void>((r) =>
          redisServer!.process.exitCode !== null || redisServer!.process.signalCode !== null
            ? r()
            : redisServer!.process.once('exit', () => r()),
        );
        await redisServer!.stop(); // already dead: only forgets its exit hook
        await sleep(500);
        redisServer = await startRedisServer({ appendOnly: true, port: redisPort, dir: redisDir });
        const restartedAt = performance.now();
        const outage = { killedAt, restartedAt };
        // Keep the load on while the service reconnects, then stop it.
        await sleep(2_500);
        stop = true;
        await Promise.all(clients);
        const s503 = [...log.statuses.entries()].filter(([k]) => k.endsWith(' 503')).reduce((a, [, n]) => a + n, 0);
        console.log(
          `[crash] #2 load: ${log.reserved.size} reserves and ${log.committed.size} commits ` +
            `acknowledged (${before.reserved}/${before.committed} before the kill); ` +
            (`Redis down for ${Math.round(outage.restartedAt - outage.killedAt)} ms; ` +
              `answers ${JSON.stringify(Object.fromEntries(log.statuses))}; `) +
            `${s503} answered 503, ${log.networkErrors} network errors, slowest answer ${Math.round(log.slowestMs)} ms`,
        );

        // The service recovers by itself: ready again, and serving.
        expect(svc.child.exitCode, 'the service process is still running').toBeNull();
        await waitServiceReady(base, svc, 15_000);
        const probe = await reserve(base, productId, 999_999, log);
        expect(probe.answer?.status, 'a reserve after the restart').toBe(201);
        expect((await commit(base, productId, probe.reservationId!, log))?.status, 'a commit after the restart').toBe(
          200,
        );
        await retryUnansweredCommits(base, productId, log);

        expect(log.unexpected, 'answers other than success / 503').toEqual([]);
        expect(log.networkErrors, 'requests left without an HTTP answer').toBe(0);
        const settleMs = await waitAllSettled(redisUrl(), keys, productId, [svc]);
        await checkAcknowledged(base, productId, log);
        const books = await checkBooks(base, redisUrl(), keys, ledger, productId);
        const acknowledgedMissing = [...log.committed.keys()].filter(
          (id) => !books.committedRecords.some((r) => r.reservationId === id),
        );
        expect(acknowledgedMissing, 'acknowledged commits missing after the restart').toEqual([]);
        console.log(
          `[crash] #2 figures: all settled ${settleMs} ms after the checks ` +
            `began; records ${JSON.stringify(books.byStatus)}; ` +
            (`ledger: ${books.applied} effects applied, ${books.deliveries} ` +
              `deliveries (${books.duplicates} duplicates); `) +
            (`feed add failures logged ${countLog([svc], /settlement feed: adding jobs failed/)}, relay re-enqueued ` +
              `${countLog([svc], /outbox relay: committed reservation had no live settlement job/)}`),
        );
      } catch (err) {
        console.error(notable(svc));
        throw err;
      } finally {
        await killService(svc);
      }
    },
    60_000,
  );

  it(
    'ROLE=api + ROLE=worker: SIGKILL of the worker only; the API keeps ' +
      'serving, every commit settles once after the worker restarts',
    async () => {
      ledger.control({ latencyMs: 120 });
      const prefix = uid('crash3');
      const keys = createKeys(prefix);
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const api = startProcess('api', baseEnv(prefix, { PORT: String(port), ROLE: 'api' }));
      const workerEnv = baseEnv(prefix, { ROLE: 'worker', PORT: '0', SETTLEMENT_CONCURRENCY: '8' });
      const worker1 = startProcess('worker#1', workerEnv);
      let worker2: ServiceProcess | undefined;
      try {
        await Promise.all([waitServiceReady(base, api), waitStarted(worker1)]);
        const productId = uid('p');
        await setupProduct(base, productId);

        const BURST = 300;
        const log = newClientLog();
        let killedAt: number | undefined;
        const t0 = performance.now();
        const applied = () => [...ledger.deliveries().values()].filter((e) => e.body.productId === productId).length;
        await pool(
          Array.from({ length: BURST }, (_, i) => i),
          32,
          async (i) => {
            const { reservationId } = await reserve(base, productId, i, log);
            if (!reservationId) return;
            await commit(base, productId, reservationId, log);
            if (killedAt === undefined && log.committed.size >= 150) {
              killedAt = performance.now();
              void killService(worker1);
            }
          },
        );
        const burstMs = performance.now() - t0;
        await worker1.exited;
        const atBurstEnd = await zcards(redisUrl(), keys, productId);
        const appliedWhileDown = applied();
        // The API alone keeps taking commits; they wait in the queue / outbox.
        await sleep(1_000);
        const appliedAfterWait = applied();
        expect(log.committed.size, 'every commit of the burst answered 200 by the API').toBe(BURST);
        worker2 = startProcess('worker#2', workerEnv);
        await waitStarted(worker2);
        const settleMs = await waitAllSettled(redisUrl(), keys, productId, [api, worker1, worker2]);

        await checkAcknowledged(base, productId, log);
        expect(log.unexpected, 'answers other than success').toEqual([]);
        const books = await checkBooks(base, redisUrl(), keys, ledger, productId);
        expect(books.applied).toBe(BURST);
        console.log(
          `[crash] #3 figures: ${BURST} commits acknowledged by the API in ${Math.round(burstMs)} ms (worker ` +
            `killed at commit 150); at the end of the burst (worker dead) Redis had ${JSON.stringify(atBurstEnd)}; ` +
            (`ledger had ${appliedWhileDown} applied then, ${appliedAfterWait} a second ` +
              `later (a killed worker's in-flight POSTs may still land); `) +
            (`restarted worker settled the rest in ${settleMs} ms; ledger: ${books.applied} ` +
              `effects, ${books.deliveries} deliveries (${books.duplicates} duplicates)`),
        );
      } catch (err) {
        for (const s of [api, worker1, worker2]) if (s) console.error(notable(s));
        throw err;
      } finally {
        await killService(api);
        await killService(worker1);
        if (worker2) await killService(worker2);
      }
    },
    60_000,
  );
});
