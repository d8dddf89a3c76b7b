/**
 * What the per-customer index (`{p}:bycustomer`, lua/includes/bycustomer.lua)
 * costs: Redis memory per member and the reserve function's time with and
 * without its ZADD. Not a test: it prints figures.
 *
 *   npm run build && node bench/index-cost.mjs [--reserves 20000] [--rounds 3]
 *
 * Its own redis-server. Two Functions libraries are loaded side by side: the
 * real one and the same one with the index's ZADD line removed. Each round
 * makes `reserves` holds in a fresh product (36-character customer and
 * reservation ids, 1,000 customers, 200 in flight) with each library in turn,
 * and reads commandstats (µs per FCALL, wall) and the Redis main thread's CPU
 * per call (INFO cpu). MEMORY USAGE of the index after a round, per member.
 */
import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { buildFunctionLibrary, loadFunctions } from '../dist/src/engine/functionLibrary.js';
import { findLuaDir } from '../dist/src/engine/luaScripts.js';
import { keysFor, SCRIPTS } from '../dist/src/engine/scriptCatalogue.js';
import { createQuotaEngine } from '../dist/src/engine/quotaEngine.js';
import { createKeys } from '../dist/src/redis/keys.js';
import { startRedisServer } from '../dist/src/redis/redisServer.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const RESERVES = arg('reserves', 20_000);
const ROUNDS = arg('rounds', 3);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// The library without the index: the same lua/ with reserve's ZADD on k.bycustomer removed.
const dir = mkdtempSync(join(tmpdir(), 'lua-noindex-'));
cpSync(findLuaDir(), dir, { recursive: true });
const reserveFile = join(dir, 'reserve-8.lua');
const text = readFileSync(reserveFile, 'utf8');
const withoutZadd = text.replace(/^redis\.call\('ZADD', k\.bycustomer.*$/m, '-- (index left out)');
if (withoutZadd === text) throw new Error('the ZADD line was not found in reserve-8.lua');
writeFileSync(reserveFile, withoutZadd);
const libraries = { with: buildFunctionLibrary(), without: buildFunctionLibrary(dir) };
rmSync(dir, { recursive: true, force: true });

const server = await startRedisServer({});
const redis = new Redis(server.url);
const keys = createKeys('bench');
const engine = createQuotaEngine({ redis, keys });
for (const l of Object.values(libraries)) await loadFunctions(redis, l);
const settings = { reclaimLimit: 100, idempotencyTtlSeconds: 86_400, idempotencyRefusalTtlSeconds: 3_600 };
const customers = Array.from({ length: 1_000 }, () => randomUUID());

const cpuSeconds = async () => {
  const info = await redis.info('cpu');
  const f = (name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? NaN);
  return f('used_cpu_sys_main_thread') + f('used_cpu_user_main_thread');
};

async function round(variant, r) {
  const library = libraries[variant];
  const p = `p-${variant}-${r}`;
  await engine.upsertProduct(p, { capacity: 1e15, holdTtlSeconds: 86_400 }, 'put');
  await engine.upsertLines(
    p,
    customers.map((customerId) => ({ customerId, limit: 1e12, status: 'active', statusReason: null, tier: null })),
  );
  await redis.config('RESETSTAT');
  const cpuBefore = await cpuSeconds();
  for (let i = 0; i < RESERVES; i += 200) {
    const batch = [];
    for (let j = i; j < Math.min(RESERVES, i + 200); j++) {
      const req = {
        productId: p,
        customerId: customers[j % customers.length],
        reservationId: randomUUID(),
        amount: 100,
        idempotencyKey: randomUUID(),
        fingerprint: 'f',
      };
      const k = keysFor(SCRIPTS.reserve, req, keys);
      batch.push(
        redis.call('FCALL', library.functionName('reserve'), k.length, ...k, ...SCRIPTS.reserve.args(req, settings)),
      );
    }
    for (const reply of await Promise.all(batch)) if (reply[0] !== 'OK') throw new Error(String(reply));
  }
  const cpuUs = (((await cpuSeconds()) - cpuBefore) * 1e6) / RESERVES;
  const usec = Number(
    /cmdstat_fcall:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(await redis.info('commandstats'))[1],
  );
  const members = await redis.zcard(keys.bycustomer(p));
  const bytes = members > 0 ? Number(await redis.memory('USAGE', keys.bycustomer(p), 'SAMPLES', '0')) : 0;
  return { usec, cpuUs, members, bytesPerMember: members > 0 ? bytes / members : 0 };
}

try {
  const out = { with: [], without: [] };
  for (let r = 0; r < ROUNDS; r++) for (const v of ['without', 'with']) out[v].push(await round(v, r));
  const sample = out.with[0];
  const summary = {
    reserves: RESERVES,
    rounds: ROUNDS,
    fcallUsecPerCall: { with: median(out.with.map((x) => x.usec)), without: median(out.without.map((x) => x.usec)) },
    mainThreadCpuUsPerCall: {
      with: median(out.with.map((x) => x.cpuUs)),
      without: median(out.without.map((x) => x.cpuUs)),
    },
    indexMembers: sample.members,
    indexBytesPerMember: Math.round(sample.bytesPerMember),
    rounds_: out,
  };
  console.log(JSON.stringify(summary, null, 2));
} finally {
  redis.disconnect();
  await server.stop();
}
