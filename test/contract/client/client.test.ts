/**
 * @quota-allocator/client against the real service (in-process, real Redis):
 * every method, refusals as values with their codes, and the broken calls
 * that throw. The package is imported by its name, as an integrator would
 * (its built dist/, so `npm run build` runs first: `npm test` does).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { QuotaClient, QuotaClientError, type Reservation } from '@quota-allocator/client';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngineContext, uniqueId } from '../../support/engineContext.js';
import { ADMIN_KEY, CLIENT_KEY, startServiceContext } from '../../support/serviceContext.js';

const svc = await startServiceContext();
const admin = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: ADMIN_KEY });
const client = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: CLIENT_KEY });
const tmp = mkdtempSync(join(tmpdir(), 'qa-client-'));
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await svc.stop();
});

async function product(capacity = 100_000, extra: Record<string, unknown> = {}) {
  const p = uniqueId('p');
  const put = await admin.admin.putProduct(p, { capacity, ...extra });
  expect(put.ok && put.status).toBe(201);
  return p;
}

function ok<T>(result: { ok: true; value: T } | { ok: false; problem: unknown }): T {
  if (!result.ok) expect.fail(`expected ok, got ${JSON.stringify(result.problem)}`);
  return result.value;
}

async function waitForStatus(p: string, id: string, status: string): Promise<Reservation> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = ok(await client.getReservation(p, id));
    if (r.status === status || Date.now() > deadline) return r;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('products and lines (admin)', () => {
  it(
    'putProduct creates (201) then replaces (200); ' + 'patchProduct pauses with a reason; getProduct reads it',
    async () => {
      const p = uniqueId('p');
      const created = await admin.admin.putProduct(p, { capacity: 5_000, minAmount: 10 });
      expect(created).toMatchObject({
        ok: true,
        status: 201,
        value: { productId: p, capacity: 5_000, minAmount: 10, status: 'open' },
      });
      expect(await admin.admin.putProduct(p, { capacity: 6_000 })).toMatchObject({
        ok: true,
        status: 200,
        value: { capacity: 6_000 },
      });
      const paused = ok(
        await admin.admin.patchProduct(p, {
          status: 'paused',
          pauseReason: 'maintenance',
          resumeAt: new Date(Date.now() + 60_000).toISOString(),
        }),
      );
      expect(paused).toMatchObject({ status: 'paused', pauseReason: 'maintenance' });
      expect(ok(await client.getProduct(p))).toMatchObject({
        productId: p,
        capacity: 6_000,
        held: 0,
        committed: 0,
        available: 6_000,
        status: 'paused',
      });
    },
  );

  it('putLine and getLine: drawable and blockers', async () => {
    const p = await product(10_000);
    expect(ok(await admin.admin.putLine(p, 'c1', { limit: 3_000 }))).toMatchObject({
      customerId: 'c1',
      limit: 3_000,
      status: 'active',
    });
    expect(ok(await client.getLine(p, 'c1'))).toMatchObject({ drawable: 3_000, blockers: [] });
    ok(await admin.admin.putLine(p, 'c2', { limit: 3_000, status: 'frozen', statusReason: 'risk review' }));
    expect(ok(await client.getLine(p, 'c2'))).toMatchObject({
      drawable: 0,
      blockers: ['ACCOUNT_FROZEN'],
      statusReason: 'risk review',
    });
  });

  it(
    'bulkImport streams rows (array, async iterable), a Node ' +
      'Readable of NDJSON, or a file path; bad rows are listed',
    async () => {
      const p = await product();
      expect(
        ok(
          await admin.admin.bulkImport(p, [
            { customerId: 'a1', limit: 100 },
            { customerId: 'a2', limit: 200 },
          ]),
        ),
      ).toMatchObject({ upserted: 2, rejected: [] });
      async function* rows() {
        for (let i = 0; i < 2_000; i++) yield { customerId: `g${i}`, limit: i };
      }
      expect(ok(await admin.admin.bulkImport(p, rows()))).toMatchObject({ upserted: 2_000 });
      const stream = Readable.from([
        '{"customerId":"r1","limit":5}\n',
        'not json\n',
        '{"customerId":"r2","limit":-1}\n',
      ]);
      const summary = ok(await admin.admin.bulkImport(p, stream));
      expect(summary.upserted).toBe(1);
      expect(summary.rejected.map((r) => [r.line, r.code])).toEqual([
        [2, 'INVALID_REQUEST'],
        [3, 'INVALID_REQUEST'],
      ]);
      const file = join(tmp, 'lines.ndjson');
      writeFileSync(file, '{"customerId":"f1","limit":7}\n\n{"customerId":"f2","limit":8}\n');
      expect(ok(await admin.admin.bulkImport(p, file))).toMatchObject({ upserted: 2, rejected: [] });
      expect(ok(await client.getLine(p, 'f2'))).toMatchObject({ limit: 8 });
      expect(ok(await client.getLine(p, 'g1999'))).toMatchObject({ limit: 1_999 });
      const missing = await admin.admin.bulkImport('no-such-product', [{ customerId: 'x', limit: 1 }]);
      expect(missing).toMatchObject({ ok: false, problem: { status: 404, code: 'PRODUCT_NOT_FOUND' } });
    },
  );
});

describe('the loan flow: reserve, commit, release, repay', () => {
  it('reserve (with or without a key), getReservation, partial commit, release, settle, repay', async () => {
    const p = await product(100_000);
    ok(await admin.admin.putLine(p, 'c1', { limit: 10_000 }));

    const reserved = await client.reserve(p, { customerId: 'c1', amount: 4_000, metadata: { loanId: 'L-1' } });
    // No key given: the generated one is handed back (for the caller's own retry).
    expect(reserved.idempotencyKey).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const held = ok(reserved);
    expect(held).toMatchObject({ status: 'held', amount: 4_000, metadata: { loanId: 'L-1' } });
    expect(ok(await client.getReservation(p, held.reservationId))).toMatchObject({
      reservationId: held.reservationId,
      status: 'held',
    });

    // The same key and body: the first answer, no second hold.
    const first = await client.reserve(
      p,
      { customerId: 'c1', amount: 1_000, ttlSeconds: 60 },
      { idempotencyKey: 'app-key-1' },
    );
    const again = await client.reserve(
      p,
      { customerId: 'c1', amount: 1_000, ttlSeconds: 60 },
      { idempotencyKey: 'app-key-1' },
    );
    expect([first.idempotencyKey, again.idempotencyKey]).toEqual(['app-key-1', 'app-key-1']);
    expect(first.ok && again.ok && again.value.reservationId === first.value.reservationId && again.replayed).toBe(
      true,
    );

    const committed = ok(await client.commit(p, held.reservationId, 3_000));
    expect(committed).toMatchObject({ status: 'committed', committedAmount: 3_000 });
    // repeated: same state
    expect(ok(await client.commit(p, held.reservationId))).toMatchObject({ committedAmount: 3_000 });

    const declined = first.ok ? first.value.reservationId : '';
    expect(ok(await client.release(p, declined))).toMatchObject({ status: 'released' });
    expect(ok(await client.release(p, declined))).toMatchObject({ status: 'released' }); // repeated: same answer

    expect(ok(await client.getProduct(p))).toMatchObject({ held: 0, committed: 3_000 });
    await waitForStatus(p, held.reservationId, 'settled');
    const repaid = await client.repay(p, 'c1', 1_000, { idempotencyKey: 'repay-1' });
    expect(repaid.idempotencyKey).toBe('repay-1');
    const line = ok(repaid);
    expect(line).toMatchObject({ drawn: 2_000, available: 8_000 });
    const tooMuch = await client.repay(p, 'c1', 5_000);
    expect(tooMuch).toMatchObject({ ok: false, problem: { status: 422, code: 'REPAYMENT_EXCEEDS_DRAWN' } });
    expect(tooMuch.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refusals are values with the contract code, detail and drawable', async () => {
    const p = await product(1_000);
    ok(await admin.admin.putLine(p, 'c1', { limit: 5_000 }));
    const exhausted = await client.reserve(p, { customerId: 'c1', amount: 2_000 });
    expect(exhausted).toMatchObject({ ok: false, problem: { status: 409, code: 'POOL_EXHAUSTED', drawable: 1_000 } });
    expect(await client.reserve(p, { customerId: 'nobody', amount: 1 })).toMatchObject({
      ok: false,
      problem: { status: 404, code: 'NO_CREDIT_LINE' },
    });
    expect(await client.getProduct('no-such-product')).toMatchObject({
      ok: false,
      problem: { status: 404, code: 'PRODUCT_NOT_FOUND' },
    });
    expect(await client.commit(p, 'no-such-reservation')).toMatchObject({
      ok: false,
      problem: { code: 'RESERVATION_NOT_FOUND' },
    });
    expect(await client.reserve(p, { customerId: 'c1', amount: 0 })).toMatchObject({
      ok: false,
      problem: { status: 400, code: 'INVALID_REQUEST' },
    });
    // A client key may not do admin work; an unknown key is 401.
    expect(await client.admin.putProduct(p, { capacity: 1 })).toMatchObject({
      ok: false,
      problem: { status: 403, code: 'FORBIDDEN' },
    });
    const stranger = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: 'not-a-key' });
    expect(await stranger.getProduct(p)).toMatchObject({
      ok: false,
      problem: { status: 401, code: 'UNAUTHENTICATED' },
    });
    // The language is only a header: the code never changes with it.
    const zh = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: CLIENT_KEY, language: 'zh-CN' });
    expect(await zh.reserve(p, { customerId: 'c1', amount: 2_000 })).toMatchObject({
      ok: false,
      problem: { code: 'POOL_EXHAUSTED' },
    });
  });
});

describe('operator reads and actions (admin)', () => {
  it(
    'listReservations pages by status; events; redrive; resolve ' +
      'refuses a reservation not in settlement_unknown; ledger',
    async () => {
      const p = await product();
      ok(await admin.admin.putLine(p, 'c1', { limit: 100_000 }));
      const ids: string[] = [];
      for (let i = 0; i < 3; i++)
        ids.push(ok(await client.reserve(p, { customerId: 'c1', amount: 100 + i })).reservationId);

      const page1 = ok(await admin.admin.listReservations(p, 'held', { limit: 2 }));
      expect(page1.items).toHaveLength(2);
      expect(page1.nextCursor).not.toBeNull();
      const page2 = ok(await admin.admin.listReservations(p, 'held', { limit: 2, cursor: page1.nextCursor! }));
      expect([...page1.items, ...page2.items].map((r) => r.reservationId).sort()).toEqual([...ids].sort());

      ok(await client.commit(p, ids[0]!));
      const events = ok(await admin.admin.events(p, ids[0]!));
      expect(events.events.map((e) => e.to)).toEqual(expect.arrayContaining(['held', 'committed']));

      const redrive = await admin.admin.redrive(p, ids[1]!);
      expect(redrive).toMatchObject({ ok: false, problem: { status: 409, code: 'RESERVATION_STATE_CONFLICT' } });
      const resolve = await admin.admin.resolve(p, ids[1]!, 'settled', 'checked with the bank');
      expect(resolve).toMatchObject({ ok: false, problem: { status: 409, code: 'RESERVATION_STATE_CONFLICT' } });

      await waitForStatus(p, ids[0]!, 'settled');
      const ledger = ok(await admin.admin.ledger(p));
      expect(JSON.stringify(ledger.entries)).toContain(ids[0]!);
      expect(await admin.admin.events(p, 'nope')).toMatchObject({
        ok: false,
        problem: { code: 'RESERVATION_NOT_FOUND' },
      });
    },
  );

  it(
    'with no settlement worker running (ROLE=api): redrive answers 202; ' +
      'resolve records the outcome of a settlement_unknown one',
    async () => {
      const apiOnly = await startServiceContext({ ROLE: 'api' });
      const engineContext = await createEngineContext(apiOnly.keyPrefix);
      try {
        const ops = new QuotaClient({ baseUrl: apiOnly.baseUrl, apiKey: ADMIN_KEY });
        const p = uniqueId('p');
        ok(await ops.admin.putProduct(p, { capacity: 10_000 }));
        ok(await ops.admin.putLine(p, 'c1', { limit: 1_000 }));
        const a = ok(await ops.reserve(p, { customerId: 'c1', amount: 100 }));
        const b = ok(await ops.reserve(p, { customerId: 'c1', amount: 200 }));
        ok(await ops.commit(p, a.reservationId));
        ok(await ops.commit(p, b.reservationId));

        const redriven = await ops.admin.redrive(p, a.reservationId);
        expect(redriven).toMatchObject({
          ok: true,
          status: 202,
          value: { reservation: { reservationId: a.reservationId, status: 'committed' } },
        });

        expect(
          (await engineContext.engine.recordSettlement(p, b.reservationId, 'unknown', 'ledger timed out')).ok,
        ).toBe(true);
        const unknown = ok(await ops.admin.listReservations(p, 'settlement_unknown'));
        expect(unknown.items.map((r) => r.reservationId)).toEqual([b.reservationId]);
        expect(ok(await ops.admin.resolve(p, b.reservationId, 'reversed', 'the bank never received it'))).toMatchObject(
          {
            status: 'reversed',
          },
        );
        expect(ok(await ops.getProduct(p))).toMatchObject({ committed: 100 });
      } finally {
        await engineContext.close();
        await apiOnly.stop();
      }
    },
  );
});

describe("the contract's list routes", () => {
  it('listProducts pages through every product', async () => {
    const p = await product();
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = ok(await client.listProducts({ limit: 50, ...(cursor ? { cursor } : {}) }));
      seen.push(...page.items.map((i) => i.productId));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toContain(p);
  });

  it('listCustomerReservations: newest first, every state; none is an empty list; unknown product 404', async () => {
    const p = await product();
    ok(await admin.admin.putLine(p, 'c1', { limit: 1_000 }));
    const a = ok(await client.reserve(p, { customerId: 'c1', amount: 100 }));
    ok(await client.release(p, a.reservationId));
    const b = ok(await client.reserve(p, { customerId: 'c1', amount: 200 }));
    const page = ok(await client.listCustomerReservations(p, 'c1'));
    expect(page.items.map((r) => [r.reservationId, r.status])).toEqual([
      [b.reservationId, 'held'],
      [a.reservationId, 'released'],
    ]);
    expect(ok(await client.listCustomerReservations(p, 'nobody')).items).toEqual([]);
    expect(await client.listCustomerReservations('no-such-product', 'c1')).toMatchObject({
      ok: false,
      problem: { code: 'PRODUCT_NOT_FOUND' },
    });
  });
});

describe('broken calls throw QuotaClientError', () => {
  it('nothing listening: kind network, after the retries', async () => {
    const closed = await freePort();
    const dead = new QuotaClient({
      baseUrl: `http://127.0.0.1:${closed}`,
      apiKey: CLIENT_KEY,
      maxRetries: 2,
      backoffBaseMs: 10,
    });
    const err = await dead.getProduct('p').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(QuotaClientError);
    expect((err as QuotaClientError).kind).toBe('network');
    expect((err as QuotaClientError).details.attempts).toBe(3);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
    // A reserve's or repayment's error carries the key its attempts sent, for the caller's own retry.
    await expect(dead.reserve('p', { customerId: 'c', amount: 1 }, { idempotencyKey: 'k-1' })).rejects.toMatchObject({
      kind: 'network',
      details: { idempotencyKey: 'k-1' },
    });
    const repayErr = await dead.repay('p', 'c', 1).catch((e: unknown) => e);
    expect((repayErr as QuotaClientError).details.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
    expect((err as QuotaClientError).details.idempotencyKey).toBeUndefined();
  });

  it('a URL that is not the API (an HTML page): kind unexpected-answer; a 500 after retries: kind server', async () => {
    let hits = 0;
    const server = createServer((req, res) => {
      hits++;
      if (req.url?.includes('html')) res.writeHead(200, { 'content-type': 'text/html' }).end('<html>welcome</html>');
      else res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"boom"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const html = new QuotaClient({ baseUrl: `${base}/html`, apiKey: CLIENT_KEY, maxRetries: 0 });
      await expect(html.getProduct('p')).rejects.toMatchObject({ kind: 'unexpected-answer' });
      hits = 0;
      const failing = new QuotaClient({ baseUrl: base, apiKey: CLIENT_KEY, maxRetries: 2, backoffBaseMs: 10 });
      await expect(failing.getProduct('p')).rejects.toMatchObject({
        kind: 'server',
        details: { status: 500, attempts: 3 },
      });
      expect(hits).toBe(3);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}
