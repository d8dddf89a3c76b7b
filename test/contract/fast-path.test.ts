/**
 * The reservation routes' fast path (src/http/fastPath.ts) answers exactly
 * as express's router does: the same request, once in the plain form the
 * fast path takes and once with a percent-encoded id (which only the router
 * takes), gives the same status, headers and body (ids, times and the request
 * id aside), the same metrics label and the same 401 without a key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_KEY, startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import { makeLine, makeProduct, uniqueId } from '../support/api.js';

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext();
});
afterAll(() => svc.stop());

/** The path with its product id's first character percent-encoded: same route, but not the fast path's form. */
const viaRouter = (path: string, productId: string) =>
  path.replace(`/products/${productId}/`, `/products/%${productId.charCodeAt(0).toString(16)}${productId.slice(1)}/`);

const VARYING_HEADERS = new Set(['x-request-id', 'location', 'date', 'keep-alive', 'connection']);
const VARYING_FIELDS = /"(reservationId|createdAt|expiresAt|committedAt|endedAt|settlementUpdatedAt)":("[^"]*"|null)/g;

async function send(path: string, body: string | undefined, headers: Record<string, string>) {
  const res = await fetch(`${svc.baseUrl}${path}`, { method: 'POST', headers, body });
  const text = await res.text();
  const shownHeaders = [...res.headers].filter(([name]) => !VARYING_HEADERS.has(name));
  return { status: res.status, headers: shownHeaders, body: text.replace(VARYING_FIELDS, '"$1":"*"'), raw: text };
}

const json = (key = CLIENT_KEY, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${key}`,
  'content-type': 'application/json',
  ...extra,
});

/** `headers`: a function gives each request its own (a fresh Idempotency-Key, so the second is no replay). */
async function bothWays(
  path: string,
  productId: string,
  body: string | undefined,
  headers: Record<string, string> | (() => Record<string, string>),
) {
  const headersOf = typeof headers === 'function' ? headers : () => headers;
  const fast = await send(path, body, headersOf());
  const routed = await send(viaRouter(path, productId), body, headersOf());
  expect(fast.headers).toEqual(routed.headers);
  expect(fast.body).toBe(routed.body);
  expect(fast.status).toBe(routed.status);
  return { fast, routed };
}

async function httpCount(route: string, statusClass: string): Promise<number> {
  const text = await (await fetch(`${svc.baseUrl}/metrics`)).text();
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('quota_http_request_duration_seconds_count{') &&
        l.includes(`route="${route}"`) &&
        l.includes('method="POST"') &&
        l.includes(`status_class="${statusClass}"`),
    );
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('the reservation fast path answers as the router does', () => {
  it('reserve, commit and release: same status, headers and body; counted under the route', async () => {
    const p = await makeProduct(svc, { capacity: 1000, holdTtlSeconds: 60 });
    await makeLine(svc, p, 'c1', { limit: 1000 });
    const reserveRoute = '/v1/products/:productId/reservations';
    const before = await httpCount(reserveRoute, '2xx');
    const reserved = await bothWays(
      `/v1/products/${p}/reservations`,
      p,
      JSON.stringify({ customerId: 'c1', amount: 5, ttlSeconds: 30 }),
      () => json(CLIENT_KEY, { 'idempotency-key': uniqueId('k') }),
    );
    expect(reserved.fast.status).toBe(201);
    expect(await httpCount(reserveRoute, '2xx')).toBe(before + 2);

    // Replays: the same key again, both ways.
    const key = uniqueId('k');
    const body = JSON.stringify({ customerId: 'c1', amount: 7 });
    await send(`/v1/products/${p}/reservations`, body, json(CLIENT_KEY, { 'idempotency-key': key }));
    await bothWays(`/v1/products/${p}/reservations`, p, body, json(CLIENT_KEY, { 'idempotency-key': key }));

    for (const op of ['commit', 'release'] as const) {
      const ids = [];
      for (let i = 0; i < 2; i++) {
        const r = await send(
          `/v1/products/${p}/reservations`,
          JSON.stringify({ customerId: 'c1', amount: 3 }),
          json(CLIENT_KEY, { 'idempotency-key': uniqueId('k') }),
        );
        ids.push((JSON.parse(r.raw) as { reservationId: string }).reservationId);
      }
      const opBody = op === 'commit' ? JSON.stringify({ amount: 2 }) : '{}';
      const fast = await send(`/v1/products/${p}/reservations/${ids[0]}/${op}`, opBody, json());
      const routed = await send(viaRouter(`/v1/products/${p}/reservations/${ids[1]}/${op}`, p), opBody, json());
      expect(fast.status).toBe(200);
      expect(fast.headers).toEqual(routed.headers);
      expect(fast.body).toBe(routed.body);
      // Again: the second answer of each (already committed or released).
      await bothWays(`/v1/products/${p}/reservations/${ids[0]}/${op}`, p, opBody, json());
    }
  });

  it('refusals and request errors: 401 first, 400s, 404 refusals, a too-deep body, bad JSON', async () => {
    const p = await makeProduct(svc, { capacity: 10 });
    await makeLine(svc, p, 'c1', { limit: 10 });
    const path = `/v1/products/${p}/reservations`;
    const reserveBody = JSON.stringify({ customerId: 'c1', amount: 5 });
    const withKey = (extra: Record<string, string> = {}) =>
      json(CLIENT_KEY, { 'idempotency-key': uniqueId('k'), ...extra });
    expect((await bothWays(path, p, reserveBody, json('not-a-key')).then((r) => r.fast)).status).toBe(401);
    expect((await bothWays(path, p, reserveBody, json()).then((r) => r.fast)).status).toBe(400); // no Idempotency-Key
    const cases = [
      JSON.stringify({ customerId: 'c1', amount: 0 }),
      JSON.stringify({ customerId: 'c1', amount: 5, extra: true }),
      JSON.stringify({ customerId: 'c1', amount: 5, ttlSeconds: 999_999 }),
      JSON.stringify({ customerId: 'c 1', amount: 5 }),
      '{"customerId":"c1","amount":5,"__proto__":{"x":1}}',
      '[1]',
      '"x"',
      '{bad',
      `${'['.repeat(40)}${']'.repeat(40)}`,
      JSON.stringify({ customerId: 'c1', amount: 50 }), // over the line: a refusal
      JSON.stringify({ customerId: 'nobody', amount: 1 }), // no line
    ];
    for (const body of cases) {
      const { fast } = await bothWays(path, p, body, withKey);
      expect(fast.status, body).toBeGreaterThanOrEqual(400);
    }
    const missing = `/v1/products/${p}/reservations/nope/commit`;
    expect((await bothWays(missing, p, '{}', json())).fast.status).toBe(404);
    expect((await bothWays(`${missing}?x=1`, p, '{"amount":-1}', json())).fast.status).toBe(400);
    expect((await bothWays(`/v1/products/${p}/reservations/nope/release/`, p, '{"a":1}', json())).fast.status).toBe(
      400,
    );
  });
});
