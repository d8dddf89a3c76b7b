/**
 * Contract: GET /v1/products (every product, cursor-paged),
 * GET /v1/products/{productId}/customers/{customerId}/reservations (newest
 * first, every state, cursor-paged; 404 for an unknown product, an empty list
 * for a customer with none) and the admin status listing's nextCursor.
 * Real HTTP against the in-process service and its private Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  admin,
  client,
  commit,
  expectInvalid,
  expectProblem,
  hold,
  makeLine,
  makeProduct,
  release,
  sleep,
  uniqueId,
} from '../../support/api.js';

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext();
});
afterAll(() => svc.stop());

/** Follows nextCursor from the first page; returns every page. */
async function pages(call: (cursor: string | null) => Promise<{ status: number; body: any }>) {
  const out: any[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 100; i++) {
    const res = await call(cursor);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    out.push(res.body);
    cursor = res.body.nextCursor;
    if (cursor === null) return out;
  }
  throw new Error('no last page in 100');
}

describe('GET /v1/products', () => {
  it('lists every product as pool snapshots, by id, a page at a time; nothing twice, nothing left out', async () => {
    const ids = ['b', 'a', 'e', 'c', 'd'].map((x) => `list-${x}-${uniqueId('p')}`);
    for (const [i, p] of ids.entries()) await makeProduct(svc, { capacity: 1_000 + i }, p);
    await makeLine(svc, ids[0]!, 'c1');
    await hold(svc, ids[0]!, 'c1', 25);

    const all = await client(svc, 'GET', '/v1/products');
    expect(all.status).toBe(200);
    expect(all.body.nextCursor).toBeNull(); // default limit 100
    const mine = all.body.items.filter((i: any) => ids.includes(i.productId));
    expect(mine.map((i: any) => i.productId)).toEqual([...ids].sort());
    expect(mine.find((i: any) => i.productId === ids[0])).toMatchObject({ capacity: 1_000, held: 25, available: 975 });
    // the same snapshot as the one-product read
    expect(mine[0]).toEqual((await client(svc, 'GET', `/v1/products/${mine[0].productId}`)).body);

    const paged = await pages((cursor) =>
      client(svc, 'GET', `/v1/products?limit=2${cursor ? `&cursor=${cursor}` : ''}`),
    );
    expect(paged.length).toBe(Math.ceil(all.body.items.length / 2));
    for (const page of paged.slice(0, -1)) expect(page.items).toHaveLength(2);
    expect(paged.flatMap((page) => page.items.map((i: any) => i.productId))).toEqual(
      all.body.items.map((i: any) => i.productId),
    );
  });

  it('refuses a limit outside 1-500 and a cursor it did not give out, with 400 INVALID_REQUEST', async () => {
    expectInvalid(await client(svc, 'GET', '/v1/products?limit=0'), 'query.limit');
    expectInvalid(await client(svc, 'GET', '/v1/products?limit=501'), 'query.limit');
    expectInvalid(await client(svc, 'GET', '/v1/products?cursor=not%20base64'), 'query.cursor');
    expect((await client(svc, 'GET', '/v1/products?limit=500')).status).toBe(200);
  });
});

describe('GET /v1/products/{productId}/customers/{customerId}/reservations', () => {
  it("lists one customer's reservations newest first, every state, paged; other customers' stay out", async () => {
    const p = await makeProduct(svc, { capacity: 1_000_000, holdTtlSeconds: 600 });
    // Customers whose ids share a prefix or sort next to c1 in the index.
    for (const c of ['c1', 'c1-x', 'c10', 'c1.b', 'c2']) await makeLine(svc, p, c);
    const made: { id: string; status: string }[] = [];
    for (let i = 0; i < 7; i++) {
      const r = await hold(svc, p, 'c1', 100 + i, i === 6 ? { ttlSeconds: 1 } : {});
      made.push({ id: r.reservationId, status: 'held' });
      await hold(svc, p, ['c1-x', 'c10', 'c1.b', 'c2'][i % 4]!, 5); // interleaved
      await sleep(2); // distinct creation milliseconds: "newest first" is exact
    }
    expect((await commit(svc, p, made[1]!.id)).status).toBe(200);
    made[1]!.status = 'settled'; // the service's own ledger settles it (waited for below)
    expect((await release(svc, p, made[2]!.id)).status).toBe(200);
    made[2]!.status = 'released';
    await sleep(1_100);
    expect((await client(svc, 'GET', `/v1/products/${p}/reservations/${made[6]!.id}`)).body.status).toBe('expired');
    made[6]!.status = 'expired';
    for (
      let i = 0;
      i < 200 && (await client(svc, 'GET', `/v1/products/${p}/reservations/${made[1]!.id}`)).body.status !== 'settled';
      i++
    )
      await sleep(50);

    const base = `/v1/products/${p}/customers/c1/reservations`;
    const all = await client(svc, 'GET', base);
    expect(all.status).toBe(200);
    expect(all.body.nextCursor).toBeNull();
    const newestFirst = [...made].reverse();
    expect(all.body.items.map((r: any) => [r.reservationId, r.status])).toEqual(
      newestFirst.map((m) => [m.id, m.status]),
    );
    expect(all.body.items[0]).toMatchObject({ customerId: 'c1', productId: p, amount: 106 });

    const paged = await pages((cursor) => client(svc, 'GET', `${base}?limit=3${cursor ? `&cursor=${cursor}` : ''}`));
    expect(paged.map((pg) => pg.items.length)).toEqual([3, 3, 1]);
    expect(paged.flatMap((pg) => pg.items.map((r: any) => r.reservationId))).toEqual(newestFirst.map((m) => m.id));

    // Another customer's cursor is not one of this listing's.
    expectInvalid(
      await client(svc, 'GET', `/v1/products/${p}/customers/c2/reservations?cursor=${paged[0].nextCursor}`),
      'query.cursor',
    );
    const c2 = await client(svc, 'GET', `/v1/products/${p}/customers/c2/reservations`);
    expect(c2.body.items.every((r: any) => r.customerId === 'c2')).toBe(true);
    expect(c2.body.items.length).toBe(1);
  });

  it(
    'answers an empty list for a customer with none (or no line), ' + '404 PRODUCT_NOT_FOUND for an unknown product',
    async () => {
      const p = await makeProduct(svc);
      await makeLine(svc, p, 'quiet');
      for (const c of ['quiet', 'nobody']) {
        const res = await client(svc, 'GET', `/v1/products/${p}/customers/${c}/reservations`);
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ items: [], nextCursor: null });
      }
      expectProblem(
        await client(svc, 'GET', `/v1/products/${uniqueId('absent')}/customers/c1/reservations`),
        404,
        'PRODUCT_NOT_FOUND',
      );
      expectInvalid(
        await client(svc, 'GET', `/v1/products/${p}/customers/quiet/reservations?limit=501`),
        'query.limit',
      );
    },
  );
});

describe('GET /v1/products/{productId}/reservations?status= (admin)', () => {
  it(
    'pages by nextCursor, oldest transition first, and stays exact ' +
      'when entries leave between pages; no offset paging',
    async () => {
      const p = await makeProduct(svc, { capacity: 1_000_000, holdTtlSeconds: 600 });
      await makeLine(svc, p, 'c1');
      const ids: string[] = [];
      // held: scored by expiresAt (ties likely)
      for (let i = 0; i < 9; i++) ids.push((await hold(svc, p, 'c1', 10)).reservationId);
      const base = `/v1/products/${p}/reservations?status=held`;
      const byRank = (await admin(svc, 'GET', `${base}&limit=500`)).body.items.map((r: any) => r.reservationId);
      expect([...byRank].sort()).toEqual([...ids].sort());

      const first = await admin(svc, 'GET', `${base}&limit=4`);
      expect(first.body.items.map((r: any) => r.reservationId)).toEqual(byRank.slice(0, 4));
      expect(first.body.nextCursor).toEqual(expect.any(String));
      expect(Object.keys(first.body).sort()).toEqual(['items', 'nextCursor']);
      // The page's last entry leaves the set before the next page is asked for: the cursor still holds.
      expect((await release(svc, p, byRank[3])).status).toBe(200);
      const rest = await pages((cursor) =>
        admin(svc, 'GET', `${base}&limit=4&cursor=${cursor ?? first.body.nextCursor}`),
      );
      expect(rest.flatMap((pg) => pg.items.map((r: any) => r.reservationId))).toEqual(byRank.slice(4));

      // `offset` is not a parameter: ignored like any unknown query parameter of the other listings.
      const firstNow = await admin(svc, 'GET', `${base}&limit=4`);
      for (const offset of ['4', '-1', 'x']) {
        const byOffset = await admin(svc, 'GET', `${base}&limit=4&offset=${offset}`);
        expect(byOffset.status).toBe(200);
        expect(byOffset.body).toEqual(firstNow.body);
      }
      for (const other of ['/v1/products?limit=1', `/v1/products/${p}/customers/c1/reservations?limit=1`]) {
        expect((await client(svc, 'GET', `${other}&offset=-1`)).status).toBe(200);
      }
      expectInvalid(
        await admin(svc, 'GET', `${base}&cursor=${Buffer.from('nonsense').toString('base64url')}`),
        'query.cursor',
      );
    },
  );
});
