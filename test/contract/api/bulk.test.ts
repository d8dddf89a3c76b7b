/**
 * Contract: POST /v1/products/{productId}/customers:bulk (NDJSON, streamed,
 * at least 64 MiB accepted): 200 { upserted, rejected: [{ line, code, detail }] }
 * with 1-based line numbers; blank lines skipped; a bad row never stops the
 * good ones; unknown product 404; admin only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  ADMIN_KEY,
  CLIENT_KEY,
  client,
  expectInvalid,
  expectProblem,
  getLine,
  hold,
  makeProduct,
  raw,
  uniqueId,
} from '../../support/api.js';

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext();
});
afterAll(() => svc.stop());

const bulk = (p: string, ndjson: string, key: string | null = ADMIN_KEY) =>
  raw(svc, 'POST', `/v1/products/${p}/customers:bulk`, { key, body: ndjson, contentType: 'application/x-ndjson' });

/** Streams `chunks()` as the request body (chunked transfer, no Content-Length). */
async function bulkStream(p: string, chunks: () => Generator<string>) {
  const encoder = new TextEncoder();
  const it = chunks();
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = it.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(next.value));
    },
  });
  const res = await fetch(`${svc.baseUrl}/v1/products/${p}/customers:bulk`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/x-ndjson' },
    body,
    duplex: 'half',
  } as RequestInit & { duplex: 'half' });
  return { status: res.status, body: (await res.json()) as any };
}

describe('bulk import', () => {
  it('imports good rows, skips blank lines, and reports bad rows by 1-based line number', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    const rows = [
      /* 1 */ '{"customerId":"c1","limit":100}',
      /* 2 */ '',
      /* 3 */ '{not json',
      /* 4 */ '{"customerId":"c2","limit":200,"status":"frozen","statusReason":"risk","tier":"gold"}',
      /* 5 */ '{"customerId":"a:b","limit":1}',
      /* 6 */ '{"customerId":"c3","limit":-1}',
      /* 7 */ '{"customerId":"c4","limit":1,"status":"suspended"}',
      /* 8 */ '{"customerId":"c5","limit":0}',
      /* 9 */ '   ',
      /* 10 */ '{"customerId":"c6","limit":"5"}',
      /* 11 */ '{"limit":5}',
      /* 12 */ `{"customerId":"${'x'.repeat(65)}","limit":5}`,
      /* 13 */ '{"customerId":"c7","limit":1.5}',
      /* 14 */ '[1,2]',
      /* 15 */ '{"customerId":"c8","limit":7}\r',
    ];
    const res = await bulk(p, `${rows.join('\n')}\n`);
    expect(res.status).toBe(200);
    expect(res.body.upserted).toBe(4);
    const rejected = res.body.rejected as { line: number; code: string; detail: string }[];
    expect(rejected.map((r) => r.line)).toEqual([3, 5, 6, 7, 10, 11, 12, 13, 14]);
    for (const r of rejected) {
      expect(r.code).toBe('INVALID_REQUEST');
      expect(typeof r.detail).toBe('string');
      expect(r.detail.length).toBeGreaterThan(0);
    }
    const byLine = new Map(rejected.map((r) => [r.line, r.detail]));
    expect(byLine.get(5)).toMatch(/customerId/);
    expect(byLine.get(6)).toMatch(/limit/);
    expect(byLine.get(7)).toMatch(/status/);
    expect(byLine.get(10)).toMatch(/limit/);
    expect(byLine.get(11)).toMatch(/customerId/);

    expect(await getLine(svc, p, 'c1')).toMatchObject({
      limit: 100,
      status: 'active',
      statusReason: null,
      tier: null,
      drawable: 100,
    });
    expect(await getLine(svc, p, 'c2')).toMatchObject({
      limit: 200,
      status: 'frozen',
      statusReason: 'risk',
      tier: 'gold',
    });
    expect(await getLine(svc, p, 'c5')).toMatchObject({ limit: 0, drawable: 0 });
    expect(await getLine(svc, p, 'c8')).toMatchObject({ limit: 7 });
    for (const c of ['c3', 'c4', 'c6', 'c7']) {
      expectProblem(await client(svc, 'GET', `/v1/products/${p}/customers/${c}`), 404, 'NO_CREDIT_LINE');
    }
  });

  it('a UTF-8 byte order mark at the start of the file does not spoil line 1', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    const res = await bulkStream(p, function* () {
      yield '\uFEFF{"customerId":"c1","limit":100}\n{"customerId":"c2","limit":200}\n';
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ upserted: 2, rejected: [] });
  });

  it('works without a trailing newline and with only blank lines', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    const res = await bulk(p, '{"customerId":"c1","limit":5}\n{"customerId":"c2","limit":6}');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ upserted: 2, rejected: [] });
    expect((await getLine(svc, p, 'c2')).limit).toBe(6);
    const empty = await bulk(p, '\n\n  \n');
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ upserted: 0, rejected: [] });
  });

  it('replaces existing lines and keeps their counters', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    expect((await bulk(p, '{"customerId":"c1","limit":100}\n')).body.upserted).toBe(1);
    await hold(svc, p, 'c1', 60);
    const res = await bulk(p, '{"customerId":"c1","limit":500,"tier":"vip"}\n');
    expect(res.body).toMatchObject({ upserted: 1, rejected: [] });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ limit: 500, tier: 'vip', held: 60, available: 440 });
  });

  it('a later row for the same customer wins', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    const res = await bulk(p, '{"customerId":"c1","limit":1}\n{"customerId":"c1","limit":2}\n');
    expect(res.status).toBe(200);
    expect((await getLine(svc, p, 'c1')).limit).toBe(2);
  });

  it('answers 404 PRODUCT_NOT_FOUND for an unknown product and creates nothing', async () => {
    const p = uniqueId('p');
    expectProblem(await bulk(p, '{"customerId":"c1","limit":5}\n'), 404, 'PRODUCT_NOT_FOUND');
    expectProblem(await client(svc, 'GET', `/v1/products/${p}`), 404, 'PRODUCT_NOT_FOUND');
  });

  it('is admin-only (403 for a client key, 401 without a key) and validates the product id', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    expectProblem(await bulk(p, '{"customerId":"c1","limit":5}\n', CLIENT_KEY), 403, 'FORBIDDEN');
    expectProblem(await bulk(p, '{"customerId":"c1","limit":5}\n', null), 401, 'UNAUTHENTICATED');
    expectProblem(await client(svc, 'GET', `/v1/products/${p}/customers/c1`), 404, 'NO_CREDIT_LINE');
    expectInvalid(await bulk('bad:id', '{"customerId":"c1","limit":5}\n'), 'productId');
  });

  it('streams 50,000 rows (with a bad row in the middle) and imports all the good ones', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    const total = 50_000;
    const badLine = 25_000;
    const res = await bulkStream(p, function* () {
      let chunk = '';
      for (let i = 1; i <= total; i++) {
        chunk += i === badLine ? '{"customerId":"bad","limit":-5}\n' : `{"customerId":"c${i}","limit":${i}}\n`;
        if (chunk.length > 64 * 1024) {
          yield chunk;
          chunk = '';
        }
      }
      if (chunk) yield chunk;
    });
    expect(res.status).toBe(200);
    expect(res.body.upserted).toBe(total - 1);
    expect(res.body.rejected).toEqual([
      { line: badLine, code: 'INVALID_REQUEST', detail: expect.stringMatching(/limit/) },
    ]);
    for (const i of [1, 499, 500, 501, 24_999, 25_001, 49_999, 50_000]) {
      expect((await getLine(svc, p, `c${i}`)).limit).toBe(i);
    }
    expectProblem(await client(svc, 'GET', `/v1/products/${p}/customers/bad`), 404, 'NO_CREDIT_LINE');
  });

  it('accepts a 64 MiB body (streamed)', async () => {
    const p = await makeProduct(svc, { capacity: 1000 });
    const target = 64 * 1024 * 1024;
    const rowCount = 4096;
    // each row padded with spaces (valid JSON whitespace) to a fixed size
    const rowSize = target / rowCount;
    let sent = 0;
    const res = await bulkStream(p, function* () {
      let chunk = '';
      for (let i = 1; i <= rowCount; i++) {
        const row = `{"customerId":"big${i}","limit":${i}}`;
        chunk += `${row}${' '.repeat(rowSize - row.length - 1)}\n`;
        if (chunk.length >= 1024 * 1024) {
          sent += chunk.length;
          yield chunk;
          chunk = '';
        }
      }
      if (chunk) {
        sent += chunk.length;
        yield chunk;
      }
    });
    expect(sent).toBe(target);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ upserted: rowCount, rejected: [] });
    expect((await getLine(svc, p, `big${rowCount}`)).limit).toBe(rowCount);
  });
});
