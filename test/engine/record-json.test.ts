/**
 * The reserve builds a new hold's record JSON as a string
 * (lua/includes/records.lua newHoldJson) instead of a table it then
 * encodes: stored records must stay byte for byte what cjson.encode of that
 * table gave (the format every running version reads), whatever the ids,
 * idempotency key and metadata hold (quotes, backslashes, '/', control
 * characters, UTF-8).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findLuaDir, withoutIncludeLines } from '../../src/engine/luaScripts.js';
import { startRedisServer, type RedisServerHandle } from '../../src/redis/redisServer.js';

let server: RedisServerHandle;
let redis: Redis;
beforeAll(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const include = (name: string) =>
  withoutIncludeLines(readFileSync(join(findLuaDir(), 'includes', `${name}.lua`), 'utf8'));

// The table reserve built before newHoldJson, encoded by cjson, against newHoldJson.
const COMPARE = `
${include('numbers')}
${include('records')}
local out = {}
for i, c in ipairs(cjson.decode(ARGV[1])) do
  local t = {reservationId = c[1], productId = c[2], customerId = c[3], amount = c[4], status = 'held',
    createdAt = c[5], expiresAt = c[6], committedAmount = '0', metadata = c[7], attempts = '0',
    idempotencyKey = c[8]}
  t.eventIds = c[9]
  out[#out + 1] = cjson.encode(t)
  out[#out + 1] = newHoldJson(c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9])
end
return out
`;

describe('a new hold record built as a string', () => {
  it('is byte for byte the JSON cjson gave for the record table', async () => {
    const odd = ['a"b', 'back\\slash', 'sl/ash', 'tab\there', 'nl\nx', '\u0001\u001f\u007f', 'é€😀', '', ' '];
    const cases: string[][] = [
      ['r1', 'b', 'c', '1', '1796184262460', '1796270662460', '', 'k1', '1796184262460-0'],
      [
        '0f8fad5b-d9cb-469f-a165-70867728950e',
        'launch-2026.q4',
        'cust_42',
        '9007199254740991',
        '1796184262460',
        '1796270662460',
        JSON.stringify({ campaign: 'spring', note: 'a "quoted" / slashed \\ note', n: 3 }),
        'idem/key with spaces',
        '1796184262460-17',
      ],
      ...odd.map((s, i) => [`r${s}`, `p${s}`, `c${s}`, String(i + 1), '1', '2', s, `k${s}`, `${i}-0`]),
    ];
    const out = (await redis.eval(COMPARE, 0, JSON.stringify(cases))) as string[];
    expect(out).toHaveLength(cases.length * 2);
    for (let i = 0; i < cases.length; i++) expect(out[2 * i + 1]).toBe(out[2 * i]);
  });
});
