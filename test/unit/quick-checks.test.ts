/**
 * The hot routes' quick checks (src/http/quickChecks.ts) against zod: on
 * every value one accepts it answers exactly what zod's parse gives (same
 * keys in the same order), and everything zod refuses the quick check leaves
 * to zod (undefined), so every 400 stays zod's.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  quickCommitBody,
  quickEmptyBody,
  quickIdempotencyKey,
  quickProductParams,
  quickReservationParams,
  quickReserveBody,
} from '../../src/http/quickChecks.js';
import {
  commitBody,
  emptyBody,
  idempotencyKeyHeader,
  productParams,
  reservationParams,
  reserveBody,
} from '../../src/http/schemas.js';

const ids: unknown[] = [
  'c1',
  'A.b_c-9',
  'x'.repeat(64),
  'x'.repeat(65),
  '',
  'a b',
  'a:b',
  'é',
  1,
  null,
  undefined,
  ['a'],
];
const ints: unknown[] = [1, 2, 100, 86_400, 86_401, 0, -1, 1.5, 2 ** 53, 2 ** 53 - 1, NaN, Infinity, '5', null, true];

const reserveValues: unknown[] = [
  null,
  undefined,
  [],
  'x',
  5,
  {},
  { customerId: 'c1' },
  { amount: 5 },
  JSON.parse('{"customerId":"c1","amount":5,"__proto__":{"x":1}}'),
  { customerId: 'c1', amount: 5, extra: 1 },
  { customerId: 'c1', amount: 5, metadata: { a: 1 } },
  { customerId: 'c1', amount: 5, ttlSeconds: undefined },
  Object.create({ inherited: 1 }),
  ...ids.flatMap((customerId) => ints.map((amount) => ({ customerId, amount }))),
  ...ints.map((ttlSeconds) => ({ customerId: 'c1', amount: 5, ttlSeconds })),
  ...ints.map((ttlSeconds) => ({ ttlSeconds, amount: 7, customerId: 'c2' })),
];
const commitValues: unknown[] = [
  null,
  [],
  {},
  { amount: undefined },
  { extra: 1 },
  JSON.parse('{"__proto__":{}}'),
  ...ints.map((amount) => ({ amount })),
  ...ints.map((amount) => ({ amount, extra: 1 })),
];

/**
 * zod's answer as the quick check would give it: the value (as JSON, key order included) or undefined for a refusal.
 */
function zodsAnswer(schema: z.ZodType, value: unknown): string | undefined {
  const result = schema.safeParse(value);
  return result.success ? JSON.stringify(result.data) : undefined;
}

function agrees(quick: (v: never) => unknown, schema: z.ZodType, value: unknown): void {
  const answer = quick(value as never);
  if (answer === undefined) return; // left to zod: always allowed
  expect(JSON.stringify(answer), JSON.stringify(value)).toBe(zodsAnswer(schema, value));
}

describe('quick checks agree with zod', () => {
  it('reserve bodies', () => {
    for (const v of reserveValues) agrees(quickReserveBody, reserveBody, v);
    expect(quickReserveBody({ customerId: 'c1', amount: 5 })).toEqual({ customerId: 'c1', amount: 5 });
    expect(quickReserveBody({ amount: 5, ttlSeconds: 60, customerId: 'c1' })).toEqual({
      customerId: 'c1',
      amount: 5,
      ttlSeconds: 60,
    });
  });

  it('commit and release bodies', () => {
    for (const v of commitValues) agrees(quickCommitBody, commitBody, v);
    for (const v of commitValues) agrees(quickEmptyBody, emptyBody, v);
    expect(quickCommitBody({})).toEqual({});
    expect(quickCommitBody({ amount: 3 })).toEqual({ amount: 3 });
    expect(quickEmptyBody({})).toEqual({});
  });

  it('path ids and the Idempotency-Key header', () => {
    for (const a of ids) {
      agrees(quickIdempotencyKey, idempotencyKeyHeader, a);
      agrees(quickProductParams, productParams, { productId: a });
      for (const b of ids) agrees(quickReservationParams, reservationParams, { productId: a, reservationId: b });
    }
    expect(quickIdempotencyKey('k-1')).toBe('k-1');
    expect(quickReservationParams({ productId: 'p', reservationId: 'r' })).toEqual({
      productId: 'p',
      reservationId: 'r',
    });
  });
});
