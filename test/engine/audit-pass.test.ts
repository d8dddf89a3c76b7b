/**
 * The audit's exact pool comparison as a pass over bounded calls
 * (lua/audit-product-11.lua): thousands of live holds, compared exactly at
 * the pass's start instant while reserves, commits and releases go on; a
 * difference planted mid-pass is found (by the pass that starts after it:
 * the one under way compares the instant before it); a pass whose events
 * were trimmed before it read them is aborted, counted, and the next one
 * completes; and the per-customer index every reserve feeds. Real Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditStep, AuditStepOptions } from '../../src/engine/auditStep.js';
import { createInvariantAudit } from '../../src/audit/invariantAudit.js';
import { createMetrics } from '../../src/metrics.js';
import { bullmqConnectionsForUrl } from '../../src/redis/connection.js';
import { pino } from 'pino';
import { inject } from 'vitest';
import { createEngineContext, uniqueId, type EngineContext } from '../support/engineContext.js';
import { addToPoolField } from '../support/tamper.js';

let ctx: EngineContext;
beforeAll(async () => {
  ctx = await createEngineContext();
});
afterAll(() => ctx.close());

const LIMITS: AuditStepOptions = {
  settledBatch: 1_000,
  liveLimit: 100,
  lineWindow: 50,
  walkBatch: 200,
  eventBatch: 2_000,
  lineRecords: 200,
};

async function productWithHolds(holds: number, customers = 500): Promise<string> {
  const p = uniqueId('p');
  expect((await ctx.engine.upsertProduct(p, { capacity: 1e12, holdTtlSeconds: 3_600 }, 'put')).ok).toBe(true);
  const lines = Array.from({ length: customers }, (_, i) => ({
    customerId: `c${i}`,
    limit: 1e9,
    status: 'active' as const,
    statusReason: null,
    tier: null,
  }));
  for (let i = 0; i < lines.length; i += 500)
    expect((await ctx.engine.upsertLines(p, lines.slice(i, i + 500))).ok).toBe(true);
  for (let i = 0; i < holds; i += 500) {
    const batch = Array.from({ length: Math.min(500, holds - i) }, (_, j) =>
      ctx.engine.reserve({
        productId: p,
        customerId: `c${(i + j) % customers}`,
        reservationId: `h${i + j}`,
        amount: 100 + ((i + j) % 50),
        idempotencyKey: `k${i + j}`,
        fingerprint: 'f',
      }),
    );
    for (const r of await Promise.all(batch)) expect(r.ok).toBe(true);
  }
  return p;
}

async function step(p: string, limits = LIMITS): Promise<AuditStep> {
  const s = await ctx.engine.auditProduct(p, limits);
  if (s.kind === 'product_not_found') throw new Error('no product');
  return s;
}

async function untilChecked(p: string, limits = LIMITS): Promise<Extract<AuditStep, { kind: 'checked' }>[]> {
  const seen: AuditStep[] = [];
  for (let i = 0; i < 10_000; i++) {
    const s = await step(p, limits);
    seen.push(s);
    if (s.kind === 'checked') return seen as never;
  }
  throw new Error('no comparison in 10,000 calls');
}

const longestMicros = (steps: AuditStep[]) =>
  Math.max(...steps.map((s) => (s.kind === 'product_not_found' ? 0 : s.micros)));
const differences = (s: AuditStep) => (s.kind === 'checked' ? s.pool.filter((c) => c.expected !== c.actual) : []);

describe('the pool pass', () => {
  it(
    'is exact at its start instant while reserves, commits and releases go ' +
      'on; a difference planted mid-pass is found by the next pass',
    async () => {
      const p = await productWithHolds(5_000);
      let running = true;
      let n = 0;
      let ops = 0;
      const load = Promise.all(
        Array.from({ length: 6 }, async () => {
          while (running) {
            const i = n++;
            const id = `x${i}`;
            const r = await ctx.engine.reserve({
              productId: p,
              customerId: `c${i % 500}`,
              reservationId: id,
              amount: 77,
              idempotencyKey: `xk${i}`,
              fingerprint: 'f',
            });
            expect(r.ok).toBe(true);
            // Every fourth hold stays; the others are committed (some partly) or released, and old holds too.
            if (i % 4 === 1) expect((await ctx.engine.commit(p, id, i % 8 === 1 ? 50 : undefined)).ok).toBe(true);
            if (i % 4 === 2) expect((await ctx.engine.release(p, id)).ok).toBe(true);
            if (i % 4 === 3) expect((await ctx.engine.commit(p, `h${(i * 7) % 5_000}`)).ok).toBe(true);
            ops++;
          }
        }),
      );

      // A pass under load, with the difference planted while it is under way.
      const first: AuditStep[] = [await step(p)];
      expect(first[0]!.kind).toBe('pass'); // 5,000 live holds > liveLimit: a pass starts
      for (let i = 0; i < 5; i++) first.push(await step(p));
      expect(first.every((s) => s.kind === 'pass')).toBe(true);
      await addToPoolField(ctx.redis, ctx.keys, p, 'held', 1);
      first.push(...(await untilChecked(p)));
      const second = await untilChecked(p);
      running = false;
      await load;
      const done1 = first.at(-1) as Extract<AuditStep, { kind: 'checked' }>;
      const done2 = second.at(-1)!;
      console.log(
        `pool pass under load: ${ops} operations meanwhile; passes of ${done1.pass?.calls} and ` +
          `${done2.pass?.calls} calls, longest call ${longestMicros([...first, ...second])} µs in Redis`,
      );
      expect(ops).toBeGreaterThan(50);
      expect(done1.pass!.calls).toBeGreaterThan(10); // 5,000 holds, 200 a call
      expect(differences(done1)).toEqual([]); // compared at its start, before the plant
      expect(differences(done2)).toEqual([{ field: 'held', expected: expect.any(Number), actual: expect.any(Number) }]);
      const held = done2.pool.find((c) => c.field === 'held')!;
      expect(held.actual - held.expected).toBe(1);
      for (const s of [...first, ...second])
        if (s.kind !== 'product_not_found' && s.kind !== 'behind') expect(s.mismatchCount).toBe(0);
      await addToPoolField(ctx.redis, ctx.keys, p, 'held', -1);
      expect(differences((await untilChecked(p)).at(-1)!)).toEqual([]);
    },
  );

  it(
    'is aborted and counted when the events it needs were trimmed ' + 'before it read them; the next pass completes',
    async () => {
      const p = await productWithHolds(1_000, 50);
      const logger = pino({ level: 'silent' });
      const metrics = createMetrics();
      const audit = createInvariantAudit({
        bullmq: bullmqConnectionsForUrl(inject('redisUrl')),
        redis: ctx.redis,
        keys: ctx.keys,
        engine: ctx.engine,
        logger,
        metrics,
        intervalMs: 60_000,
        limits: { ...LIMITS, maxPassCalls: 2 },
      });
      const run = async () => (await audit.auditOnce()).products.find((x) => x.productId === p)!;
      expect((await run()).outcome).toBe('comparing'); // 2 calls: not done
      await ctx.engine.release(p, 'h1'); // an event the pass needs...
      await ctx.redis.xtrim(ctx.keys.events(p), 'MAXLEN', 0); // ...trimmed before it was read
      const aborted = await run();
      expect(aborted.passesAborted).toBe(1);
      const counter = (await metrics.registry.getSingleMetric('quota_audit_passes_aborted_total')!.get()).values.find(
        (v) => v.labels.product === p,
      );
      expect(counter?.value).toBe(1);
      let last = aborted;
      for (let i = 0; i < 50 && last.outcome !== 'consistent'; i++) last = await run();
      expect(last).toMatchObject({ outcome: 'consistent', violations: 0, passesAborted: 0 });
      expect(last.pass?.calls).toBeGreaterThan(5);
    },
  );
});

describe('the line window', () => {
  it('skips, and counts, a customer with more records than one bounded call reads; checks the others', async () => {
    const p = uniqueId('p');
    expect((await ctx.engine.upsertProduct(p, { capacity: 1e9, holdTtlSeconds: 600 }, 'put')).ok).toBe(true);
    const lines = ['busy', 'calm'].map((customerId) => ({
      customerId,
      limit: 1e6,
      status: 'active' as const,
      statusReason: null,
      tier: null,
    }));
    expect((await ctx.engine.upsertLines(p, lines)).ok).toBe(true);
    for (let i = 0; i < 7; i++)
      expect(
        (
          await ctx.engine.reserve({
            productId: p,
            customerId: 'busy',
            reservationId: `b${i}`,
            amount: 10,
            idempotencyKey: `b${i}`,
            fingerprint: 'f',
          })
        ).ok,
      ).toBe(true);
    expect(
      (
        await ctx.engine.reserve({
          productId: p,
          customerId: 'calm',
          reservationId: 'c0',
          amount: 10,
          idempotencyKey: 'c0',
          fingerprint: 'f',
        })
      ).ok,
    ).toBe(true);
    // lineRecords 3: a customer with more than 6 records is not read in one call.
    const s = await step(p, { ...LIMITS, lineRecords: 3 });
    expect(s.kind).toBe('checked');
    if (s.kind !== 'checked') return;
    expect({ checked: s.linesChecked, unchecked: s.linesUnchecked, rotationDone: s.rotationDone }).toEqual({
      checked: 1,
      unchecked: 1,
      rotationDone: true,
    });
  });
});
