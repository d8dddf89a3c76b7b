/**
 * The script catalogue (src/engine/scriptCatalogue.ts) against the Lua files:
 * each entry's keys are its script's KEYS header, in order, and what the key
 * builder produces; its encoder gives the ARGV the header lists; its codes
 * are the header's Reply codes; every code any script can return is a known
 * one; and no script or include builds a key: every redis.call names a key
 * bound from KEYS. Pure file checks, no Redis.
 */
import { describe, expect, it } from 'vitest';
import { buildFunctionLibrary } from '../../src/engine/functionLibrary.js';
import { createIncludeReader, findLuaDir, loadLuaScripts, withoutIncludeLines } from '../../src/engine/luaScripts.js';
import { keysFor, SCRIPTS, type AnyScriptEntry, type KeyRole } from '../../src/engine/scriptCatalogue.js';
import { REFUSAL_CODES, SCRIPT_CODES } from '../../src/engine/types.js';
import { PROBLEMS } from '../../src/http/problems.js';
import { createKeys } from '../../src/redis/keys.js';

const scripts = loadLuaScripts();
const readInclude = createIncludeReader(findLuaDir());
const keys = createKeys('qa');
const settings = { reclaimLimit: 100, idempotencyTtlSeconds: 86_400, idempotencyRefusalTtlSeconds: 3_600 };

/** One request per entry, for the key builder and the argument encoder. */
const SAMPLES: Record<keyof typeof SCRIPTS, Record<string, unknown> & { productId: string }> = {
  upsertPool: { productId: 'p', mode: 'patch', config: { capacity: 10, maxAmount: null } },
  readPool: { productId: 'p' },
  readPoolCounters: { productId: 'p' },
  upsertLines: {
    productId: 'p',
    lines: [
      { customerId: 'c1', limit: 1, status: 'active', statusReason: null, tier: null },
      { customerId: 'c2', limit: 2, status: 'frozen', statusReason: 'r', tier: 'gold' },
    ],
  },
  readLine: { productId: 'p', customerId: 'c1' },
  reserve: { productId: 'p', customerId: 'c1', reservationId: 'r1', amount: 5, idempotencyKey: 'k', fingerprint: 'f' },
  commit: { productId: 'p', reservationId: 'r1' },
  release: { productId: 'p', reservationId: 'r1' },
  getReservation: { productId: 'p', reservationId: 'r1' },
  repay: { productId: 'p', customerId: 'c1', amount: 5, idempotencyKey: 'k', fingerprint: 'f' },
  recordSettlement: { productId: 'p', reservationId: 'r1', outcome: 'settled', reason: '', requiredStatus: '' },
  reclaimExpired: { productId: 'p', limit: 10 },
  indexRecords: { productId: 'p', reservationIds: ['r1', 'r2'] },
  recordLedgerEntry: { productId: 'p', reservationId: 'r1', entry: '{}' },
  readLedgerEntry: { productId: 'p', reservationId: 'r1' },
  shardGive: { productId: 'p', amount: 5, to: '1', mode: 'all' },
  shardTake: { productId: 'p', seq: '1', amount: 5, from: '0' },
  auditProduct: { productId: 'p', options: { settledBatch: 1, liveLimit: 2, lineWindow: 3 } },
};

interface Header {
  keys: { index: number; role: string }[];
  argv: { fixed: number; variadicFrom: number | undefined };
  codes: Set<string>;
}

const CODE = /\b[A-Z][A-Z_]*[A-Z]\b/g;
const NOT_CODES = new Set(['KEYS', 'ARGV', 'HTTP', 'JSON', 'TTL']);

function parseHeader(file: string): Header {
  const header = /^--\[\[([\s\S]*?)\]\]/.exec(file)?.[1] ?? '';
  const keyLines = [...header.matchAll(/^\s*KEYS\[(\d+)\]\s+(\S+)/gm)].map((m) => ({
    index: Number(m[1]),
    role: m[2]!,
  }));
  const argv = [...header.matchAll(/ARGV\[(\d+)(\.\.)?\]/g)];
  const fixed = Math.max(0, ...argv.filter((m) => !m[2]).map((m) => Number(m[1])));
  const variadic = argv.find((m) => m[2]);
  const reply = header.slice(header.indexOf('Reply:'));
  const codes = new Set([...reply.matchAll(CODE)].map((m) => m[0]).filter((c) => !NOT_CODES.has(c)));
  return { keys: keyLines, argv: { fixed, variadicFrom: variadic ? Number(variadic[1]) : undefined }, codes };
}

/** Lua text without its redis.call(...) calls (balanced parentheses), so command names and keywords go. */
function withoutRedisCalls(lua: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const start = lua.indexOf('redis.call(', i);
    if (start < 0) return out + lua.slice(i);
    out += lua.slice(i, start);
    let depth = 0;
    let j = start + 'redis.call'.length;
    do {
      if (lua[j] === '(') depth++;
      else if (lua[j] === ')') depth--;
      j++;
    } while (depth > 0 && j < lua.length);
    i = j;
  }
}

/** Code literals ('POOL_EXHAUSTED') in Lua text, leaving out Redis command names and keywords. */
function codeLiterals(lua: string): Set<string> {
  const code = withoutRedisCalls(lua.replace(/--\[\[[\s\S]*?\]\]/g, '').replace(/--.*$/gm, ''));
  return new Set([...code.matchAll(/'([A-Z][A-Z_]*[A-Z])'/g)].map((m) => m[1]!));
}

const body = (file: string) => withoutIncludeLines(file).replace(/^--\[\[[\s\S]*?\]\]/, '');
const roleName = (role: string) => role.replace(/^status:/, '');

describe('the script catalogue matches the Lua files', () => {
  const entries = Object.entries(SCRIPTS) as [keyof typeof SCRIPTS, AnyScriptEntry][];

  it('covers every script file, once', () => {
    expect(entries.map(([, e]) => e.name).sort()).toEqual([...scripts.keys()].sort());
  });

  for (const [method, entry] of entries) {
    describe(`${method} (lua/${entry.name}-${entry.keys.length}.lua)`, () => {
      const script = scripts.get(entry.name)!;
      const header = parseHeader(script?.file ?? '');

      it('KEYS: the file name, the header and the catalogue agree, and the builder makes those keys', () => {
        expect(script, `lua/${entry.name}-*.lua exists`).toBeDefined();
        expect(script.numberOfKeys).toBe(entry.keys.length);
        expect(header.keys.map((k) => k.index)).toEqual(entry.keys.map((_, i) => i + 1));
        expect(header.keys.map((k) => k.role)).toEqual([...entry.keys]);
        const built = keysFor(entry, SAMPLES[method], keys);
        const expected = entry.keys.map((role: KeyRole) =>
          role.startsWith('status:')
            ? keys.status('p', role.slice(7) as never)
            : role === 'idempotency'
              ? keys.idempotency('p', entry.name === 'repay' ? 'repay' : 'reserve', 'k')
              : (keys as unknown as Record<string, (p: string) => string>)[role]!('p'),
        );
        expect(built).toEqual(expected);
      });

      it('the body binds KEYS[i] to the header role, once, in one table, and nowhere else', () => {
        const text = body(script.file);
        const bindings = [...text.matchAll(/(\w+) = KEYS\[(\d+)\]/g)].map((m) => ({
          index: Number(m[2]),
          role: m[1]!,
        }));
        expect(bindings).toEqual(header.keys.map((k) => ({ index: k.index, role: roleName(k.role) })));
        expect([...text.matchAll(/KEYS\[/g)].length).toBe(header.keys.length);
        expect(text).not.toMatch(/\bk\.\w+\s*=[^=]/); // the key table is never changed
        expect(text).not.toMatch(/\bk\[[^\]]+\]\s*=[^=]/);
      });

      it('ARGV: the encoder gives what the header lists', () => {
        const args = entry.args(SAMPLES[method], settings);
        if (header.argv.variadicFrom === undefined) {
          expect(args.length).toBe(header.argv.fixed);
        } else {
          expect(header.argv.fixed).toBe(header.argv.variadicFrom - 1);
          expect(args.length).toBeGreaterThan(header.argv.fixed);
        }
        for (const a of args) expect(['string', 'number']).toContain(typeof a);
      });

      it('codes: the header Reply section and the catalogue list the same ones; the body answers no other', () => {
        expect([...header.codes].sort()).toEqual([...entry.codes].sort());
        const own = codeLiterals(body(script.file));
        for (const c of own) expect(entry.codes, `${entry.name} answers ${c}`).toContain(c);
        const reachable = new Set([...own, ...script.includes.flatMap((i) => [...codeLiterals(readInclude(i))])]);
        for (const c of entry.codes) expect(reachable.has(c), `${entry.name} can answer ${c}`).toBe(true);
      });
    });
  }
});

describe('codes', () => {
  it('every code any script or include can return is in the one list (src/engine/types.ts)', () => {
    const library = buildFunctionLibrary();
    const literals = codeLiterals(library.source);
    expect(literals.size).toBeGreaterThan(20);
    for (const c of literals) expect(SCRIPT_CODES, c).toContain(c);
    for (const entry of Object.values(SCRIPTS)) for (const c of entry.codes) expect(SCRIPT_CODES).toContain(c);
  });

  it('every refusal has an HTTP answer (TTL_OUT_OF_RANGE and INVALID_CONFIG answer 400 INVALID_REQUEST)', () => {
    for (const c of REFUSAL_CODES) {
      if (c === 'TTL_OUT_OF_RANGE' || c === 'INVALID_CONFIG') continue;
      expect(PROBLEMS, c).toHaveProperty(c);
    }
  });
});

describe('no script builds a key', () => {
  const KEYLESS = new Set(['TIME']);
  const files = [
    ...[...scripts.values()].map((s) => ({ name: `${s.name}-${s.numberOfKeys}.lua`, text: body(s.file) })),
    ...[...new Set([...scripts.values()].flatMap((s) => s.includes))].map((i) => ({
      name: `${i}.lua`,
      text: body(readInclude(i)),
    })),
  ];

  it('finds the calls it checks (the check can fail)', () => {
    const calls = files.flatMap((f) => [...f.text.matchAll(/redis\.call\(/g)]);
    expect(calls.length).toBeGreaterThan(40);
    expect(checkCalls("redis.call('HGET', prefix .. 'res:' .. id, 'x')")).toEqual(["HGET prefix .. 'res:' .. id"]);
    expect(checkCalls("redis.call('GET', KEYS[1])")).toEqual(['GET KEYS[1]']);
  });

  function checkCalls(text: string): string[] {
    const bad: string[] = [];
    for (const m of text.matchAll(/redis\.call\(\s*'(\w+)'\s*(?:,\s*([^,)]+))?/g)) {
      const [, command, key] = m;
      if (KEYLESS.has(command!)) continue;
      if (!key || !/^k\.\w+$|^k\[\w+\]$/.test(key.trim())) bad.push(`${command} ${key?.trim() ?? ''}`);
    }
    return bad;
  }

  for (const f of files) {
    it(`${f.name}: every redis.call names a key of the KEYS table (k.<role>)`, () => {
      expect(checkCalls(f.text)).toEqual([]);
      if (f.name.startsWith('includes/')) expect(f.text).not.toMatch(/KEYS\[/);
    });
  }
});
