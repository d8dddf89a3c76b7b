/**
 * Contract: 400 INVALID_REQUEST (naming the field) for bodies, headers and
 * paths; 413 PAYLOAD_TOO_LARGE; 400 before 404 and before 413.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  admin,
  client,
  expectInvalid,
  expectProblem,
  getPool,
  makeLine,
  makeProduct,
  raw,
  repay,
  reserve,
  uniqueId,
} from '../../support/api.js';

let svc: ServiceContext;
let p: string;
beforeAll(async () => {
  svc = await startServiceContext();
  p = await makeProduct(svc, { capacity: 1_000_000, holdTtlSeconds: 60 });
  await makeLine(svc, p, 'c1', { limit: 1_000_000 });
});
afterAll(() => svc.stop());

const reservePath = () => `/v1/products/${p}/reservations`;
const rawReserve = (text: string, key: string | null = uniqueId('k'), contentType?: string | null) =>
  raw(svc, 'POST', reservePath(), { body: text, headers: key ? { 'Idempotency-Key': key } : {}, contentType });

describe('400 INVALID_REQUEST on reserve, naming the field', () => {
  const badAmounts: [string, unknown][] = [
    ['a string', '10'],
    ['a fraction', 1.5],
    ['a negative', -1],
    ['zero', 0],
    ['2^53', 2 ** 53],
    ['null', null],
    ['a boolean', true],
    ['an object', { value: 1 }],
  ];
  for (const [label, amount] of badAmounts) {
    it(`amount: ${label}`, async () => {
      expectInvalid(await reserve(svc, p, { customerId: 'c1', amount }), 'amount');
    });
  }

  it('amount: missing', async () => {
    expectInvalid(await reserve(svc, p, { customerId: 'c1' }), 'amount');
  });

  it('amount: an exponent beyond the safe range (1e16, 1e400)', async () => {
    expectInvalid(await rawReserve('{"customerId":"c1","amount":1e16}'), 'amount');
    expectInvalid(await rawReserve('{"customerId":"c1","amount":1e400}'), 'amount');
    expectInvalid(await rawReserve('{"customerId":"c1","amount":9007199254740993}'), 'amount');
  });

  const badIds: [string, unknown][] = [
    ['with a colon', 'a:b'],
    ['with an opening brace', 'a{b'],
    ['with a closing brace', 'a}b'],
    ['65 characters', 'c'.repeat(65)],
    ['empty', ''],
    ['with a space', 'a b'],
    ['a number', 42],
  ];
  for (const [label, customerId] of badIds) {
    it(`customerId: ${label}`, async () => {
      expectInvalid(await reserve(svc, p, { customerId, amount: 1 }), 'customerId');
    });
  }

  it('a 64-character id of the allowed alphabet is accepted', async () => {
    const c = `A-z_0.9${'x'.repeat(57)}`;
    expect(c.length).toBe(64);
    await makeLine(svc, p, c, { limit: 10 });
    expect((await reserve(svc, p, { customerId: c, amount: 1 }, 'K'.repeat(64))).status).toBe(201);
  });

  it('Idempotency-Key: missing (detail names the header)', async () => {
    expectInvalid(await reserve(svc, p, { customerId: 'c1', amount: 1 }, null), /idempotency-key/i);
  });

  it('Idempotency-Key: malformed (65 characters, a colon, braces, empty) is a 400', async () => {
    for (const key of ['k'.repeat(65), 'a:b', '{k}', '']) {
      const res = await client(svc, 'POST', reservePath(), { customerId: 'c1', amount: 1 }, { 'Idempotency-Key': key });
      expectProblem(res, 400, 'INVALID_REQUEST');
    }
  });

  it('Idempotency-Key: malformed (detail names the header)', async () => {
    const res = await client(svc, 'POST', reservePath(), { customerId: 'c1', amount: 1 }, { 'Idempotency-Key': 'a:b' });
    expectInvalid(res, /idempotency-key/i);
  });

  it('ttlSeconds: 0, a fraction, a string, above the product holdTtlSeconds, above 86400', async () => {
    for (const ttlSeconds of [0, 1.5, '5', -1, 61, 86_401]) {
      expectInvalid(await reserve(svc, p, { customerId: 'c1', amount: 1, ttlSeconds }), 'ttlSeconds');
    }
  });

  it('metadata: over 1 KiB as UTF-8 JSON is refused; exactly 1 KiB is accepted', async () => {
    const sized = (bytes: number) => {
      const m = { note: '' };
      m.note = 'x'.repeat(bytes - JSON.stringify(m).length);
      expect(Buffer.byteLength(JSON.stringify(m))).toBe(bytes);
      return m;
    };
    expect((await reserve(svc, p, { customerId: 'c1', amount: 1, metadata: sized(1024) })).status).toBe(201);
    expectInvalid(await reserve(svc, p, { customerId: 'c1', amount: 1, metadata: sized(1025) }), 'metadata');
    // counted in UTF-8 bytes, not characters: 600 two-byte characters are over 1 KiB
    const wide = { note: 'é'.repeat(600) };
    expect(JSON.stringify(wide).length).toBeLessThan(1024);
    expectInvalid(await reserve(svc, p, { customerId: 'c1', amount: 1, metadata: wide }), 'metadata');
  });

  it('metadata: not a JSON object', async () => {
    for (const metadata of ['text', [1, 2], 5]) {
      expectInvalid(await reserve(svc, p, { customerId: 'c1', amount: 1, metadata }), 'metadata');
    }
  });

  it('unknown body fields', async () => {
    expectInvalid(await reserve(svc, p, { customerId: 'c1', amount: 1, currency: 'CNY' }), 'currency');
  });

  it('invalid JSON, a non-object body, a non-JSON content type', async () => {
    expectInvalid(await rawReserve('{"customerId":"c1","amount":1'), 'body');
    expectInvalid(await rawReserve("{customerId:'c1'}"), 'body');
    expectInvalid(await rawReserve('[1,2,3]'), 'body');
    expectInvalid(await rawReserve('"c1"'), 'body');
    expectInvalid(
      await rawReserve('customerId=c1&amount=1', uniqueId('k'), 'application/x-www-form-urlencoded'),
      'body',
    );
    expectInvalid(await rawReserve('', uniqueId('k'), null), 'body');
  });

  it('productId in the path', async () => {
    for (const bad of ['a:b', 'a{b}', 'p'.repeat(65), 'a%20b']) {
      expectInvalid(await reserve(svc, bad, { customerId: 'c1', amount: 1 }), 'productId');
    }
  });

  it('none of the refused requests held anything', async () => {
    const snap = await getPool(svc, p);
    // only the accepted reserves in this file: 1 (64-char id) + 1 (1 KiB metadata)
    expect(snap.held).toBe(2);
  });
});

describe('400 on repayments', () => {
  it('amount and Idempotency-Key are validated', async () => {
    for (const amount of ['5', 0, -5, 1.5, 2 ** 53]) expectInvalid(await repay(svc, p, 'c1', { amount }), 'amount');
    expectInvalid(await repay(svc, p, 'c1', {}), 'amount');
    expectInvalid(await repay(svc, p, 'c1', { amount: 1, note: 'x' }), 'note');
    expectInvalid(await repay(svc, p, 'a:b', { amount: 1 }), 'customerId');
    expectProblem(await repay(svc, p, 'c1', { amount: 1 }, 'a:b'), 400, 'INVALID_REQUEST');
  });

  it('a missing Idempotency-Key is a 400 whose detail names the header', async () => {
    expectInvalid(await repay(svc, p, 'c1', { amount: 1 }, null), /idempotency-key/i);
  });
});

describe('400 before 404', () => {
  it('an invalid request on an unknown product is a 400', async () => {
    const unknown = uniqueId('p');
    expectInvalid(await reserve(svc, unknown, { customerId: 'c1', amount: 'x' }), 'amount');
    expectProblem(await reserve(svc, unknown, { customerId: 'c1', amount: 1 }, null), 400, 'INVALID_REQUEST');
    expectInvalid(await client(svc, 'GET', `/v1/products/${unknown}/customers/a:b`), 'customerId');
    expectInvalid(await admin(svc, 'PUT', `/v1/products/${unknown}/customers/c1`, { limit: -1 }), 'limit');
    expectInvalid(await admin(svc, 'PATCH', `/v1/products/${unknown}`, { capacity: 'lots' }), 'capacity');
    expectInvalid(await repay(svc, unknown, 'c1', { amount: 0 }), 'amount');
    expectInvalid(await client(svc, 'POST', `/v1/products/${unknown}/reservations/r1/commit`, { amount: 0 }), 'amount');
  });

  it('an invalid request for an unknown customer is a 400', async () => {
    expectInvalid(await reserve(svc, p, { customerId: 'nobody', amount: -1 }), 'amount');
  });
});

describe('413 PAYLOAD_TOO_LARGE (16 KiB default limit)', () => {
  const big = () => ({ customerId: 'c1', amount: 1, metadata: { blob: 'x'.repeat(20 * 1024) } });

  it('a JSON body over the limit is refused with 413 problem+json', async () => {
    const res = await reserve(svc, p, big());
    expectProblem(res, 413, 'PAYLOAD_TOO_LARGE');
    const put = await admin(svc, 'PUT', `/v1/products/${uniqueId('p')}`, { capacity: 1, pad: 'x'.repeat(17 * 1024) });
    expectProblem(put, 413, 'PAYLOAD_TOO_LARGE');
    const rep = await repay(svc, p, 'c1', { amount: 1, pad: 'y'.repeat(17 * 1024) });
    expectProblem(rep, 413, 'PAYLOAD_TOO_LARGE');
  });

  it('a 413 is not stored: the same key then works with a normal body', async () => {
    const key = uniqueId('k');
    expectProblem(await reserve(svc, p, big(), key), 413, 'PAYLOAD_TOO_LARGE');
    expect((await reserve(svc, p, { customerId: 'c1', amount: 3 }, key)).status).toBe(201);
  });

  // "When several rules apply, the answer is the first of: 401, 403, 400, 413; ..."
  it('400 before 413: a missing Idempotency-Key with an oversized body is a 400', async () => {
    expectProblem(await reserve(svc, p, big(), null), 400, 'INVALID_REQUEST');
  });

  it('400 before 413: a bad productId in the path with an oversized body is a 400 (reserve)', async () => {
    expectInvalid(await reserve(svc, 'p'.repeat(65), big()), 'productId');
  });

  it('400 before 413: a bad productId in the path with an oversized body is a 400 (PUT product)', async () => {
    expectInvalid(
      await admin(svc, 'PUT', `/v1/products/bad:id`, { capacity: 1, pad: 'x'.repeat(17 * 1024) }),
      'productId',
    );
  });
});

describe('requests express cannot read are 400, never 500', () => {
  it(
    'a path that does not percent-decode is 400 ' + 'INVALID_REQUEST naming the path; 401 first without a key',
    async () => {
      for (const path of ['/v1/products/%ZZ', `/v1/products/${p}/reservations/%E0%A4%A/commit`]) {
        const res = await raw(svc, 'GET', path);
        expectProblem(res, 400, 'INVALID_REQUEST');
        expect(res.body.detail).toMatch(/^path:/);
        expect(res.body.errors).toEqual([{ field: 'path', message: 'not a valid percent-encoded URL' }]);
        expectProblem(await raw(svc, 'GET', path, { key: null }), 401, 'UNAUTHENTICATED');
      }
    },
  );

  it('a body that does not decompress is 400 INVALID_REQUEST and changes nothing', async () => {
    const before = await getPool(svc, p);
    const res = await raw(svc, 'POST', reservePath(), {
      body: JSON.stringify({ customerId: 'c1', amount: 1 }),
      headers: { 'content-encoding': 'br', 'idempotency-key': uniqueId('k') },
    });
    expectProblem(res, 400, 'INVALID_REQUEST');
    expect((await getPool(svc, p)).held).toBe(before.held);
  });

  it('a commit body not sent as JSON is 400 (never silently a commit of the whole hold); the hold stays', async () => {
    const r = await reserve(svc, p, { customerId: 'c1', amount: 20 });
    expect(r.status).toBe(201);
    const path = `/v1/products/${p}/reservations/${r.body.reservationId}/commit`;
    const form = await raw(svc, 'POST', path, {
      body: '{"amount":5}',
      contentType: 'application/x-www-form-urlencoded',
    });
    expectInvalid(form, 'Content-Type');
    const still = await client(svc, 'GET', `/v1/products/${p}/reservations/${r.body.reservationId}`);
    expect(still.body).toMatchObject({ status: 'held', amount: 20, committedAmount: 0 });
    // An empty body (no Content-Type needed) still means "all of the hold".
    const all = await raw(svc, 'POST', path);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ status: 'committed', committedAmount: 20 });
  });
});

describe('a "__proto__" key in a body', () => {
  it('is refused with 400 naming where (zod would drop it from metadata silently); nothing is held', async () => {
    const before = await getPool(svc, p);
    const res = await raw(svc, 'POST', reservePath(), {
      body: '{"customerId":"c1","amount":1,"metadata":{"__proto__":{"x":1},"orderId":"o-1"}}',
      headers: { 'idempotency-key': uniqueId('k') },
    });
    expectInvalid(res, 'body.metadata.__proto__');
    expect((await getPool(svc, p)).held).toBe(before.held);
    // Other keys, nested ones included, pass through exactly.
    const ok = await reserve(svc, p, {
      customerId: 'c1',
      amount: 1,
      metadata: { orderId: 'o-1', nested: { constructor: 'x' } },
    });
    expect(ok.status).toBe(201);
    expect(ok.body.metadata).toEqual({ orderId: 'o-1', nested: { constructor: 'x' } });
  });
});

describe('every 400 lists errors: [{ field, message }]', () => {
  it('an unknown body field is named as itself', async () => {
    const res = await reserve(svc, p, { customerId: 'c1', amount: 1, ammount: 5 });
    const body = expectInvalid(res, 'body.ammount');
    expect(body.errors).toEqual([{ field: 'body.ammount', message: 'unknown field' }]);
  });

  it('a body that is not JSON names the body', async () => {
    const res = await raw(svc, 'POST', reservePath(), { body: '{bad', headers: { 'idempotency-key': uniqueId('k') } });
    const body = expectInvalid(res, 'body');
    expect(body.errors).toEqual([{ field: 'body', message: 'not valid JSON' }]);
  });
});
