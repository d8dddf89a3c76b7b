/**
 * How long stored answers are kept (CONTRACT.md, Idempotency; issue 10 item
 * 5): 2xx answers 24 hours, stored refusals IDEMPOTENCY_REFUSAL_TTL_SECONDS
 * (at least 1 hour), reuse refusals not at all. Also prints what one stored
 * answer, one reservation record and one line cost in Redis (MEMORY USAGE),
 * the figures of the README's "Sizing".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQuotaEngine } from '../../src/engine/quotaEngine.js';
import { createEngineContext, uniqueId, type EngineContext } from '../support/engineContext.js';

let ctx: EngineContext;
beforeAll(async () => {
  ctx = await createEngineContext();
});
afterAll(() => ctx.close());

async function product(engine = ctx.engine) {
  const p = uniqueId('p');
  expect((await engine.upsertProduct(p, { capacity: 1_000, maxAmount: 500 }, 'put')).ok).toBe(true);
  expect(
    (await engine.upsertLines(p, [{ customerId: 'c1', limit: 550, status: 'active', statusReason: null, tier: null }]))
      .ok,
  ).toBe(true);
  return p;
}

const reserveOf = (p: string, key: string, amount: number, fingerprint = `f-${amount}`) => ({
  productId: p,
  customerId: 'c1',
  reservationId: uniqueId('r'),
  amount,
  idempotencyKey: key,
  fingerprint,
  metadata: { channel: 'android', campaign: 'launch-2026' },
});

describe('stored answers are kept by outcome', () => {
  it('2xx: 24 h; 409 and 422 refusals: the refusal TTL (1 h by default); a reuse refusal: not stored', async () => {
    const { engine, keys, redis } = ctx;
    const p = await product();
    expect((await engine.reserve(reserveOf(p, 'ok', 100))).ok).toBe(true);
    const refused409 = await engine.reserve(reserveOf(p, 'over-line', 500 + 100));
    expect(refused409).toMatchObject({ ok: false, code: 'AMOUNT_OUT_OF_RANGE' });
    const refusedLine = await engine.reserve(reserveOf(p, 'over-limit', 500));
    expect(refusedLine).toMatchObject({ ok: false, code: 'CUSTOMER_LIMIT_EXCEEDED' });
    const reused = await engine.reserve(reserveOf(p, 'ok', 100, 'another body'));
    expect(reused).toMatchObject({ ok: false, code: 'IDEMPOTENCY_KEY_REUSED' });
    const repayRefused = await engine.repay({
      productId: p,
      customerId: 'c1',
      amount: 1,
      idempotencyKey: 'repay',
      fingerprint: 'f',
    });
    expect(repayRefused).toMatchObject({ ok: false, code: 'REPAYMENT_EXCEEDS_DRAWN' });

    const ttl = (op: 'reserve' | 'repay', key: string) => redis.ttl(keys.idempotency(p, op, key));
    expect(await ttl('reserve', 'ok')).toBeGreaterThan(86_400 - 60);
    for (const key of ['over-line', 'over-limit']) {
      const t = await ttl('reserve', key);
      expect(t).toBeGreaterThan(3_600 - 60);
      expect(t).toBeLessThanOrEqual(3_600);
    }
    expect(await ttl('repay', 'repay')).toBeLessThanOrEqual(3_600);
    expect(await ttl('repay', 'repay')).toBeGreaterThan(3_600 - 60);
    // The reuse refusal left the first answer as it was.
    expect(await ttl('reserve', 'ok')).toBeGreaterThan(3_600);

    // A replay of a stored refusal is the first answer.
    const again = await engine.reserve(reserveOf(p, 'over-limit', 500));
    expect(again).toMatchObject({ ok: false, code: 'CUSTOMER_LIMIT_EXCEEDED', replayed: true });
  });

  it('the refusal TTL is the engine setting (IDEMPOTENCY_REFUSAL_TTL_SECONDS)', async () => {
    const engine = createQuotaEngine({ redis: ctx.redis, keys: ctx.keys, idempotencyRefusalTtlSeconds: 7_200 });
    const p = await product(engine);
    expect(await engine.reserve(reserveOf(p, 'refused', 501))).toMatchObject({
      ok: false,
      code: 'AMOUNT_OUT_OF_RANGE',
    });
    const t = await ctx.redis.ttl(ctx.keys.idempotency(p, 'reserve', 'refused'));
    expect(t).toBeGreaterThan(7_200 - 60);
    expect(t).toBeLessThanOrEqual(7_200);
  });
});

describe('sizing', () => {
  it('prints the bytes one stored answer, record and line cost (MEMORY USAGE)', async () => {
    const { engine, keys, redis } = ctx;
    const p = await product();
    // A 36-character idempotency key and reservation id, as clients and the service make them.
    const key = '7f0c9a4e-3b1d-4c55-9a8e-2f6d1b0c7e91';
    const ok = await engine.reserve({
      ...reserveOf(p, key, 100),
      reservationId: 'b3f1e2d4-5a6b-4c7d-8e9f-0a1b2c3d4e5f',
    });
    expect(ok.ok).toBe(true);
    const refusalKey = '0e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a6b';
    expect((await engine.reserve(reserveOf(p, refusalKey, 600))).ok).toBe(false);
    const usage = async (k: string) => Number(await redis.call('MEMORY', 'USAGE', k, 'SAMPLES', '0'));
    const storedOk = await usage(keys.idempotency(p, 'reserve', key));
    const storedRefusal = await usage(keys.idempotency(p, 'reserve', refusalKey));
    // A field of a hash: the hash with the field minus the hash without it.
    const fieldBytes = async (hash: string, field: string) => {
      const value = (await redis.hget(hash, field))!;
      const withIt = await usage(hash);
      await redis.hdel(hash, field);
      const without = (await redis.exists(hash)) ? await usage(hash) : 0;
      await redis.hset(hash, field, value);
      return { bytes: withIt - without, json: value.length };
    };
    // Measured on hashes big enough to be real hash tables (small ones are listpacks and cost less per field).
    const many: string[] = [];
    for (let i = 0; i < 200; i++) many.push(`filler-${i}`, JSON.stringify({ x: 'y'.repeat(80), i }));
    await redis.hset(keys.records(p), ...many);
    await redis.hset(keys.lines(p), ...many);
    const record = await fieldBytes(keys.records(p), 'b3f1e2d4-5a6b-4c7d-8e9f-0a1b2c3d4e5f');
    const line = await fieldBytes(keys.lines(p), 'c1');
    // Per event: 1,000 entries shaped like the scripts' (lua/includes/statuses.lua), in a stream of their own.
    const stream = `${keys.events(p)}-sizing`;
    for (let i = 0; i < 1_000; i++) {
      await redis.xadd(
        stream,
        'MAXLEN',
        '~',
        '100000',
        '*',
        'reservationId',
        `b3f1e2d4-5a6b-4c7d-8e9f-${String(i).padStart(12, '0')}`,
        'from',
        'held',
        'to',
        'committed',
        'amount',
        '125000',
        'reason',
        'committed',
        'at',
        String(Date.now()),
      );
    }
    const perEvent = Math.round((await usage(stream)) / 1_000);
    await redis.del(stream);
    // Per status-set entry (a 36-character id and its score) and per audit-hash customer field.
    const zset = `${keys.status(p, 'released')}-sizing`;
    const hash = `${keys.audit(p)}-sizing`;
    for (let i = 0; i < 1_000; i += 100) {
      const members: string[] = [];
      const fields: string[] = [];
      for (let j = i; j < i + 100; j++) {
        members.push(String(Date.now() + j), `b3f1e2d4-5a6b-4c7d-8e9f-${String(j).padStart(12, '0')}`);
        fields.push(`s:customer-${String(j).padStart(8, '0')}`, '1250000');
      }
      await redis.zadd(zset, ...members);
      await redis.hset(hash, ...fields);
    }
    const perStatusEntry = Math.round((await usage(zset)) / 1_000);
    const perAuditField = Math.round((await usage(hash)) / 1_000);
    await redis.del(zset, hash);
    console.log(
      `[sizing] stored 2xx reserve answer ${storedOk} B; stored refusal ${storedRefusal} B; ` +
        (`reservation record ${record.bytes} B (JSON ${record.json} B, metadata 46 B); ` +
          `line ${line.bytes} B (JSON ${line.json} B); event ${perEvent} B; status-set ` +
          `entry ${perStatusEntry} B; audit customer field ${perAuditField} B`),
    );
    expect(storedOk).toBeGreaterThan(100);
    expect(storedRefusal).toBeGreaterThan(100);
    expect(record.bytes).toBeGreaterThan(record.json);
  });
});
