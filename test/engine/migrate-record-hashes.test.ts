/**
 * The one-off migration to records and lines as per-product hashes
 * (src/redis/migrateRecordHashes.ts): data written in the old key-per-item
 * layout reads, commits, expires and audits exactly after it, and a second
 * run changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateRecordHashes } from '../../src/redis/migrateRecordHashes.js';
import { createEngineContext, uniqueId, type EngineContext } from '../support/engineContext.js';

const HOLD_MS = 2_000;
let ctx: EngineContext;
beforeAll(async () => {
  ctx = await createEngineContext();
});
afterAll(() => ctx.close());

describe('migrating the old key-per-item layout', () => {
  it('moves lines and records into their hashes; the engine then reads, commits, expires and audits them', async () => {
    const { engine, keys, redis } = ctx;
    const p = uniqueId('p');
    expect((await engine.upsertProduct(p, { capacity: 1_000 }, 'put')).ok).toBe(true);
    const old = (kind: string, id: string) => `${keys.prefix}:{${p}}:${kind}:${id}`;
    const redisMs = async () => {
      const [s, us] = await redis.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000);
    };
    const now = await redisMs();
    // What the previous version left: two lines, a live hold, a committed draw, a settled one. The hold is due
    // HOLD_MS after Redis's clock in ms (a whole-second clock once left it 1 ms to live).
    await redis.hset(old('line', 'c1'), {
      limit: '500',
      status: 'active',
      statusReason: '',
      tier: '',
      held: '100',
      drawn: '250',
      settling: '50',
      createdAt: String(now),
      updatedAt: String(now),
    });
    await redis.hset(old('line', 'c2'), {
      limit: '300',
      status: 'frozen',
      statusReason: 'kyc',
      tier: 'gold',
      held: '0',
      drawn: '0',
      settling: '0',
      repaid: '0',
      createdAt: String(now),
      updatedAt: String(now),
    });
    const record = (id: string, status: string, amount: number, committed: number, expiresAt: number) => ({
      reservationId: id,
      productId: p,
      customerId: 'c1',
      amount: String(amount),
      status,
      createdAt: String(now),
      expiresAt: String(expiresAt),
      committedAmount: String(committed),
      metadata: '',
      attempts: '0',
      idempotencyKey: `k-${id}`,
      eventIds: '1-0',
    });
    await redis.hset(old('res', 'held1'), record('held1', 'held', 100, 0, now + HOLD_MS));
    await redis.hset(old('res', 'com1'), { ...record('com1', 'committed', 50, 50, now), committedAt: String(now) });
    await redis.hset(old('res', 'set1'), {
      ...record('set1', 'settled', 200, 200, now),
      committedAt: String(now),
      settlementUpdatedAt: String(now),
    });
    await redis.zadd(keys.status(p, 'held'), now + HOLD_MS, 'held1');
    await redis.zadd(keys.status(p, 'committed'), now, 'com1');
    await redis.zadd(keys.status(p, 'settled'), now - 1, 'set1');
    await redis.hset(keys.pool(p), { held: '100', committed: '250', settled: '200' });

    expect(await migrateRecordHashes(redis, keys)).toMatchObject({ lines: 2, records: 3 });
    expect(
      await redis.exists(
        old('line', 'c1'),
        old('line', 'c2'),
        old('res', 'held1'),
        old('res', 'com1'),
        old('res', 'set1'),
      ),
    ).toBe(0);

    expect(await engine.readLine(p, 'c1')).toMatchObject({
      ok: true,
      value: { held: 100, drawn: 250, settling: 50, limit: 500 },
    });
    expect(await engine.readLine(p, 'c2')).toMatchObject({
      ok: true,
      value: { status: 'frozen', statusReason: 'kyc', tier: 'gold' },
    });
    expect(await engine.getReservation(p, 'set1')).toMatchObject({
      ok: true,
      value: { status: 'settled', committedAmount: 200 },
    });
    expect(await engine.commit(p, 'com1')).toMatchObject({
      ok: true,
      value: { status: 'committed', committedAmount: 50 },
    });
    expect((await engine.auditProduct(p, { settledBatch: 100, liveLimit: 100, lineWindow: 100 })).kind).toBe('checked');
    const audit = await engine.auditProduct(p, { settledBatch: 100, liveLimit: 100, lineWindow: 100 });
    expect(audit).toMatchObject({ kind: 'checked', lines: [], mismatches: [] });
    expect(audit.kind === 'checked' && audit.pool.every((c) => c.expected === c.actual)).toBe(true);

    // The migrated hold expires like any other.
    while ((await redisMs()) <= now + HOLD_MS + 50) await new Promise((r) => setTimeout(r, 100));
    expect(await engine.reclaimExpired(p, 10)).toMatchObject({ reclaimed: 1 });
    expect(await engine.readLine(p, 'c1')).toMatchObject({ ok: true, value: { held: 0 } });

    // Idempotent: a second run finds nothing to move and changes nothing.
    const before = await redis.hgetall(keys.records(p));
    expect(await migrateRecordHashes(redis, keys)).toMatchObject({ lines: 0, records: 0 });
    expect(await redis.hgetall(keys.records(p))).toEqual(before);
  });
});
