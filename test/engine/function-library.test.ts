/**
 * The scripts as a Redis 7 Functions library (src/engine/functionLibrary.ts):
 * a node that lost its functions is healed on the first call (loaded, the
 * call retried once); loading is idempotent; two versions run side by side
 * on the same data (a rolling deploy) and the old one can be deleted; the
 * library reaches a replica by replication, so a promoted replica runs the
 * scripts before anyone loads them. Real redis-servers started here.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFunctionLibrary, functionsLoaded, loadFunctions } from '../../src/engine/functionLibrary.js';
import { findLuaDir } from '../../src/engine/luaScripts.js';
import { createQuotaEngine, type QuotaEngine } from '../../src/engine/quotaEngine.js';
import { createKeys } from '../../src/redis/keys.js';
import { startRedisServer, type RedisServerHandle } from '../../src/redis/redisServer.js';
import { uniqueId } from '../support/engineContext.js';

let master: RedisServerHandle;
let redis: Redis;
beforeAll(async () => {
  master = await startRedisServer();
  redis = new Redis(master.url);
});
afterAll(async () => {
  redis?.disconnect();
  await master?.stop();
});

const libraries = async (client: Redis) =>
  ((await client.call('FUNCTION', 'LIST', 'LIBRARYNAME', 'quota_*')) as unknown[][]).map((l) => String(l[1])).sort();

async function productWithHold(engine: QuotaEngine, p: string) {
  expect((await engine.upsertProduct(p, { capacity: 100 }, 'put')).ok).toBe(true);
  expect(
    (await engine.upsertLines(p, [{ customerId: 'c1', limit: 100, status: 'active', statusReason: null, tier: null }]))
      .ok,
  ).toBe(true);
  const r = await engine.reserve({
    productId: p,
    customerId: 'c1',
    reservationId: uniqueId('r'),
    amount: 10,
    idempotencyKey: uniqueId('k'),
    fingerprint: 'f',
  });
  expect(r.ok).toBe(true);
  return r;
}

describe('the functions library', () => {
  it('is named after its content, and loading it again is a success', async () => {
    const library = buildFunctionLibrary();
    expect(library.name).toMatch(/^quota_[0-9a-f]{10}$/);
    expect(buildFunctionLibrary().name).toBe(library.name);
    expect(library.functionName('reserve')).toBe(`${library.name}_reserve`);
    await redis.call('FUNCTION', 'FLUSH');
    expect(await functionsLoaded(redis, library)).toBe(false);
    await loadFunctions(redis, library);
    await loadFunctions(redis, library); // "already exists" is success
    expect(await functionsLoaded(redis, library)).toBe(true);
    expect(await libraries(redis)).toEqual([library.name]);
  });

  it('a node that lost its functions gets them back on the first call, which then runs once', async () => {
    const keys = createKeys(uniqueId('t'));
    const engine = createQuotaEngine({ redis, keys });
    const p = uniqueId('p');
    await productWithHold(engine, p);
    await redis.call('FUNCTION', 'FLUSH');
    expect(await engine.scriptsLoaded()).toBe(false);
    const read = await engine.readPool(p);
    expect(read).toMatchObject({ ok: true, value: { held: 10 } });
    expect(await engine.scriptsLoaded()).toBe(true);
    // A write after a flush is applied exactly once.
    await redis.call('FUNCTION', 'FLUSH');
    await productWithHold(engine, uniqueId('p'));
    const second = await engine.reserve({
      productId: p,
      customerId: 'c1',
      reservationId: 'once',
      amount: 5,
      idempotencyKey: 'once',
      fingerprint: 'f',
    });
    expect(second.ok).toBe(true);
    expect((await engine.readPool(p)).ok && (await engine.readPool(p))).toMatchObject({ value: { held: 15 } });
  });

  it('two versions run side by side on the same data (a rolling deploy); the old one is then deleted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qa-lua-'));
    try {
      cpSync(findLuaDir(), join(dir, 'lua'), { recursive: true });
      const file = join(dir, 'lua', 'read-pool-6.lua');
      writeFileSync(file, readFileSync(file, 'utf8').replace('Pool snapshot', 'Pool snapshot (the next version)'));
      const current = buildFunctionLibrary();
      const next = buildFunctionLibrary(join(dir, 'lua'));
      expect(next.name).not.toBe(current.name);

      const keys = createKeys(uniqueId('t'));
      const old = createQuotaEngine({ redis, keys });
      await old.loadScripts();
      await loadFunctions(redis, next);
      expect(await libraries(redis)).toEqual([current.name, next.name].sort());

      // The next version's engine, calling its own functions on the same keys.
      const p = uniqueId('p');
      await productWithHold(old, p);
      const nextEngine = {
        call: (name: string, nKeys: number, ...rest: (string | number)[]) =>
          redis.call('FCALL', next.functionName(name), nKeys, ...rest),
      };
      const reply = (await nextEngine.call(
        'read-pool',
        6,
        keys.pool(p),
        keys.records(p),
        keys.lines(p),
        keys.events(p),
        keys.status(p, 'held'),
        keys.status(p, 'expired'),
        100,
      )) as string[];
      expect(reply[0]).toBe('OK');
      expect(JSON.parse(reply[3]!).pool.held).toBe('10');

      await redis.call('FUNCTION', 'DELETE', current.name);
      expect(await libraries(redis)).toEqual([next.name]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(
    'a Cluster client (anything with nodes()) gets the library on ' +
      'every master, and is loaded only when all have it',
    async () => {
      const otherServer = await startRedisServer();
      const other = new Redis(otherServer.url);
      try {
        const library = buildFunctionLibrary();
        await redis.call('FUNCTION', 'FLUSH');
        const clusterLike = {
          call: () => Promise.reject(new Error('keyless commands go to the nodes')),
          nodes: () => [redis, other],
        };
        await loadFunctions(other, library);
        expect(await functionsLoaded(clusterLike, library)).toBe(false); // one master lacks it
        await loadFunctions(clusterLike, library);
        expect(await functionsLoaded(redis, library)).toBe(true);
        expect(await functionsLoaded(other, library)).toBe(true);
        expect(await functionsLoaded(clusterLike, library)).toBe(true);
      } finally {
        other.disconnect();
        await otherServer.stop();
      }
    },
  );

  it('reaches a replica by replication: a promoted replica runs the scripts before anyone loads them', async () => {
    const replicaServer = await startRedisServer();
    const replica = new Redis(replicaServer.url);
    try {
      await redis.call('FUNCTION', 'FLUSH');
      await replica.call('REPLICAOF', '127.0.0.1', String(master.port));
      // The first sync waits repl-diskless-sync-delay (5 s by default).
      for (let i = 0; i < 600 && !/master_link_status:up/.test(await replica.info('replication')); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(await replica.info('replication')).toMatch(/master_link_status:up/);

      const keys = createKeys(uniqueId('t'));
      const engine = createQuotaEngine({ redis, keys });
      await engine.loadScripts();
      const p = uniqueId('p');
      await productWithHold(engine, p);
      await redis.call('WAIT', 1, 2_000);

      await replica.call('REPLICAOF', 'NO', 'ONE');
      const library = buildFunctionLibrary();
      expect(await functionsLoaded(replica, library)).toBe(true); // there before any load on it
      const promoted = createQuotaEngine({ redis: replica, keys });
      expect(await promoted.readPool(p)).toMatchObject({ ok: true, value: { held: 10 } });
    } finally {
      replica.disconnect();
      await replicaServer.stop();
    }
  }, 60_000);
});
