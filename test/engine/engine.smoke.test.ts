import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngineContext, uniqueId, type EngineContext } from '../support/engineContext.js';

let ctx: EngineContext;
beforeAll(async () => {
  ctx = await createEngineContext();
});
afterAll(() => ctx.close());

describe('engine smoke', () => {
  it('reserves, commits, releases', async () => {
    const p = uniqueId('p');
    const put = await ctx.engine.upsertProduct(p, { capacity: 1000 }, 'put');
    expect(put.ok && put.value.created).toBe(true);
    const line = await ctx.engine.upsertLines(p, [
      { customerId: 'c1', limit: 500, status: 'active', statusReason: null, tier: null },
    ]);
    expect(line.ok).toBe(true);
    const r = await ctx.engine.reserve({
      productId: p,
      customerId: 'c1',
      reservationId: 'r1',
      amount: 300,
      idempotencyKey: 'k1',
      fingerprint: 'f1',
    });
    expect(r).toMatchObject({ ok: true, value: { status: 'held', amount: 300 } });
    const again = await ctx.engine.reserve({
      productId: p,
      customerId: 'c1',
      reservationId: 'r2',
      amount: 300,
      idempotencyKey: 'k1',
      fingerprint: 'f1',
    });
    expect(again).toMatchObject({ ok: true, replayed: true, value: { reservationId: 'r1' } });
    const over = await ctx.engine.reserve({
      productId: p,
      customerId: 'c1',
      reservationId: 'r3',
      amount: 300,
      idempotencyKey: 'k2',
      fingerprint: 'f2',
    });
    expect(over).toMatchObject({ ok: false, code: 'CUSTOMER_LIMIT_EXCEEDED', context: { drawable: 200 } });
    const c = await ctx.engine.commit(p, 'r1', 100);
    expect(c).toMatchObject({ ok: true, value: { status: 'committed', committedAmount: 100 } });
    const pool = await ctx.engine.readPool(p);
    expect(pool).toMatchObject({ ok: true, value: { held: 0, committed: 100, available: 900 } });
    const l = await ctx.engine.readLine(p, 'c1');
    expect(l).toMatchObject({ ok: true, value: { held: 0, drawn: 100, settling: 100, drawable: 400, blockers: [] } });
  });
});
