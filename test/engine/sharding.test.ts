/**
 * Sharded products (contract: "Sharded products") on the run's private
 * redis-server: config rules, the snapshot, exact cap under concurrency with
 * nothing stranded, skew (every coverable draw succeeds by borrowing),
 * transfers interrupted between their two steps.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInvariantAudit } from '../../src/audit/invariantAudit.js';
import { createQuotaEngine } from '../../src/engine/quotaEngine.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';
import type { BullConnections } from '../../src/redis/topology.js';
import { shardOfCustomer } from '../../src/engine/shards.js';
import type { PoolSnapshot } from '../../src/engine/types.js';
import { readAllRecords } from '../../src/redis/storedRecords.js';
import { addRecord, emptyBooks } from '../support/books.js';
import { createEngineContext, uniqueId, type EngineContext } from '../support/engineContext.js';

let ctx: EngineContext;
/** Reserves that needed quota moved to their sub-pool, and quota transfers credited (the engine's shard events). */
const counts = { borrowGranted: 0, borrowRefused: 0, transfers: 0 };
beforeAll(async () => {
  ctx = await createEngineContext();
  ctx.engine = createQuotaEngine({
    redis: ctx.redis,
    keys: ctx.keys,
    shardEvents: {
      onBorrow: (_p, outcome) => (outcome === 'granted' ? counts.borrowGranted++ : counts.borrowRefused++),
      onTransfer: () => counts.transfers++,
    },
  });
});
const resetCounts = () => Object.assign(counts, { borrowGranted: 0, borrowRefused: 0, transfers: 0 });
afterAll(() => ctx.close());

/** Customers pinned to each shard (found by the same hash the engine uses). */
function customersOn(shard: number, shards: number, count: number, label = 'c'): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++)
    if (shardOfCustomer(`${label}${i}`, shards) === shard) out.push(`${label}${i}`);
  return out;
}

async function pool(productId: string): Promise<PoolSnapshot> {
  const p = await ctx.engine.readPool(productId);
  if (!p.ok) throw new Error(p.code);
  return p.value;
}

const reserve = (productId: string, customerId: string, amount: number) =>
  ctx.engine.reserve({
    productId,
    customerId,
    amount,
    reservationId: randomUUID(),
    idempotencyKey: uniqueId('k'),
    fingerprint: uniqueId('f'),
  });

/** Sum of allotments + in transit == capacity; each sub-pool's held/committed are its live records' sums. */
async function checkInvariants(productId: string) {
  const p = await pool(productId);
  const allotments = p.shards!.reduce((s, x) => s + x.allotment, 0);
  expect(allotments + (p.inTransit ?? 0) + (p.withheld ?? 0)).toBe(p.capacity);
  const books = emptyBooks();
  for (const tag of await ctx.engine.shards.tagsOf(productId)) {
    for (const record of await readAllRecords(ctx.redis, ctx.keys, tag)) addRecord(books, record);
  }
  expect({ held: p.held, committed: p.committed }).toEqual({ held: books.held, committed: books.committed });
  return p;
}

describe('sharded product config', () => {
  it(
    'shards is fixed at creation; PUT that omits it keeps it; ' + 'another value is INVALID_CONFIG naming shards',
    async () => {
      const productId = uniqueId('p');
      const created = await ctx.engine.upsertProduct(productId, { capacity: 1000, shards: 4 }, 'put');
      expect(created.ok && created.value.created).toBe(true);
      if (!created.ok) return;
      expect(created.value.pool.shards).toHaveLength(4);
      expect(created.value.pool.shards!.reduce((s, x) => s + x.allotment, 0)).toBe(1000);
      expect(created.value.pool.capacity).toBe(1000);

      const kept = await ctx.engine.upsertProduct(productId, { capacity: 1200 }, 'put');
      expect(kept.ok && kept.value.pool.shards!.length).toBe(4);
      expect(kept.ok && kept.value.pool.capacity).toBe(1200);
      const other = await ctx.engine.upsertProduct(productId, { capacity: 1200, shards: 2 }, 'put');
      expect(other.ok ? null : [other.code, other.context.field]).toEqual(['INVALID_CONFIG', 'shards']);
      const patch = await ctx.engine.upsertProduct(productId, { shards: 1 }, 'patch');
      expect(patch.ok ? null : [patch.code, patch.context.field]).toEqual(['INVALID_CONFIG', 'shards']);
      const same = await ctx.engine.upsertProduct(productId, { shards: 4, status: 'paused' }, 'patch');
      expect(same.ok && same.value.pool.status).toBe('paused');
      // Pool-level config applies to every sub-pool: a paused product refuses on every shard.
      await ctx.engine.upsertLines(
        productId,
        [0, 1, 2, 3].map((s) => ({
          customerId: customersOn(s, 4, 1)[0]!,
          limit: 100,
          status: 'active' as const,
          statusReason: null,
          tier: null,
        })),
      );
      for (let s = 0; s < 4; s++) {
        const r = await reserve(productId, customersOn(s, 4, 1)[0]!, 1);
        expect(r.ok ? 'OK' : r.code).toBe('PRODUCT_PAUSED');
      }
    },
  );

  it('an unsharded product keeps its key layout and lists one sub-pool', async () => {
    const productId = uniqueId('p');
    const created = await ctx.engine.upsertProduct(productId, { capacity: 50 }, 'put');
    expect(created.ok && created.value.pool.shards).toEqual([
      { index: 0, allotment: 50, held: 0, committed: 0, available: 50 },
    ]);
    const fields = await ctx.redis.hkeys(ctx.keys.pool(productId));
    expect(fields).not.toContain('shards');
    expect(fields).not.toContain('shardTags');
    const again = await ctx.engine.upsertProduct(productId, { capacity: 50, shards: 2 }, 'put');
    expect(again.ok ? null : again.context.field).toBe('shards');
  });

  it('capacity up and down adjusts allotments exactly', async () => {
    const productId = uniqueId('p');
    await ctx.engine.upsertProduct(productId, { capacity: 1000, shards: 4 }, 'put');
    const lines = [0, 1, 2, 3].map((s) => customersOn(s, 4, 1)[0]!);
    await ctx.engine.upsertLines(
      productId,
      lines.map((customerId) => ({
        customerId,
        limit: 10_000,
        status: 'active' as const,
        statusReason: null,
        tier: null,
      })),
    );
    for (const c of lines) expect((await reserve(productId, c, 200)).ok).toBe(true);
    await ctx.engine.upsertProduct(productId, { capacity: 900 }, 'patch');
    let p = await checkInvariants(productId);
    expect([p.capacity, p.available]).toEqual([900, 100]);
    await ctx.engine.upsertProduct(productId, { capacity: 500 }, 'patch');
    p = await checkInvariants(productId);
    expect([p.capacity, p.available, p.held]).toEqual([500, 0, 800]);
    for (const c of lines) expect((await reserve(productId, c, 1)).ok).toBe(false);
    await ctx.engine.upsertProduct(productId, { capacity: 2000 }, 'patch');
    p = await checkInvariants(productId);
    expect([p.capacity, p.available]).toEqual([2000, 1200]);
    const big = await reserve(productId, lines[3]!, 1200);
    expect(big.ok).toBe(true);
    await checkInvariants(productId);
  });
});

describe('sharded reserve: exact cap, borrowing, nothing stranded', () => {
  it(
    'skew: all quota in shard 0, customers pinned to other shards ' +
      'draw one after another: every coverable draw succeeds',
    async () => {
      const productId = uniqueId('p');
      await ctx.engine.upsertProduct(productId, { capacity: 10_000, shards: 4 }, 'put');
      const tags = await ctx.engine.shards.tagsOf(productId);
      // Move every allotment to shard 0.
      for (let j = 1; j < 4; j++) {
        const p = await pool(productId);
        await ctx.engine.shards.move(productId, tags, j, 0, p.shards![j]!.allotment, 'priority', 'rebalance');
      }
      expect((await pool(productId)).shards!.map((s) => s.allotment)).toEqual([10_000, 0, 0, 0]);
      const customers = [1, 2, 3].flatMap((s) => customersOn(s, 4, 10, `s${s}-`));
      await ctx.engine.upsertLines(
        productId,
        customers.map((customerId) => ({
          customerId,
          limit: 1_000,
          status: 'active' as const,
          statusReason: null,
          tier: null,
        })),
      );
      resetCounts();
      let granted = 0;
      let refused = 0;
      let total = 0;
      for (let i = 0; i < 70; i++) {
        const c = customers[i % customers.length]!;
        const amount = 150 + ((i * 37) % 200);
        const line = await ctx.engine.readLine(productId, c);
        const drawable = line.ok ? line.value.drawable : 0;
        const r = await reserve(productId, c, amount);
        const coverable = amount <= drawable;
        expect(r.ok).toBe(coverable);
        if (r.ok) {
          granted++;
          total += amount;
        } else {
          refused++;
          expect(r.code === 'POOL_EXHAUSTED' || r.code === 'CUSTOMER_LIMIT_EXCEEDED').toBe(true);
        }
      }
      const p = await checkInvariants(productId);
      expect(p.held).toBe(total);
      expect(p.held).toBeLessThanOrEqual(10_000);
      expect(granted).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
      // At the end nothing coverable is left: the product's free quota is below the smallest refused draw.
      console.log(
        `skew: ${granted} granted, ${refused} refused, held ${p.held} of 10000, ` +
          `allotments ${p.shards!.map((s) => s.allotment).join('/')}; ` +
          (`reserves that borrowed: ${counts.borrowGranted} granted, ` +
            `${counts.borrowRefused} refused; transfers ${counts.transfers}`),
      );
    },
  );

  it("the rebalancer evens out the sub-pools' free quota, exactly, and then reserves need no borrow", async () => {
    const productId = uniqueId('p');
    await ctx.engine.upsertProduct(productId, { capacity: 8_000, shards: 4 }, 'put');
    const tags = await ctx.engine.shards.tagsOf(productId);
    for (let j = 1; j < 4; j++) await ctx.engine.shards.move(productId, tags, j, 0, 2_000, 'priority', 'rebalance');
    expect((await pool(productId)).shards!.map((s) => s.allotment)).toEqual([8_000, 0, 0, 0]);
    const moved = await ctx.engine.shards.rebalance(productId);
    expect(moved).toBe(6_000);
    const p = await checkInvariants(productId);
    expect(p.shards!.map((s) => s.allotment)).toEqual([2_000, 2_000, 2_000, 2_000]);
    expect((await ctx.engine.shards.auditTransfers(productId)).violations).toEqual([]);
    resetCounts();
    const customers = [1, 2, 3].map((s) => customersOn(s, 4, 1, 'rb')[0]!);
    await ctx.engine.upsertLines(
      productId,
      customers.map((customerId) => ({
        customerId,
        limit: 5_000,
        status: 'active' as const,
        statusReason: null,
        tier: null,
      })),
    );
    for (const c of customers) expect((await reserve(productId, c, 1_500)).ok).toBe(true);
    expect(counts.borrowGranted + counts.borrowRefused).toBe(0);
  });

  it(
    'concurrency: 4 shards, capacity that runs out, hundreds ' + 'in flight: never oversold, nothing stranded',
    async () => {
      const productId = uniqueId('p');
      const capacity = 50_000;
      await ctx.engine.upsertProduct(productId, { capacity, shards: 4 }, 'put');
      const customers = Array.from({ length: 200 }, (_, i) => `cc${i}`);
      await ctx.engine.upsertLines(
        productId,
        customers.map((customerId) => ({
          customerId,
          limit: 10_000,
          status: 'active' as const,
          statusReason: null,
          tier: null,
        })),
      );
      const amounts = Array.from({ length: 400 }, (_, i) => 50 + ((i * 7919) % 400));
      resetCounts();
      const outcomes = await Promise.all(
        amounts.map((amount, i) => reserve(productId, customers[i % customers.length]!, amount)),
      );
      const grantedSum = outcomes.reduce((s, o, i) => s + (o.ok ? amounts[i]! : 0), 0);
      const refusedAmounts = outcomes.flatMap((o, i) => (!o.ok ? [amounts[i]!] : []));
      for (const o of outcomes) if (!o.ok) expect(o.code).toBe('POOL_EXHAUSTED');
      const p = await checkInvariants(productId);
      expect(p.held).toBe(grantedSum);
      expect(p.held).toBeLessThanOrEqual(capacity);
      expect(refusedAmounts.length).toBeGreaterThan(0);
      // Nothing stranded: use only grows here, so each refusal's proof (free < its amount) still holds at the
      // end: what is left free in the whole product is less than the smallest refused amount.
      const free = capacity - p.held;
      expect(free).toBeLessThan(Math.min(...refusedAmounts));
      expect(outcomes.length - refusedAmounts.length + refusedAmounts.length).toBe(400);
      console.log(
        `concurrency: ${outcomes.length - refusedAmounts.length} granted (${grantedSum}), ` +
          `${refusedAmounts.length} refused (largest ${Math.max(...refusedAmounts)}, smallest ` +
          `${Math.min(...refusedAmounts)}), free at exhaustion ${free}; ` +
          (`reserves that borrowed: ${counts.borrowGranted} granted, ` +
            `${counts.borrowRefused} refused; transfers ${counts.transfers}`),
      );
    },
  );

  it(
    'a crash between the two steps of a transfer leaves quota in ' + 'transit, completed once by whoever finds it',
    async () => {
      const productId = uniqueId('p');
      await ctx.engine.upsertProduct(productId, { capacity: 400, shards: 2 }, 'put');
      const tags = await ctx.engine.shards.tagsOf(productId);
      // The giving step alone (the crash): shard 1 gives 200 to shard 0.
      const p0 = await pool(productId);
      expect(p0.shards!.map((s) => s.allotment)).toEqual([200, 200]);
      await ctx.redis.call(
        'FCALL',
        ctx.engine.library.functionName('shard-give'),
        7,
        ...['pool', 'res', 'lines', 'events', 'status:held', 'status:expired', 'xfer:pending'].map(
          (s) => `${ctx.keys.prefix}:{${tags[1]}}:${s}`,
        ),
        '',
        200,
        '0',
        'priority',
        100,
      );
      let p = await checkInvariants(productId);
      expect([p.shards!.map((s) => s.allotment), p.inTransit]).toEqual([[200, 0], 200]);
      // A customer on shard 1 draws 300: the reserve finishes the move (to shard 0), then borrows from shard 0.
      const c1 = customersOn(1, 2, 1)[0]!;
      await ctx.engine.upsertLines(productId, [
        { customerId: c1, limit: 1000, status: 'active', statusReason: null, tier: null },
      ]);
      expect(
        (await ctx.engine.readLine(productId, c1)).ok &&
          ((await ctx.engine.readLine(productId, c1)) as { value: { drawable: number } }).value.drawable,
      ).toBe(400);
      const r = await reserve(productId, c1, 300);
      expect(r.ok).toBe(true);
      p = await checkInvariants(productId);
      expect(p.inTransit).toBe(0);
      expect(p.held).toBe(300);
      // Completing again is a no-op (idempotent by sequence).
      expect(await ctx.engine.shards.completePending(productId)).toBe(0);
      await ctx.redis.call(
        'FCALL',
        ctx.engine.library.functionName('shard-take'),
        1,
        `${ctx.keys.prefix}:{${tags[0]}}:pool`,
        '1',
        200,
        '1',
      );
      p = await checkInvariants(productId);
      expect(p.shards!.reduce((s, x) => s + x.allotment, 0)).toBe(400);
      // The transfers audited on both sides: consistent now.
      const clean = await ctx.engine.shards.auditTransfers(productId);
      expect(clean.violations).toEqual([]);
      expect(clean.pairs).toBeGreaterThan(0);
      // A debit without its credit is quota in transit (not a violation); a credit without its debit is.
      await ctx.redis.call(
        'FCALL',
        ctx.engine.library.functionName('shard-give'),
        7,
        ...['pool', 'res', 'lines', 'events', 'status:held', 'status:expired', 'xfer:pending'].map(
          (s) => `${ctx.keys.prefix}:{${tags[0]}}:${s}`,
        ),
        '',
        50,
        '1',
        'priority',
        100,
      );
      expect((await ctx.engine.shards.auditTransfers(productId)).violations).toEqual([]);
      await ctx.redis.hincrby(ctx.keys.pool(tags[0]!), 'receivedFrom:1', 7);
      await ctx.redis.hincrby(ctx.keys.pool(tags[0]!), 'capacity', 7);
      const bad = await ctx.engine.shards.auditTransfers(productId);
      expect(bad.violations.some((v) => v.startsWith('1->0'))).toBe(true);
      expect(bad.violations.some((v) => v.startsWith('allotments'))).toBe(true);
      // The scheduled audit finds it (a violation of that run), undoes the credit, and the next run is clean.
      const noBull: BullConnections = { queue: () => ({}), worker: () => ({}) } as unknown as BullConnections;
      const metrics = createMetrics();
      const audit = createInvariantAudit({
        bullmq: noBull,
        redis: ctx.redis,
        keys: ctx.keys,
        engine: ctx.engine,
        logger: createLogger('silent'),
        metrics,
        intervalMs: 60_000,
      });
      const first = (await audit.auditOnce()).products.find((x) => x.productId === productId)!;
      expect([first.outcome, first.violations]).toEqual(['violations', 2]);
      expect((await ctx.engine.shards.auditTransfers(productId)).violations).toEqual([]);
      p = await checkInvariants(productId);
      expect(p.shards!.reduce((s, x) => s + x.allotment, 0) + p.inTransit!).toBe(400);
      const second = (await audit.auditOnce()).products.find((x) => x.productId === productId)!;
      expect(second.violations).toBe(0);
    },
  );

  it(
    "the priority reserve is the product's: other tiers on every sub-pool " +
      'leave exactly it, listed tiers on any sub-pool take it',
    async () => {
      const productId = uniqueId('p');
      await ctx.engine.upsertProduct(
        productId,
        { capacity: 1_000, shards: 4, priorityReserve: { tiers: ['gold'], amount: 300 } },
        'put',
      );
      const plain = [0, 1, 2, 3].map((k) => customersOn(k, 4, 1, `np${k}-`)[0]!);
      const gold = [0, 1, 2, 3].map((k) => customersOn(k, 4, 1, `g${k}-`)[0]!);
      await ctx.engine.upsertLines(productId, [
        ...plain.map((customerId) => ({
          customerId,
          limit: 10_000,
          status: 'active' as const,
          statusReason: null,
          tier: null,
        })),
        ...gold.map((customerId) => ({
          customerId,
          limit: 10_000,
          status: 'active' as const,
          statusReason: null,
          tier: 'gold',
        })),
      ]);
      // A gold line draws 100 first (from the general part), then other tiers on every sub-pool draw 100 at a time.
      expect((await reserve(productId, gold[2]!, 100)).ok).toBe(true);
      const outcomes = [];
      for (let i = 0; i < 12; i++) outcomes.push(await reserve(productId, plain[i % 4]!, 100));
      // 1,000 - 100 (gold) - 300 (the reserve) = 600 for other tiers: 6 granted, then every one refused.
      expect(outcomes.map((o) => (o.ok ? 'OK' : o.code))).toEqual([
        ...Array(6).fill('OK'),
        ...Array(6).fill('POOL_EXHAUSTED'),
      ]);
      let p = await checkInvariants(productId);
      expect([p.held, p.available, p.availableToAllTiers]).toEqual([700, 300, 0]);
      const refused = outcomes[6]!;
      expect(!refused.ok && refused.context.drawable).toBe(0);
      // Gold lines on the other sub-pools take the reserve, borrowing it from wherever it is.
      expect(
        (await ctx.engine.readLine(productId, gold[3]!)).ok &&
          ((await ctx.engine.readLine(productId, gold[3]!)) as { value: { drawable: number } }).value.drawable,
      ).toBe(300);
      expect((await reserve(productId, gold[3]!, 200)).ok).toBe(true);
      expect((await reserve(productId, gold[0]!, 100)).ok).toBe(true);
      expect((await reserve(productId, gold[1]!, 1)).ok).toBe(false);
      p = await checkInvariants(productId);
      expect([p.held, p.available]).toEqual([1_000, 0]);
    },
  );
});
