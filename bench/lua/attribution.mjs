/**
 * Where a script's Redis time goes (issue 11): the reserve (or commit, or
 * release) function against variants of itself with one part removed or
 * replaced, each variant its own Functions library loaded side by side in one
 * private redis-server, measured in interleaved rounds. Not a test: it prints
 * a table.
 *
 *   npx tsc -p tsconfig.bench.json && node bench/lua/attribution.mjs [--op reserve|commit|release]
 *        [--calls 20000] [--rounds 5] [--only base,noXadd,...] [--lua-dir <another lua/ folder>]
 *
 * - Redis (a free port, never 6379) runs on CPU 1, the load (redis-benchmark
 *   -c 50 -P 16 for reserve; for commit and release an ioredis driver with 8
 *   connections x 16 pipelined calls, after making the holds they end) on
 *   CPU 0 (taskset, when there is one).
 * - Per variant and round: the Redis main thread's CPU per call (INFO cpu;
 *   unlike commandstats' wall time it does not count waiting for a core),
 *   FCALL µs per call from commandstats and the part of it spent in the
 *   script's own Redis commands (the nested commands' commandstats), so
 *   "Lua" = FCALL - commands. Medians over the rounds; Δ = base - variant.
 * - Lua heap allocated per call (KB, collectgarbage('count') around one call
 *   with the collector stopped), from a probe function added to each library.
 * - The minimal script of bench/lua (EVALSHA) in the same rounds: the ratio
 *   the hot-path bench reports.
 *
 * A variant is the library built from a copy of lua/ with edits: either an
 * override appended to an include (a `local function` reassigned at the
 * library's top level: every closure that uses it sees the new one), or a
 * regular expression on a script. Variants are for measurement only: some
 * write wrong data on purpose (each uses its own product).
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { buildFunctionLibrary } from '../../dist/src/engine/functionLibrary.js';
import { findLuaDir } from '../../dist/src/engine/luaScripts.js';
import { keysFor, SCRIPTS } from '../../dist/src/engine/scriptCatalogue.js';
import { createQuotaEngine } from '../../dist/src/engine/quotaEngine.js';
import { createKeys } from '../../dist/src/redis/keys.js';
import { canPin, pin, pinned } from '../../dist/bench/hotPath/pinning.js';
import { startRedisServer } from '../../dist/src/redis/redisServer.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const OP = arg('op', 'reserve');
const CALLS = Number(arg('calls', 20_000));
const ROUNDS = Number(arg('rounds', 5));
const ONLY = arg('only', '')
  .split(',')
  .filter((s) => s !== '');
const LUA_DIR = arg('lua-dir', findLuaDir());
/** --perf <file>: only base runs, with `perf record -g` on the Redis process (where the C time goes). */
const PERF = arg('perf', '');
/** --against <lua dir>: also that folder's library as a variant named `against` (e.g. main's lua/, before/after). */
const AGAINST = arg('against', '');
const SETTINGS = { reclaimLimit: 100, idempotencyTtlSeconds: 86_400, idempotencyRefusalTtlSeconds: 3_600 };

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

// A 170-byte line and a 370-byte record, what the JSON the variants stop encoding is replaced with.
const LINE_CONST =
  '{"settling":"0","statusReason":"","drawn":"0","held":"1","limit":"1000000000000000","tier":"",' +
  '"status":"active","updatedAt":"1796184262452","repaid":"0","createdAt":"1796184262452"}';
const RECORD_CONST =
  '{"amount":"1","committedAmount":"0","idempotencyKey":"k1","metadata":"","attempts":"0",' +
  '"createdAt":"1796184262460","reservationId":"r1","productId":"b","status":"held",' +
  '"expiresAt":"1796270662460","eventIds":"1796184262460-0","customerId":"c"}';
const lua = (s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** Code appended to an include (the override runs at the library's top level, after the include). */
const after = (include, code) => ({ file: `includes/${include}.lua`, append: code });
/** A regular expression edit of a script or include file. */
const edit = (file, find, replace) => ({ file, find, replace });

const VARIANTS = {
  reserve: {
    base: [],
    empty: [edit('reserve-8.lua', /\nlocal k = /, "\ndo return {'OK', '0', '0', '{}', '0'} end\nlocal k = ")],
    // The same Redis commands with the same argument sizes, no logic: the floor of this set of commands.
    commandsOnly: [
      edit(
        'reserve-8.lua',
        /\nlocal k = /,
        `
do
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000
  redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 100)
  redis.call('HMGET', KEYS[1], unpack(POOL_FIELDS))
  redis.call('GET', KEYS[7])
  local l = redis.call('HGET', KEYS[3], ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'held', 1)
  redis.call('HSET', KEYS[3], ARGV[2], l)
  redis.call('ZADD', KEYS[5], now + 86400000, ARGV[3])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 'reservationId', ARGV[3], 'from', '', 'to', 'held',
    'amount', '1', 'reason', 'reserved', 'at', now)
  redis.call('ZADD', KEYS[8], 'NX', 0, ARGV[2] .. ':' .. now .. ':' .. ARGV[3])
  local rec = ${lua(RECORD_CONST)}
  redis.call('HSET', KEYS[2], ARGV[3], rec)
  redis.call('SET', KEYS[7], ARGV[7] .. '\\nOK\\n' .. rec, 'EX', ARGV[8])
  return {'OK', '0', '0', rec, '0'}
end
local k = `,
      ),
    ],
    noTime: [after('numbers', 'nowMs = function() return 1800000000000 end')],
    intTostring: [after('numbers', 'int = function(n) return tostring(n) end')],
    noReclaim: [after('expiry', 'reclaimDue = function() return 0, 0 end')],
    // The pool read replaced by a constant table (the HMGET, its reply, the table).
    noPoolHmget: [
      after(
        'views',
        `loadPoolForDecision = function(k)
  return {capacity = '1000000000000000', held = '1', committed = '0', minAmount = '1', maxAmount = '',
    holdTtlSeconds = '86400', opensAt = '', closesAt = '', status = 'open', reserveAmount = '0'}
end`,
      ),
    ],
    // What the 16-field loadPool the reserve used before step 3 costs instead.
    poolAllFields: [after('views', 'loadPoolForDecision = loadPool')],
    noStoredLookup: [after('idempotency', 'storedAnswer = function() return nil end')],
    noStoreSet: [
      after(
        'idempotency',
        `storeAnswer = function(k, request, code, now, payload, holdsExpired)
  local json = type(payload) == 'string' and payload or cjson.encode(payload)
  return {code, int(now), '0', json, int(holdsExpired)}
end`,
      ),
    ],
    lineNoDecode: [
      after(
        'lines',
        `loadLine = function(k, customerId)
  local json = redis.call('HGET', k.lines, customerId)
  if not json then return nil end
  return {limit = '1000000000000000', status = 'active', statusReason = '', tier = '', held = '1', drawn = '0',
    settling = '0', createdAt = '1', updatedAt = '1', repaid = '0'}
end`,
      ),
    ],
    linePadLoop: [
      after(
        'lines',
        `loadLine = function(k, customerId)
  local json = redis.call('HGET', k.lines, customerId)
  if not json then return nil end
  return cjson.decode(json)
end`,
      ),
    ],
    lineNoEncode: [
      after(
        'lines',
        `saveLine = function(k, customerId) redis.call('HSET', k.lines, customerId, ${lua(LINE_CONST)}) end`,
      ),
    ],
    recordConst: [after('records', `newHoldJson = function() return ${lua(RECORD_CONST)} end`)],
    recordNoEscape: [
      after(
        'records',
        `newHoldJson = function(r, p, c, amount, createdAt, expiresAt, m, key, eventId)
  return '{"amount":"' .. amount .. '","committedAmount":"0","idempotencyKey":"' .. key ..
    '","metadata":"' .. m .. '","attempts":"0","createdAt":"' .. createdAt .. '","reservationId":"' .. r ..
    '","productId":"' .. p .. '","status":"held","expiresAt":"' .. expiresAt .. '","eventIds":"' .. eventId ..
    '","customerId":"' .. c .. '"}'
end`,
      ),
    ],
    noPayloadConcat: [after('records', 'reservationPayload = function(json) return json end')],
    noBlockers: [after('views', 'local NO_BLOCKERS = {}\nblockersFor = function() return NO_BLOCKERS end')],
    noXadd: [after('statuses', "appendEvent = function() return '1796184262460-0' end")],
    noZaddHeld: [
      after(
        'statuses',
        `enterHeld = function(k, reservationId, expiresAt, amount, now)
  return appendEvent(k, reservationId, nil, 'held', now, amount, 'reserved')
end`,
      ),
    ],
    noBycustomer: [edit('reserve-8.lua', /^redis\.call\('ZADD', k\.bycustomer.*$/m, '-- (index left out)')],
    noHincrby: [edit('reserve-8.lua', /^redis\.call\('HINCRBY', k\.pool, 'held', amountString\)$/m, '-- (left out)')],
  },
  commit: { base: [] },
  release: { base: [] },
};

function applyEdits(dir, edits) {
  for (const e of edits) {
    const path = join(dir, e.file);
    const text = readFileSync(path, 'utf8');
    let out;
    if (e.append) out = `${text}\n${e.append}\n`;
    else {
      out = text.replace(e.find, e.replace);
      if (out === text) throw new Error(`${e.file}: ${e.find} not found`);
    }
    writeFileSync(path, out);
  }
}

/** The library of a variant, with a probe function: the Lua heap (KB) one call allocates. */
function variantLibrary(name, edits, from = LUA_DIR) {
  const dir = mkdtempSync(join(tmpdir(), `lua-${name}-`));
  try {
    cpSync(from, dir, { recursive: true });
    applyEdits(dir, edits);
    const library = buildFunctionLibrary(dir);
    const probe = `${library.name}_probe`;
    const gc = `${library.name}_gc`;
    const source =
      `${library.source}\nredis.register_function('${probe}', function(KEYS, ARGV)\n` +
      `  collectgarbage('stop')\n  local before = collectgarbage('count')\n  ${OP}(KEYS, ARGV)\n` +
      `  local kb = collectgarbage('count') - before\n  collectgarbage('restart')\n  return tostring(kb)\nend)\n` +
      `redis.register_function('${gc}', function() collectgarbage('collect') return 0 end)`;
    return { ...library, source, probe, gc };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const variantNames = Object.keys(VARIANTS[OP]).filter((v) => ONLY.length === 0 || v === 'base' || ONLY.includes(v));
const libraries = new Map(variantNames.map((v) => [v, variantLibrary(v, VARIANTS[OP][v])]));
if (AGAINST) {
  variantNames.push('against');
  libraries.set('against', variantLibrary('against', [], AGAINST));
}

/**
 * --instructions: instructions per call (valgrind callgrind), each variant in a redis-server of its own
 * under valgrind: counted, not timed, so other work on the machine does not move them. The counters are
 * zeroed after set-up and a warm-up and dumped after CALLS calls (default 2,000 here).
 */
async function instructionCounts() {
  const { freePort } = await import('../../dist/src/redis/redisServer.js');
  const calls = Number(arg('calls', 2_000));
  const out = new Map();
  for (const variant of [...variantNames, 'minimal']) {
    const dir = mkdtempSync(join(tmpdir(), `cg-${variant}-`));
    const port = await freePort();
    const vg = spawn(
      'valgrind',
      ['--tool=callgrind', `--callgrind-out-file=${dir}/cg.out`, 'redis-server', '--port', String(port)].concat([
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ]),
      { stdio: 'ignore' },
    );
    const client = new Redis(`redis://127.0.0.1:${port}`, { retryStrategy: () => 200, maxRetriesPerRequest: 100 });
    try {
      process.stderr.write(`${variant}: valgrind started\n`);
      await client.ping();
      process.stderr.write(`${variant}: up\n`);
      const library = libraries.get(variant);
      // Redis stops a FUNCTION LOAD after 500 ms, which valgrind's slowness can reach: try again.
      for (let attempt = 1; library; attempt++) {
        try {
          await client.call('FUNCTION', 'LOAD', library.source);
          break;
        } catch (err) {
          if (attempt === 10 || /already exists/.test(err.message)) throw err;
        }
      }
      const eng = createQuotaEngine({ redis: client, keys });
      const p = `v-${variant}`;
      await eng.upsertProduct(p, { capacity: 1e15, holdTtlSeconds: 86_400, minAmount: 1, maxAmount: null }, 'put');
      await eng.upsertLines(p, [{ customerId: 'c', limit: 1e15, status: 'active', statusReason: null, tier: null }]);
      // POOL_HASHTABLE=1: the pool hash as a hash table instead of a listpack (a value over 64 bytes converts it).
      if (process.env.POOL_HASHTABLE) await client.hset(keys.pool(p), 'x-encoding', 'h'.repeat(65));
      const sha = await client.script('LOAD', readFileSync(join(benchLuaDir, minimalFile.reserve), 'utf8'));
      const endSha = await client.script('LOAD', readFileSync(join(benchLuaDir, minimalFile[OP]), 'utf8'));
      await client.set(`${M}pool`, String(1e15));
      await client.set(`${M}line:c`, String(1e15));
      const reserveCall = (id) =>
        library
          ? fcallArgs(library, 'reserve', reserveRequest(p, id))
          : ['EVALSHA', sha, '4', `${M}pool`, `${M}line:c`, `${M}hold:${id}`, `${M}idem:${id}`, '1', '86400', 'c'];
      const endCall = (id) =>
        library
          ? fcallArgs(library, OP, { productId: p, reservationId: id })
          : OP === 'commit'
            ? ['EVALSHA', endSha, '2', `${M}hold:${id}`, `${M}committed`, `${M}drawn:`]
            : ['EVALSHA', endSha, '2', `${M}hold:${id}`, `${M}pool`, `${M}line:`];
      const send = async (argsList) => {
        for (let i = 0; i < argsList.length; i += 16) {
          const pipe = client.pipeline();
          for (const a of argsList.slice(i, i + 16)) pipe.call(...a);
          for (const [err, reply] of await pipe.exec()) {
            if (err) throw err;
            const code = Array.isArray(reply) ? reply[0] : reply;
            if (code !== 'OK') throw new Error(`${variant}: ${code}`);
          }
        }
      };
      const ids = (tag, n) => Array.from({ length: n }, (_, i) => `${tag}-${String(i).padStart(9, '0')}`);
      const warm = ids('warm', 300);
      await send(warm.map(reserveCall));
      if (OP !== 'reserve') await send(warm.map(endCall));
      process.stderr.write(`${variant}: warmed up\n`);
      const measured = ids('run', calls);
      if (OP !== 'reserve') await send(measured.map(reserveCall));
      execFileSync('callgrind_control', ['-z', String(vg.pid)], { stdio: 'ignore' });
      await send(measured.map(OP === 'reserve' ? reserveCall : endCall));
      execFileSync('callgrind_control', ['-d', String(vg.pid)], { stdio: 'ignore' });
      const dumps = readdirSync(dir).filter((f) => f.startsWith('cg.out.'));
      const summary = readFileSync(join(dir, dumps.sort().at(-1)), 'utf8').match(/^summary: (\d+)/m);
      out.set(variant, Number(summary[1]) / calls);
      process.stderr.write(`${variant}: ${(Number(summary[1]) / calls).toFixed(0)} instructions per call\n`);
      if (arg('keep-dumps', '')) cpSync(join(dir, dumps.sort().at(-1)), `${arg('keep-dumps', '')}/${variant}.cg`);
      await client.call('SHUTDOWN', 'NOSAVE').catch(() => {});
    } finally {
      client.disconnect();
      if (vg.exitCode === null) vg.kill('SIGTERM'); // redis-server shuts down on SIGTERM (after an error above)
      await new Promise((r) => (vg.exitCode !== null ? r() : vg.on('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const base = out.get('base');
  console.log(`${OP}: instructions per call (valgrind callgrind), ${calls} calls per variant`);
  console.log('| variant | instructions/call | base - variant | ÷ minimal |');
  console.log('|---|---|---|---|');
  for (const [v, n] of out) {
    console.log(`| ${v} | ${Math.round(n)} | ${Math.round(base - n)} | ${(n / out.get('minimal')).toFixed(2)} |`);
  }
}

const keys = createKeys('qa');
const M = 'qa:{m}:';
const minimalFile = {
  reserve: 'minimal-reserve-4.lua',
  commit: 'minimal-commit-2.lua',
  release: 'minimal-release-2.lua',
};
const benchLuaDir = new URL('.', import.meta.url).pathname;
const reserveRequest = (productId, id) => ({
  productId,
  customerId: 'c',
  reservationId: id,
  amount: 1,
  idempotencyKey: id,
  fingerprint: 'fp',
});
const fcallArgs = (library, op, req) => {
  const entry = SCRIPTS[op];
  const k = keysFor(entry, req, keys);
  return ['FCALL', library.functionName(op), String(k.length), ...k, ...entry.args(req, SETTINGS).map(String)];
};
if (arg('instructions', null) !== null || process.argv.includes('--instructions')) {
  await instructionCounts();
  process.exit(0);
}

const server = await startRedisServer({});
pin(server.process.pid, '1');
const redis = new Redis(server.url);
const engine = createQuotaEngine({ redis, keys });

const minimalSha = await redis.script('LOAD', readFileSync(join(benchLuaDir, minimalFile[OP]), 'utf8'));
const minimalReserveSha = await redis.script('LOAD', readFileSync(join(benchLuaDir, minimalFile.reserve), 'utf8'));

const cpuSeconds = async () => {
  const info = await redis.info('cpu');
  const f = (n) => Number(new RegExp(`^${n}:([0-9.]+)`, 'm').exec(info)[1]);
  return f('used_cpu_sys_main_thread') + f('used_cpu_user_main_thread');
};
async function commandStats() {
  const out = new Map();
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    out.set(m[1], { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out;
}

function redisBenchmark(args, n) {
  const [cmd, a] = pinned('0', 'redis-benchmark', [
    '-p',
    String(server.port),
    '-n',
    String(n),
    '-c',
    '50',
    '-P',
    '16',
    '-r',
    '1000000000',
    '-q',
    ...args,
  ]);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, a, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`redis-benchmark exited ${code}`))));
  });
}

/** `calls` over 8 connections, 16 in flight on each. */
async function pipelined(calls) {
  const clients = Array.from({ length: 8 }, () => new Redis(server.url));
  let next = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (next < calls.length) {
        const p = c.pipeline();
        for (let i = 0; i < 16 && next < calls.length; i++) p.call(...calls[next++]);
        for (const [err, reply] of await p.exec()) {
          if (err) throw err;
          if (Array.isArray(reply) && reply[0] !== 'OK') throw new Error(`reply ${reply}`);
        }
      }
    }),
  );
  clients.forEach((c) => c.disconnect());
}

const productOf = (variant) => `v-${variant}`;
for (const [v, library] of libraries) {
  await redis.call('FUNCTION', 'LOAD', library.source);
  await engine.upsertProduct(
    productOf(v),
    { capacity: 1e15, holdTtlSeconds: 86_400, minAmount: 1, maxAmount: null },
    'put',
  );
  await engine.upsertLines(productOf(v), [
    { customerId: 'c', limit: 1e15, status: 'active', statusReason: null, tier: null },
  ]);
}
await redis.set(`${M}pool`, String(1e15));
const minimalReserveArgs = (id) => [
  'EVALSHA',
  minimalReserveSha,
  '4',
  `${M}pool`,
  `${M}line:c`,
  `${M}hold:${id}`,
  `${M}idem:${id}`,
  '1',
  '86400',
  'c',
];

// Every variant must still grant (a variant that refuses would measure a shorter path).
for (const [v, library] of libraries) {
  const id = `check-${v}`;
  const reply = await redis.call(...fcallArgs(library, 'reserve', reserveRequest(productOf(v), id)));
  if (reply[0] !== 'OK') throw new Error(`variant ${v}: reserve answered ${reply}`);
  if (OP !== 'reserve') {
    const ended = await redis.call(...fcallArgs(library, OP, { productId: productOf(v), reservationId: id }));
    if (ended[0] !== 'OK') throw new Error(`variant ${v}: ${OP} answered ${ended}`);
  }
}
await redis.set(`${M}line:c`, String(1e15));

let batch = 0;
/** One measured run of a variant (or the minimal script): {cpu, fcall, commands} µs per call. */
async function run(variant) {
  const library = libraries.get(variant);
  let command;
  let go;
  if (OP === 'reserve') {
    const args =
      variant === 'minimal'
        ? minimalReserveArgs('__rand_int__')
        : fcallArgs(library, 'reserve', reserveRequest(productOf(variant), '__rand_int__'));
    command = args[0].toLowerCase();
    go = () => redisBenchmark(args, CALLS);
  } else {
    const tag = `${OP}-${variant}-${batch++}`;
    const ids = Array.from({ length: CALLS }, (_, i) => `${tag}-${i}`);
    if (variant === 'minimal') {
      await pipelined(ids.map((id) => minimalReserveArgs(id)));
      const counter = OP === 'commit' ? `${M}committed` : `${M}pool`;
      const prefix = OP === 'commit' ? `${M}drawn:` : `${M}line:`;
      const calls = ids.map((id) => ['EVALSHA', minimalSha, '2', `${M}hold:${id}`, counter, prefix]);
      command = 'evalsha';
      go = () => pipelined(calls);
    } else {
      const p = productOf(variant);
      await pipelined(ids.map((id) => fcallArgs(library, 'reserve', reserveRequest(p, id))));
      const calls = ids.map((id) => fcallArgs(library, OP, { productId: p, reservationId: id }));
      command = 'fcall';
      go = () => pipelined(calls);
    }
  }
  const records = variant === 'minimal' ? null : keys.records(productOf(variant));
  const before = records ? await redis.hlen(records) : 0;
  await redis.config('RESETSTAT');
  const cpu0 = await cpuSeconds();
  await go();
  // A reserve replayed from a stored answer (a random id drawn twice) would measure a shorter path.
  const grown = records ? (await redis.hlen(records)) - before : CALLS;
  if (OP === 'reserve' && variant !== 'empty' && grown < CALLS * 0.98) {
    process.stderr.write(`warning: ${variant} wrote ${grown} records for ${CALLS} reserves\n`);
  }
  const cpu = (((await cpuSeconds()) - cpu0) * 1e6) / CALLS;
  const stats = await commandStats();
  const script = stats.get(command);
  let nested = 0;
  for (const [name, s] of stats) if (name !== command && name !== 'config' && name !== 'info') nested += s.usec;
  return { cpu, fcall: script.usec / script.calls, commands: nested / script.calls };
}

async function allocatedKb(variant) {
  const library = libraries.get(variant);
  const kb = [];
  for (let i = 0; i < 7; i++) {
    const id = `probe-${variant}-${i}-${Date.now()}`;
    if (OP !== 'reserve') await redis.call(...fcallArgs(library, 'reserve', reserveRequest(productOf(variant), id)));
    const req =
      OP === 'reserve' ? reserveRequest(productOf(variant), id) : { productId: productOf(variant), reservationId: id };
    const [, , ...rest] = fcallArgs(library, OP, req);
    kb.push(Number(await redis.call('FCALL', library.probe, ...rest)));
  }
  return median(kb);
}

const names = [...variantNames, 'minimal'];
const others = names.filter((n) => n !== 'base');
const results = new Map(names.map((n) => [n, []]));
/** Paired differences: each variant's run next to a run of base, in the same round. */
const deltas = new Map(others.map((n) => [n, []]));
const load = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const loadBefore = load();
const fullGc = async () => redis.call('FCALL', libraries.get('base').gc, '0');
const measured = async (n) => {
  await fullGc(); // every run starts with no garbage left by another
  const r = await run(n);
  results.get(n).push(r);
  return r;
};
try {
  if (PERF) {
    await run('base');
    const perf = spawn(
      'perf',
      [
        'record',
        '-F',
        process.env.PERF_FREQ ?? '4999',
        ...(process.env.PERF_CALLGRAPH ? ['--call-graph', process.env.PERF_CALLGRAPH] : ['-g']),
        '-o',
        PERF,
        '-p',
        String(server.process.pid),
      ],
      {
        stdio: 'inherit',
      },
    );
    await new Promise((r) => setTimeout(r, 500));
    for (let r = 0; r < ROUNDS; r++) await measured('base');
    perf.kill('SIGINT');
    await new Promise((r) => perf.on('exit', r));
    console.log(`perf data in ${PERF}; base CPU µs/call ${median(results.get('base').map((x) => x.cpu)).toFixed(1)}`);
  } else await compare();
} finally {
  redis.disconnect();
  await server.stop();
}

async function compare() {
  for (const n of names) await run(n); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    // A random order each round, and base right before or after each variant (alternately).
    const order = [...others].sort(() => Math.random() - 0.5);
    for (const [i, n] of order.entries()) {
      const [first, second] = i % 2 === 0 ? ['base', n] : [n, 'base'];
      const a = await measured(first);
      const b = await measured(second);
      const [base, v] = first === 'base' ? [a, b] : [b, a];
      deltas.get(n).push({ cpu: base.cpu - v.cpu, fcall: base.fcall - v.fcall, commands: base.commands - v.commands });
    }
    process.stderr.write(`round ${r + 1}/${ROUNDS} done (load ${load()})\n`);
  }
  const alloc = new Map();
  for (const n of variantNames) alloc.set(n, await allocatedKb(n));
  const med = (n, f) => median(results.get(n).map((x) => x[f]));
  const dmed = (n, f) => (n === 'base' ? 0 : median(deltas.get(n).map((x) => x[f])));
  console.log(
    `${OP}: ${CALLS} calls per run, ${ROUNDS} rounds (each variant next to a run of base), ` +
      `${canPin ? 'Redis on CPU 1, load on CPU 0' : 'not pinned'}; load average ${loadBefore} -> ${load()}`,
  );
  console.log(
    '| variant | CPU µs/call | FCALL µs/call | of it commands | Lua | Δ CPU ' +
      '(base - variant, paired) | Δ FCALL | Δ Lua | heap KB/call |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const n of names) {
    const fcall = med(n, 'fcall');
    const commands = med(n, 'commands');
    console.log(
      `| ${n} | ${med(n, 'cpu').toFixed(1)} | ${fcall.toFixed(1)} | ${commands.toFixed(1)} | ` +
        `${(fcall - commands).toFixed(1)} | ${dmed(n, 'cpu').toFixed(1)} | ${dmed(n, 'fcall').toFixed(1)} | ` +
        `${(dmed(n, 'fcall') - dmed(n, 'commands')).toFixed(1)} | ${alloc.has(n) ? alloc.get(n).toFixed(2) : ''} |`,
    );
  }
  const ratio = (f) => (med('base', f) / med('minimal', f)).toFixed(2);
  console.log(`base / minimal: CPU ${ratio('cpu')}x, commandstats ${ratio('fcall')}x`);
}
