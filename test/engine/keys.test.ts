/**
 * The key layout: scripts write exactly the keys keys.ts names (records and
 * lines are fields of one hash each, never a key per reservation or
 * customer), and every key of a product sits in one cluster slot. What each
 * script declares in KEYS is checked in test/unit/script-catalogue.test.ts.
 */
import calculateSlot from 'cluster-key-slot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLine, readRecord } from '../../src/redis/storedRecords.js';
import { createEngineContext, uniqueId, type EngineContext } from '../support/engineContext.js';

let ctx: EngineContext;
beforeAll(async () => {
  ctx = await createEngineContext();
});
afterAll(() => ctx.close());

async function keysOf(pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await ctx.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found.sort();
}

describe('key layout', () => {
  it('scripts write exactly the keys keys.ts names, all in one slot per product', async () => {
    const { engine, keys } = ctx;
    const p = uniqueId('p');
    await engine.upsertProduct(p, { capacity: 100 }, 'put');
    await engine.upsertLines(p, [{ customerId: 'c1', limit: 100, status: 'active', statusReason: null, tier: null }]);
    const r = await engine.reserve({
      productId: p,
      customerId: 'c1',
      reservationId: 'r1',
      amount: 10,
      ttlSeconds: 1,
      idempotencyKey: 'k1',
      fingerprint: 'f',
    });
    expect(r.ok).toBe(true);
    await engine.repay({ productId: p, customerId: 'c1', amount: 1, idempotencyKey: 'k2', fingerprint: 'g' });

    const expected = [
      keys.pool(p),
      keys.status(p, 'held'),
      keys.events(p),
      keys.lines(p),
      keys.records(p),
      keys.bycustomer(p),
      keys.idempotency(p, 'reserve', 'k1'),
      keys.idempotency(p, 'repay', 'k2'),
    ].sort();
    expect(await keysOf(`${keys.prefix}:{${p}}:*`)).toEqual(expected);
    expect(new Set(expected.map((k) => calculateSlot(k))).size).toBe(1);
    expect(await ctx.redis.hkeys(keys.records(p))).toEqual(['r1']);
    expect(await ctx.redis.hkeys(keys.lines(p))).toEqual(['c1']);

    // Expiry finds the hold at run time; its record and line are fields of hashes passed in KEYS.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await engine.reclaimExpired(p, 10)).toEqual({ reclaimed: 1, remaining: 0, purged: 0 });
    expect((await readLine(ctx.redis, keys, p, 'c1'))?.held).toBe('0');
    expect((await readRecord(ctx.redis, keys, p, 'r1'))?.status).toBe('expired');
    expect(await ctx.redis.exists(keys.status(p, 'held'))).toBe(0);
    expect(await ctx.redis.zscore(keys.status(p, 'expired'), 'r1')).not.toBeNull();
    const afterExpiry = [...expected.filter((k) => k !== keys.status(p, 'held')), keys.status(p, 'expired')].sort();
    expect(await keysOf(`${keys.prefix}:{${p}}:*`)).toEqual(afterExpiry);
  });

  it(
    'the sweeper deletes released/expired records 7 days after ' + 'they ended, in bounded batches, and nothing else',
    async () => {
      const { engine, keys, redis } = ctx;
      const p = uniqueId('p');
      await engine.upsertProduct(p, { capacity: 1_000 }, 'put');
      await engine.upsertLines(p, [
        { customerId: 'c1', limit: 1_000, status: 'active', statusReason: null, tier: null },
      ]);
      const reserve = (id: string) =>
        engine.reserve({
          productId: p,
          customerId: 'c1',
          reservationId: id,
          amount: 1,
          idempotencyKey: id,
          fingerprint: id,
        });
      for (const id of ['old1', 'old2', 'old3', 'recent', 'kept']) expect((await reserve(id)).ok).toBe(true);
      for (const id of ['old1', 'old2', 'old3', 'recent']) expect((await engine.release(p, id)).ok).toBe(true);
      // Age three of them: their entry time (the score) 7 days and a minute ago.
      const eightDaysAgo = Date.now() - 7 * 86_400_000 - 60_000;
      for (const id of ['old1', 'old2', 'old3']) await redis.zadd(keys.status(p, 'released'), eightDaysAgo, id);

      expect(await engine.reclaimExpired(p, 2)).toMatchObject({ purged: 2 });
      expect(await engine.reclaimExpired(p, 2)).toMatchObject({ purged: 1 });
      expect(await engine.reclaimExpired(p, 2)).toMatchObject({ purged: 0 });
      expect((await redis.hkeys(keys.records(p))).sort()).toEqual(['kept', 'recent']);
      expect(await redis.zrange(keys.status(p, 'released'), 0, -1)).toEqual(['recent']);
      expect((await engine.getReservation(p, 'old1')).ok).toBe(false);
      // Their per-customer index entries went with them.
      const indexed = (await redis.zrange(keys.bycustomer(p), 0, -1)).map((m) => m.split(':')[2]);
      expect(indexed.sort()).toEqual(['kept', 'recent']);
    },
  );

  it('the backfill (index-records) indexes existing records once, and only records that exist', async () => {
    const { engine, keys, redis } = ctx;
    const p = uniqueId('p');
    await engine.upsertProduct(p, { capacity: 1_000 }, 'put');
    await engine.upsertLines(
      p,
      ['c1', 'c2'].map((customerId) => ({
        customerId,
        limit: 1_000,
        status: 'active' as const,
        statusReason: null,
        tier: null,
      })),
    );
    for (const [id, customerId] of [
      ['r1', 'c1'],
      ['r2', 'c2'],
      ['r3', 'c1'],
    ] as const) {
      expect(
        (
          await engine.reserve({
            productId: p,
            customerId,
            reservationId: id,
            amount: 1,
            idempotencyKey: id,
            fingerprint: id,
          })
        ).ok,
      ).toBe(true);
    }
    const members = await redis.zrange(keys.bycustomer(p), 0, -1);
    expect(members).toHaveLength(3);
    await redis.del(keys.bycustomer(p)); // as before the index existed
    expect(await engine.indexRecords(p, ['r1', 'r2', 'r3', 'gone'])).toEqual({ added: 3 });
    expect(await redis.zrange(keys.bycustomer(p), 0, -1)).toEqual(members);
    expect(await engine.indexRecords(p, ['r1', 'r2', 'r3'])).toEqual({ added: 0 });
  });
});
