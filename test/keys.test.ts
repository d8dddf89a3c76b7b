/**
 * keys.ts and the Lua scripts must agree on the key layout (Lua builds the
 * keys of holds it reclaims itself), and every key of a product must sit in
 * one cluster slot.
 */
import calculateSlot from 'cluster-key-slot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLuaScripts } from '../src/engine/luaScripts.js';
import { createEngineContext, uniqueId, type EngineContext } from './support/engineContext.js';

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
    const r = await engine.reserve({ productId: p, customerId: 'c1', reservationId: 'r1', amount: 10, ttlSeconds: 1, idempotencyKey: 'k1', fingerprint: 'f' });
    expect(r.ok).toBe(true);
    await engine.repay({ productId: p, customerId: 'c1', amount: 1, idempotencyKey: 'k2', fingerprint: 'g' });

    const expected = [
      keys.pool(p),
      keys.status(p, 'held'),
      keys.events(p),
      keys.line(p, 'c1'),
      keys.reservation(p, 'r1'),
      keys.idempotency(p, 'reserve', 'k1'),
      keys.idempotency(p, 'repay', 'k2'),
    ].sort();
    expect(await keysOf(`${keys.prefix}:{${p}}:*`)).toEqual(expected);
    expect(new Set(expected.map((k) => calculateSlot(k))).size).toBe(1);

    // Expiry: Lua builds the line and reservation keys from the hold's ids.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await engine.reclaimExpired(p, 10)).toEqual({ reclaimed: 1, remaining: 0 });
    expect(await ctx.redis.hget(keys.line(p, 'c1'), 'held')).toBe('0');
    expect(await ctx.redis.hget(keys.reservation(p, 'r1'), 'status')).toBe('expired');
    expect(await ctx.redis.exists(keys.status(p, 'held'))).toBe(0);
    expect(await ctx.redis.zscore(keys.status(p, 'expired'), 'r1')).not.toBeNull();
    const afterExpiry = [...expected.filter((k) => k !== keys.status(p, 'held')), keys.status(p, 'expired')].sort();
    expect(await keysOf(`${keys.prefix}:{${p}}:*`)).toEqual(afterExpiry);
  });
});

describe('Lua script headers', () => {
  it('document every KEYS entry the file name promises', () => {
    for (const script of loadLuaScripts().values()) {
      const header = /^--\[\[([\s\S]*?)\]\]/.exec(script.source)?.[1] ?? '';
      expect(header, `${script.name} has a header block`).not.toBe('');
      const documented = new Set([...header.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1])));
      if (script.numberOfKeys !== undefined) {
        expect([...documented].sort((a, b) => a - b), script.name).toEqual(
          Array.from({ length: script.numberOfKeys }, (_, i) => i + 1),
        );
      }
      expect(header, `${script.name} documents its reply`).toMatch(/Reply:/);
    }
  });
});
