/**
 * The continuous invariant audit (src/audit/invariantAudit.ts,
 * lua/audit-product-11.lua): zero violations after realistic and concurrent
 * flows (reserves, partial commits, releases, expiries, settlement settled /
 * reversed / unknown + resolve, repayments), even while the load runs; a
 * planted inconsistency reported with the right product and difference, by
 * the service's own scheduled job, within one audit period; the incremental
 * settled checkpoint (paging, exact accumulation, rebuild after a moved
 * checkpoint); more live records than one call reads (a pass over several
 * calls); the rotating line window. The pass itself, under load and at scale:
 * test/engine/audit-pass.test.ts.
 * Real Redis, real engine; the service test is the whole service over HTTP.
 */
import { readLine } from '../../src/redis/storedRecords.js';
import { addToLineField, deleteLine, setRecordField } from '../support/tamper.js';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AuditStep } from '../../src/engine/auditStep.js';
import { createInvariantAudit, type AuditLimits, type ProductAudit } from '../../src/audit/invariantAudit.js';
import { createMetrics } from '../../src/metrics.js';
import { createKeys } from '../../src/redis/keys.js';
import { createEngineContext, uniqueId, type EngineContext } from '../support/engineContext.js';
import { seededRandom } from '../../src/seededRandom.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import { sleep, waitUntil } from '../support/wait.js';
import { bullmqConnectionsForUrl } from '../../src/redis/connection.js';

let ctx: EngineContext;
beforeAll(async () => {
  ctx = await createEngineContext();
});
afterAll(() => ctx.close());

/** An audit on the test's engine, with its log lines and gauge captured. */
function auditFor(limits: Partial<AuditLimits> = {}) {
  const logs: Array<Record<string, any>> = [];
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
        done();
      },
    }),
  );
  const metrics = createMetrics();
  const audit = createInvariantAudit({
    bullmq: bullmqConnectionsForUrl(inject('redisUrl')), // the job is not started: auditOnce() is called directly
    redis: ctx.redis,
    keys: ctx.keys,
    engine: ctx.engine,
    logger,
    metrics,
    intervalMs: 60_000,
    limits,
  });
  const gauge = async (productId: string) => {
    const m = await metrics.registry.getSingleMetric('quota_audit_violations')!.get();
    return m.values.find((v) => v.labels.product === productId)?.value;
  };
  const product = async (productId: string): Promise<ProductAudit> => {
    const report = await audit.auditOnce();
    const found = report.products.find((p) => p.productId === productId);
    expect(found, `report names ${productId}`).toBeDefined();
    return found!;
  };
  return { audit, logs, metrics, gauge, product };
}

let seq = 0;
async function makeProduct(customers: string[], capacity = 10_000_000, limit = 1_000_000): Promise<string> {
  const p = uniqueId('p');
  expect((await ctx.engine.upsertProduct(p, { capacity, holdTtlSeconds: 600 }, 'put')).ok).toBe(true);
  for (let i = 0; i < customers.length; i += 500) {
    const batch = customers
      .slice(i, i + 500)
      .map((customerId) => ({ customerId, limit, status: 'active' as const, statusReason: null, tier: null }));
    expect((await ctx.engine.upsertLines(p, batch)).ok).toBe(true);
  }
  return p;
}

async function reserve(p: string, customerId: string, amount: number, ttlSeconds?: number): Promise<string> {
  const reservationId = `r${++seq}-${uniqueId('x')}`;
  const r = await ctx.engine.reserve({
    productId: p,
    customerId,
    reservationId,
    amount,
    ttlSeconds,
    idempotencyKey: uniqueId('k'),
    fingerprint: 'f',
  });
  expect(r.ok, JSON.stringify(r)).toBe(true);
  return reservationId;
}

async function commit(p: string, id: string, amount?: number) {
  const c = await ctx.engine.commit(p, id, amount);
  expect(c.ok, JSON.stringify(c)).toBe(true);
}

async function settle(p: string, id: string, outcome: 'settled' | 'reversed' | 'unknown') {
  const s = await ctx.engine.recordSettlement(p, id, outcome, outcome === 'settled' ? '' : 'test');
  expect(s.ok, JSON.stringify(s)).toBe(true);
}

async function repay(p: string, customerId: string, amount: number) {
  const r = await ctx.engine.repay({
    productId: p,
    customerId,
    amount,
    idempotencyKey: uniqueId('k'),
    fingerprint: 'f',
  });
  expect(r.ok, JSON.stringify(r)).toBe(true);
}

/** Reserve, commit (possibly partly) and settle one draw. */
async function draw(
  p: string,
  customerId: string,
  amount: number,
  commitAmount = amount,
  outcome: 'settled' | 'reversed' | 'unknown' = 'settled',
) {
  const id = await reserve(p, customerId, amount);
  await commit(p, id, commitAmount);
  await settle(p, id, outcome);
  return id;
}

/** Every kind of record and counter move, on a few customers. */
async function realisticFlow(p: string, customers: string[]) {
  const [a, b, c, d] = customers as [string, string, string, string];
  await draw(p, a, 1_000); // settled
  await draw(p, a, 800, 500); // partial commit, settled
  await draw(p, b, 700, 700, 'reversed'); // rejected by the ledger
  const unknownSettled = await draw(p, b, 600, 600, 'unknown');
  expect((await ctx.engine.recordSettlement(p, unknownSettled, 'settled', 'operator', 'settlement_unknown')).ok).toBe(
    true,
  );
  const unknownReversed = await draw(p, c, 400, 300, 'unknown');
  expect((await ctx.engine.recordSettlement(p, unknownReversed, 'reversed', 'operator', 'settlement_unknown')).ok).toBe(
    true,
  );
  await draw(p, c, 900, 900, 'unknown'); // stays settlement_unknown
  await commit(p, await reserve(p, d, 250), 200); // stays committed
  await reserve(p, d, 120); // stays held
  const released = await reserve(p, a, 333);
  expect((await ctx.engine.release(p, released)).ok).toBe(true);
  await reserve(p, b, 444, 1); // expires
  await reserve(p, c, 555, 1); // expires
  // settled straight from unknown (the worker's late answer)
  await settle(p, await draw(p, d, 50, 50, 'unknown'), 'settled');
  await repay(p, a, 600); // a: 1,500 settled, drawn 900
  await repay(p, b, 100); // b: 600 settled, drawn 500
  await sleep(1_100);
  // One due hold reclaimed by the sweeper; the other left due (a script touching the product would reclaim it).
  expect((await ctx.engine.reclaimExpired(p, 1)).reclaimed).toBe(1);
}

describe('zero violations on consistent data', () => {
  it('after a realistic flow: every state, partial commits, settlement outcomes, repayments, expiries', async () => {
    const customers = ['c1', 'c2', 'c3', 'c4', 'c5'];
    const p = await makeProduct(customers);
    const { audit, gauge, logs, product } = auditFor();
    await realisticFlow(p, customers);

    const a = await product(p);
    expect(a).toMatchObject({ outcome: 'consistent', violations: 0, pool: [], lines: [], mismatchCount: 0 });
    expect(a.linesChecked).toBe(4); // c5 has no records: not in the per-customer index the lines are walked by
    expect(await gauge(p)).toBe(0);
    expect(logs.filter((l) => l.level >= 50)).toEqual([]);

    // The sums it compared are the pool's own, which the records explain.
    const pool = await ctx.redis.hgetall(ctx.keys.pool(p));
    const state = await ctx.redis.hgetall(ctx.keys.audit(p));
    expect(Number(state.settledSum)).toBe(Number(pool.settled));
    expect(Number(pool.settled)).toBe(1_000 + 500 + 600 + 50);
    expect(Number(pool.committed)).toBe(1_000 + 500 + 600 + 900 + 200 + 50);
    expect(Number(pool.held)).toBe(120 + 555); // one due hold not reclaimed yet still counts, consistently

    // More of the same, then the incremental run is still exact.
    await realisticFlow(p, customers);
    expect(await product(p)).toMatchObject({ outcome: 'consistent', violations: 0 });
    expect(audit.limits.settledBatch).toBeGreaterThan(0);
  });

  it.each([
    ['in one call (live records under the limit)', { settledBatch: 20, liveLimit: 10_000, lineWindow: 1_000 }],
    [
      'by passes of tiny steps (live records over the limit)',
      { settledBatch: 20, liveLimit: 3, lineWindow: 7, walkBatch: 4, eventBatch: 400, lineRecords: 30 },
    ],
  ])(
    'at every instant while concurrent reserves, commits, releases, settlements and repayments run: %s',
    async (_label, limits) => {
      const customers = Array.from({ length: 40 }, (_, i) => `c${i}`);
      const p = await makeProduct(customers, 2_000_000, 60_000);
      let running = true;
      const steps: AuditStep[] = [];
      const auditing = (async () => {
        while (running) {
          steps.push(await ctx.engine.auditProduct(p, limits));
          await sleep(2);
        }
      })();

      // The load runs until the audit has compared several times during it, however fast the machine is.
      const enoughCompared = () => {
        const checked = steps.filter((s) => s.kind === 'checked');
        return checked.length > 6 && (limits.liveLimit >= 10 || checked.filter((s) => s.pass !== null).length > 4);
      };
      const next = seededRandom(42);
      await Promise.all(
        Array.from({ length: 16 }, async (_, lane) => {
          for (let i = 0; i < 80 || (!enoughCompared() && i < 2_000); i++) {
            const customerId = customers[Math.floor(next() * customers.length)]!;
            const amount = 1 + Math.floor(next() * 5_000);
            const r = await ctx.engine.reserve({
              productId: p,
              customerId,
              reservationId: `L${lane}-${i}-${uniqueId('r')}`,
              amount,
              ttlSeconds: 1 + (i % 3),
              idempotencyKey: uniqueId('k'),
              fingerprint: 'f',
            });
            if (!r.ok) continue; // pool or line exhausted: fine
            const id = r.value.reservationId;
            const roll = next();
            if (roll < 0.15) continue; // left to expire
            if (roll < 0.3) {
              await ctx.engine.release(p, id);
              continue;
            }
            const c = await ctx.engine.commit(p, id, roll < 0.5 ? Math.max(1, Math.floor(amount / 2)) : undefined);
            if (!c.ok) continue;
            const outcome = next() < 0.75 ? 'settled' : next() < 0.5 ? 'reversed' : 'unknown';
            await ctx.engine.recordSettlement(p, id, outcome);
            if (outcome === 'unknown')
              await ctx.engine.recordSettlement(
                p,
                id,
                next() < 0.5 ? 'settled' : 'reversed',
                'op',
                'settlement_unknown',
              );
            if (outcome !== 'reversed' && next() < 0.5) {
              const line = await ctx.engine.readLine(p, customerId);
              const repayable = line.ok ? line.value.drawn - line.value.settling : 0;
              // Lanes race for the same lines: a refused repayment is fine, a granted one must be counted.
              if (repayable > 0)
                await ctx.engine.repay({
                  productId: p,
                  customerId,
                  amount: 1 + Math.floor(next() * repayable),
                  idempotencyKey: uniqueId('k'),
                  fingerprint: 'f',
                });
            }
          }
        }),
      );
      running = false;
      await auditing;
      await sleep(3_100); // every hold due (not reclaimed: the audit counts due holds as held, as the counters do)
      for (;;) {
        const s = await ctx.engine.auditProduct(p, limits);
        steps.push(s);
        if (s.kind === 'checked') break;
      }

      const checked = steps.filter((s): s is Extract<AuditStep, { kind: 'checked' }> => s.kind === 'checked');
      const passes = checked.filter((s) => s.pass !== null);
      console.log(
        `audit under load (${_label}): ${steps.length} steps, ${checked.length} compared ` +
          `(${passes.length} by a pass), ${steps.filter((s) => s.kind === 'behind').length} ` +
          `behind, ${steps.filter((s) => s.kind === 'pass_aborted').length} passes aborted`,
      );
      expect(checked.length).toBeGreaterThan(5);
      if (limits.liveLimit < 10) {
        // Passes that spanned many calls while the load ran, each exact (checked below).
        expect(passes.length).toBeGreaterThan(3);
        expect(Math.max(...passes.map((s) => s.pass!.calls))).toBeGreaterThan(5);
      }
      expect(steps.filter((s) => s.kind === 'pass_aborted')).toEqual([]);
      for (const s of checked) {
        expect(
          s.pool.filter((c) => c.expected !== c.actual),
          `pool at ${s.now}`,
        ).toEqual([]);
        expect(s.lines, `lines at ${s.now}`).toEqual([]);
        expect(s.mismatchCount).toBe(0);
      }
      const last = checked.at(-1)!;
      expect(last.pool.find((c) => c.field === 'settled')!.actual).toBeGreaterThan(0);
      const linesChecked = steps.reduce((n, s) => n + ('linesChecked' in s ? s.linesChecked : 0), 0);
      expect(linesChecked).toBeGreaterThan(customers.length); // every line, several times over

      const { product } = auditFor();
      expect(await product(p)).toMatchObject({ outcome: 'consistent', violations: 0 });
    },
  );
});

describe('planted inconsistencies', () => {
  it(
    'are reported with the product, the field and the difference, ' +
      'logged and counted; fixing them clears the gauge',
    async () => {
      const customers = ['c1', 'c2', 'c3', 'c4'];
      const p = await makeProduct(customers);
      const other = await makeProduct(customers);
      await realisticFlow(p, customers);
      await realisticFlow(other, customers);
      const { gauge, logs, product } = auditFor();
      expect(await product(p)).toMatchObject({ outcome: 'consistent' });

      await ctx.redis.hincrby(ctx.keys.pool(p), 'held', 7);
      await addToLineField(ctx.redis, ctx.keys, p, 'c2', 'drawn', -5);
      const a = await product(p);
      expect(a.outcome).toBe('violations');
      expect(a.violations).toBe(2);
      expect(a.pool).toEqual([{ field: 'held', expected: 120 + 555, actual: 120 + 555 + 7, difference: 7 }]);
      expect(a.lines).toEqual([{ customerId: 'c2', field: 'drawn', expected: 500, actual: 495 }]);
      expect(await gauge(p)).toBe(2);
      expect(await gauge(other)).toBe(0);

      const errors = logs.filter((l) => l.level === 50);
      expect(errors).toHaveLength(1);
      expect(errors[0]!.productId).toBe(p);
      expect(errors[0]!.msg).toContain(`product ${p}`);
      expect(errors[0]!.msg).toContain(`pool.held expected ${120 + 555} actual ${120 + 555 + 7} (+7)`);
      expect(errors[0]!.msg).toContain('line c2 drawn expected 500 actual 495 (-5)');

      await ctx.redis.hincrby(ctx.keys.pool(p), 'held', -7);
      await addToLineField(ctx.redis, ctx.keys, p, 'c2', 'drawn', 5);
      expect(await product(p)).toMatchObject({ outcome: 'consistent', violations: 0 });
      expect(await gauge(p)).toBe(0);
    },
  );

  it('settled and committed sums, a line with no record of it, and a record in the wrong status set', async () => {
    const p = await makeProduct(['c1', 'c2']);
    await draw(p, 'c1', 900);
    const { product } = auditFor();
    expect(await product(p)).toMatchObject({ outcome: 'consistent' });

    await ctx.redis.hincrby(ctx.keys.pool(p), 'settled', -900);
    await deleteLine(ctx.redis, ctx.keys, p, 'c1');
    // A settled record not yet folded in, whose record says otherwise: checked when folded in.
    const id2 = await draw(p, 'c2', 100);
    await setRecordField(ctx.redis, ctx.keys, p, id2, 'status', 'committed');
    await sleep(2);
    const a = await product(p);
    expect(a.pool).toEqual([{ field: 'settled', expected: 1_000, actual: 100, difference: -900 }]);
    // c2's line is read against its records: the tampered one now says committed, so c2 should be settling it.
    expect(a.lines).toEqual([
      { customerId: 'c1', field: 'exists', expected: 1, actual: 0 },
      { customerId: 'c2', field: 'settling', expected: 100, actual: 0 },
    ]);
    expect(a.mismatches).toEqual([{ reservationId: id2, set: 'settled', status: 'committed' }]);
    expect(a.violations).toBe(4);
  });
});

describe('the incremental settled checkpoint', () => {
  it(
    'pages with a small batch (BEHIND), then folds later ' + 'settles in exactly; lines agree with their records',
    async () => {
      const customers = ['c1', 'c2', 'c3'];
      const p = await makeProduct(customers);
      for (let i = 0; i < 10; i++) await draw(p, customers[i % 3]!, 100 + i);
      await sleep(2); // all scored before the audit's clock
      const limits = { settledBatch: 3, liveLimit: 100, lineWindow: 100 };

      const kinds: string[] = [];
      for (;;) {
        const s = await ctx.engine.auditProduct(p, limits);
        kinds.push(`${s.kind}:${s.kind === 'product_not_found' ? '' : s.settledCount}`);
        if (s.kind !== 'behind') break;
      }
      expect(kinds).toEqual(['behind:3', 'behind:6', 'behind:9', 'checked:10']);

      // Later settles: only the new ones are read, the sums stay exact.
      for (let i = 0; i < 7; i++) await draw(p, customers[i % 3]!, 1_000 + i);
      await repay(p, 'c1', 50);
      await sleep(2);
      const { product } = auditFor({ settledBatch: 3, maxCallsPerProduct: 10 });
      const a = await product(p);
      expect(a).toMatchObject({
        outcome: 'consistent',
        violations: 0,
        folded: 7,
        settledCount: 17,
        calls: 3,
        linesChecked: 3,
      });

      const state = await ctx.redis.hgetall(ctx.keys.audit(p));
      const pool = await ctx.redis.hgetall(ctx.keys.pool(p));
      expect(Number(state.settledSum)).toBe(Number(pool.settled));
      expect((await readLine(ctx.redis, ctx.keys, p, 'c1'))?.repaid).toBe('50');
      // A line's drawn that its records do not explain is found (the check can fail).
      await addToLineField(ctx.redis, ctx.keys, p, 'c3', 'drawn', 1);
      expect((await product(p)).lines).toEqual([
        { customerId: 'c3', field: 'drawn', expected: expect.any(Number), actual: expect.any(Number) },
      ]);
    },
  );

  it(
    'a run that cannot catch up says so and carries on next run; a ' +
      'settle in the same millisecond is still counted',
    async () => {
      const p = await makeProduct(['c1']);
      for (let i = 0; i < 12; i++) await draw(p, 'c1', 10 + i);
      await sleep(2);
      const { product, logs } = auditFor({ settledBatch: 2, maxCallsPerProduct: 3 });
      const first = await product(p);
      expect(first).toMatchObject({ outcome: 'catching_up', calls: 3, folded: 6, settledCount: 6, settledTotal: 12 });
      expect(logs.some((l) => l.level === 30 && l.productId === p && /catching up/.test(l.msg))).toBe(true);
      expect(await product(p)).toMatchObject({ outcome: 'consistent', calls: 3, folded: 6, settledCount: 12 });
      // Settled right before the check (often the same ms): unfolded but in the counters, so counted for the
      // comparison.
      await draw(p, 'c1', 5);
      const third = await product(p);
      expect(third).toMatchObject({ outcome: 'consistent', violations: 0 });
    },
  );

  it('rebuilds the sums from zero when the checkpoint no longer matches status:settled', async () => {
    const p = await makeProduct(['c1', 'c2']);
    for (let i = 0; i < 6; i++) await draw(p, i % 2 ? 'c1' : 'c2', 100);
    await sleep(2);
    const { product, logs } = auditFor();
    expect(await product(p)).toMatchObject({ outcome: 'consistent', settledCount: 6 });

    // As if a settle had landed before the checkpoint (a clock step back): the rank no longer matches.
    await ctx.redis.hset(ctx.keys.audit(p), 'settledCount', '4');
    const a = await product(p);
    expect(a).toMatchObject({ outcome: 'consistent', violations: 0, settledCount: 6, folded: 6 });
    expect(logs.some((l) => l.level === 40 && /rebuilt from zero/.test(l.msg))).toBe(true);
  });
});

describe('bounded work', () => {
  it('compares exactly by a pass over several calls when the live sets exceed what one call reads', async () => {
    const p = await makeProduct(['c1']);
    await draw(p, 'c1', 100);
    const { product, gauge, metrics } = auditFor({ liveLimit: 2, walkBatch: 1 });
    expect(await product(p)).toMatchObject({ outcome: 'consistent' });
    await ctx.redis.hincrby(ctx.keys.pool(p), 'committed', 1);
    expect(await product(p)).toMatchObject({ outcome: 'violations', violations: 1 });

    for (let i = 0; i < 2; i++) await reserve(p, 'c1', 10);
    await commit(p, await reserve(p, 'c1', 10));
    const a = await product(p);
    expect(a.pass?.calls).toBeGreaterThan(3); // one live record per call, three sets, the start
    expect(a).toMatchObject({ outcome: 'violations', violations: 1 });
    expect(a.pool).toEqual([{ field: 'committed', expected: 110, actual: 111, difference: 1 }]);
    expect(await gauge(p)).toBe(1);
    // The comparison's time is exported for the staleness alert.
    const last = (
      await metrics.registry.getSingleMetric('quota_audit_last_exact_comparison_timestamp_seconds')!.get()
    ).values.find((v) => v.labels.product === p);
    expect(Math.abs(last!.value - Date.now() / 1000)).toBeLessThan(30);
    await ctx.redis.hincrby(ctx.keys.pool(p), 'committed', -1);
    expect(await product(p)).toMatchObject({ outcome: 'consistent', violations: 0 });
  });

  it(
    'checks lines in a rotating window; a line difference stays ' + 'reported until a whole rotation passes without it',
    async () => {
      // More than hash-max-listpack-entries (512): a small hash is scanned whole in one call.
      const customers = Array.from({ length: 600 }, (_, i) => `c${i}`);
      const p = await makeProduct(customers);
      for (const c of customers) await draw(p, c, 10);
      await sleep(2);
      const { product, gauge } = auditFor({ lineWindow: 20 });

      let checked = 0;
      let runs = 0;
      while (checked < customers.length) {
        const a = await product(p);
        expect(a.outcome).toBe('consistent');
        expect(a.linesChecked).toBeLessThan(100); // about the window, not every line
        checked += a.linesChecked;
        runs++;
      }
      expect(runs).toBeGreaterThan(5);

      await addToLineField(ctx.redis, ctx.keys, p, 'c123', 'held', 3);
      let found: ProductAudit | undefined;
      for (let i = 0; i < 200 && !found; i++) {
        const a = await product(p);
        if (a.lines.length > 0) found = a;
      }
      expect(found?.lines).toEqual([{ customerId: 'c123', field: 'held', expected: 0, actual: 3 }]);
      const next = await product(p);
      expect(next.lines).toEqual([]); // the window moved on...
      expect(next.violations).toBe(1); // ...but the gauge keeps it
      expect(await gauge(p)).toBe(1);
    },
  );
});

describe('the service runs the audit as a scheduled job', () => {
  let svc: ServiceContext;
  beforeAll(async () => {
    svc = await startServiceContext({ AUDIT_INTERVAL_MS: '300', RELAY_INTERVAL_MS: '200', RELAY_GRACE_MS: '0' });
  });
  afterAll(() => svc?.stop());

  async function scrape(): Promise<string> {
    const res = await svc.call<string>('GET', '/metrics', { key: null });
    expect(res.status).toBe(200);
    return String(res.body);
  }
  const series = (text: string, name: string) => {
    const line = text.split('\n').find((l) => l.startsWith(name + ' '));
    return line === undefined ? undefined : Number(line.slice(name.length + 1));
  };
  it(
    'reports zero after a concurrent HTTP burst settles, then a ' + 'planted inconsistency within one audit period',
    async () => {
      const p = uniqueId('p');
      expect((await svc.admin('PUT', `/v1/products/${p}`, { capacity: 300_000 })).status).toBe(201);
      const customers = Array.from({ length: 20 }, (_, i) => `c${i}`);
      for (const c of customers) {
        expect((await svc.admin('PUT', `/v1/products/${p}/customers/${c}`, { limit: 30_000 })).status).toBe(201);
      }
      // 400 reserves, 40 in flight, more than the pool covers; commit (some partly) or release each granted hold.
      const granted: string[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: 40 }, async () => {
          for (let i = next++; i < 400; i = next++) {
            const r = await svc.client(
              'POST',
              `/v1/products/${p}/reservations`,
              { customerId: customers[i % 20], amount: 500 + (i % 7) * 100 },
              { 'Idempotency-Key': `k${i}` },
            );
            if (r.status !== 201) {
              expect(r.status).toBe(409);
              continue;
            }
            granted.push(r.body.reservationId);
            const id = r.body.reservationId as string;
            const action =
              i % 4 === 0
                ? svc.client('POST', `/v1/products/${p}/reservations/${id}/release`, {})
                : svc.client('POST', `/v1/products/${p}/reservations/${id}/commit`, i % 4 === 1 ? { amount: 300 } : {});
            expect((await action).status).toBe(200);
          }
        }),
      );
      expect(granted.length).toBeGreaterThan(100);
      // The service's own ledger settles every commit.
      await waitUntil(
        'every commit settled',
        async () => (await svc.admin('GET', `/v1/products/${p}`)).body,
        (pool: any) => pool.settled === pool.committed && pool.committed > 0,
        { timeoutMs: 15_000, everyMs: 25 },
      );
      for (const c of customers.slice(0, 5)) {
        const line = (await svc.client('GET', `/v1/products/${p}/customers/${c}`)).body;
        const repayable = line.drawn - line.settling;
        if (repayable > 0) {
          expect(
            (
              await svc.client(
                'POST',
                `/v1/products/${p}/customers/${c}/repayments`,
                { amount: repayable },
                { 'Idempotency-Key': uniqueId('k') },
              )
            ).status,
          ).toBe(200);
        }
      }

      const gaugeName = `quota_audit_violations{product="${p}"}`;
      const runsAfterLoad = series(await scrape(), 'quota_audit_runs_total')!;
      // A run that started after the load ended: runs + 2 (the one in progress may have started before).
      const settledRun = await waitUntil(
        'two more audit runs',
        scrape,
        (t) => series(t, 'quota_audit_runs_total')! >= runsAfterLoad + 2,
        { timeoutMs: 15_000, everyMs: 25 },
      );
      expect(series(settledRun, gaugeName)).toBe(0);

      const keys = createKeys(svc.keyPrefix);
      const plantedAt = Date.now();
      await ctx.redis.hincrby(keys.pool(p), 'held', 11);
      const runsAtPlant = series(await scrape(), 'quota_audit_runs_total')!;
      const detected = await waitUntil(
        'the planted difference in the gauge',
        scrape,
        (t) => (series(t, gaugeName) ?? 0) > 0,
        { timeoutMs: 10_000, everyMs: 25 },
      );
      const detectedAfterMs = Date.now() - plantedAt;
      // Found by the first run that started after the plant (at most one run was already under way;
      // one more may finish while a slow scrape of the poll is under way).
      expect(series(detected, 'quota_audit_runs_total')!).toBeLessThanOrEqual(runsAtPlant + 3);
      expect(series(detected, gaugeName)).toBe(1);
      console.log(`audit: planted difference reported after ${detectedAfterMs} ms (AUDIT_INTERVAL_MS 300)`);

      await ctx.redis.hincrby(keys.pool(p), 'held', -11);
      await waitUntil('the gauge back at 0', scrape, (t) => series(t, gaugeName) === 0, {
        timeoutMs: 10_000,
        everyMs: 25,
      });
    },
  );
});
