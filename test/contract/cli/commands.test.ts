/**
 * The `quota` CLI's commands against a real in-process service (ROLE=api,
 * so settlement outcomes are set by the test through the engine): output,
 * --json, exit codes and clear errors for a wrong URL, key or product.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QuotaClient } from '@quota-allocator/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngineContext, uniqueId, type EngineContext } from '../../support/engineContext.js';
import { ADMIN_KEY, CLIENT_KEY, startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import { quota } from '../../support/cli.js';

let svc: ServiceContext;
let engineContext: EngineContext;
let api: QuotaClient;
let conn: string[];
const tmp = mkdtempSync(join(tmpdir(), 'qa-cli-'));

beforeAll(async () => {
  svc = await startServiceContext({ ROLE: 'api' });
  engineContext = await createEngineContext(svc.keyPrefix);
  api = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: ADMIN_KEY });
  conn = ['--url', svc.baseUrl, '--key', ADMIN_KEY];
});
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await engineContext?.close();
  await svc?.stop();
});

async function product(capacity = 100_000): Promise<string> {
  const p = uniqueId('p');
  expect((await api.admin.putProduct(p, { capacity })).ok).toBe(true);
  return p;
}

describe('connection errors and exit codes', () => {
  it(
    'no URL: usage (2); unknown key: auth (3); client key on an admin command: auth ' +
      '(3); unknown product: not found (4); nothing listening: unreachable (5)',
    async () => {
      const p = await product();
      const noUrl = await quota(['product', 'show', p]);
      expect(noUrl.code).toBe(2);
      expect(noUrl.stderr).toMatch(/--url .*QUOTA_URL/);

      const badKey = await quota(['product', 'show', p, '--url', svc.baseUrl, '--key', 'wrong']);
      expect(badKey.code).toBe(3);
      expect(badKey.stderr).toMatch(/UNAUTHENTICATED .*check --key/);

      const clientKey = await quota(['product', 'pause', p], { QUOTA_URL: svc.baseUrl, QUOTA_API_KEY: CLIENT_KEY });
      expect(clientKey.code).toBe(3);
      expect(clientKey.stderr).toMatch(/FORBIDDEN.*admin key/);

      const missing = await quota(['product', 'show', 'no-such-product', ...conn, '--json']);
      expect(missing.code).toBe(4);
      expect(missing.json).toMatchObject({ exitCode: 4, problem: { code: 'PRODUCT_NOT_FOUND' } });

      const dead = await quota([
        'product',
        'show',
        p,
        '--url',
        `http://127.0.0.1:${await freePort()}`,
        '--key',
        ADMIN_KEY,
        '--retries',
        '0',
      ]);
      expect(dead.code).toBe(5);
      expect(dead.stderr).toMatch(/cannot reach the deployment.*ECONNREFUSED/);

      const wrongPath = await quota(['product', 'show', p, '--url', `${svc.baseUrl}/v1`, '--key', ADMIN_KEY]);
      expect(wrongPath.code).toBe(4);
      expect(wrongPath.stderr).toMatch(/ROUTE_NOT_FOUND.*without \/v1/);

      expect((await quota(['product', 'frobnicate', p, ...conn])).code).toBe(2);
      const help = await quota(['--help']);
      expect([help.code, help.stdout]).toEqual([
        0,
        expect.stringMatching(/Exit codes: 0 ok, 1 failure.*2 usage,\n3 auth.*4 not found, 5 unreachable/s),
      ]);
      expect(await quota(['--version'])).toMatchObject({ code: 0, stdout: '0.1.0\n' });
      expect((await quota(['product', 'pause', p, '--until', 'tomorrow', ...conn])).code).toBe(2);
    },
  );
});

describe('quota product', () => {
  it('show, pause --reason --until, resume, close (text and --json)', async () => {
    const p = await product(250_000);
    const shown = await quota(['product', 'show', p, ...conn]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/capacity\s+250,000/);
    expect(shown.stdout).toMatch(/status\s+open/);

    const before = Date.now();
    const paused = await quota([
      'product',
      'pause',
      p,
      '--reason',
      'bank maintenance',
      '--until',
      '2h',
      ...conn,
      '--json',
    ]);
    expect(paused.code).toBe(0);
    expect(paused.json).toMatchObject({ productId: p, status: 'paused', pauseReason: 'bank maintenance' });
    const resumeAt = Date.parse(paused.json.resumeAt);
    expect(resumeAt).toBeGreaterThanOrEqual(before + 2 * 3_600_000 - 1_000);
    expect(resumeAt).toBeLessThanOrEqual(Date.now() + 2 * 3_600_000 + 1_000);

    expect((await quota(['product', 'resume', p, ...conn, '--json'])).json).toMatchObject({ status: 'open' });
    const closed = await quota(['product', 'close', p, ...conn]);
    expect(closed.stdout).toMatch(new RegExp(`${p} is closed`));
    const after = await api.getProduct(p);
    expect(after.ok && after.value.status).toBe('closed');
  });
});

describe('quota why', () => {
  it('explains each blocker in plain words, with the line and drawable', async () => {
    const p = await product(10_000);
    await api.admin.putLine(p, 'frozen-1', { limit: 5_000, status: 'frozen', statusReason: 'suspected fraud' });
    await api.admin.putLine(p, 'ok-1', { limit: 3_000 });
    await api.admin.patchProduct(p, {
      status: 'paused',
      pauseReason: 'system upgrade',
      resumeAt: new Date(Date.now() + 3_600_000).toISOString(),
    });

    const why = await quota(['why', p, 'frozen-1', ...conn]);
    expect(why.code).toBe(0);
    expect(why.stdout).toMatch(/frozen-1 in .* cannot draw now/);
    expect(why.stdout).toMatch(/PRODUCT_PAUSED\s+The product is paused \(system upgrade\); draws open again at \d{4}-/);
    expect(why.stdout).toMatch(/ACCOUNT_FROZEN\s+The customer's account is frozen .*Reason: suspected fraud/);
    const inChinese = await quota(['why', p, 'frozen-1', ...conn, '--lang', 'zh', '--json']);
    expect(inChinese.json.blockers).toEqual([
      expect.objectContaining({
        code: 'PRODUCT_PAUSED',
        source: 'service',
        text: expect.stringMatching(/^产品暂停借款: .*system upgrade.*北京时间/),
      }),
      expect.objectContaining({
        code: 'ACCOUNT_FROZEN',
        source: 'service',
        text: expect.stringMatching(/^账户已冻结: .*suspected fraud/),
      }),
    ]);

    await api.admin.patchProduct(p, { status: 'open' });
    const json = await quota(['why', p, 'ok-1', ...conn, '--json']);
    expect(json.json).toMatchObject({ customerId: 'ok-1', drawable: 3_000, blockers: [] });

    const none = await quota(['why', p, 'nobody', ...conn, '--json']);
    expect(none.json).toMatchObject({ drawable: 0, blockers: [{ code: 'NO_CREDIT_LINE' }] });
    expect((await quota(['why', 'no-such-product', 'x', ...conn])).code).toBe(4);
  });

  it(
    'a line used up: the numbers behind CUSTOMER_LIMIT_EXCEEDED; ' + 'the live holds when the deployment can list them',
    async () => {
      const p = await product(10_000);
      await api.admin.putLine(p, 'c1', { limit: 1_000 });
      const r = await api.reserve(p, { customerId: 'c1', amount: 1_000 });
      expect(r.ok).toBe(true);
      const why = await quota(['why', p, 'c1', ...conn, '--json']);
      expect(why.json.blockers).toEqual([
        expect.objectContaining({
          code: 'CUSTOMER_LIMIT_EXCEEDED',
          source: 'cli',
          text: expect.stringMatching(/limit 1,000, held 1,000/),
        }),
      ]);
      // Until GET …/customers/{c}/reservations exists, the answer says so instead of failing.
      if (why.json.holds.live === null) expect(why.json.holds.note).toMatch(/cannot list/);
      else
        expect(why.json.holds.live.map((h: { reservationId: string }) => h.reservationId)).toEqual([
          r.ok && r.value.reservationId,
        ]);
    },
  );
});

describe('quota settlements', () => {
  it('unknown lists them; resolve one by id and a batch from a file; a wrong id fails the batch (exit 1)', async () => {
    const p = await product(10_000);
    await api.admin.putLine(p, 'c1', { limit: 10_000 });
    const ids: string[] = [];
    for (const amount of [100, 200, 300]) {
      const r = await api.reserve(p, { customerId: 'c1', amount });
      if (!r.ok) expect.fail(JSON.stringify(r.problem));
      expect((await api.commit(p, r.value.reservationId)).ok).toBe(true);
      const out = await engineContext.engine.recordSettlement(p, r.value.reservationId, 'unknown', 'ledger timed out');
      expect(out.ok).toBe(true);
      ids.push(r.value.reservationId);
    }

    const unknown = await quota(['settlements', 'unknown', p, ...conn, '--json']);
    expect(unknown.code).toBe(0);
    expect(unknown.json.items.map((r: { reservationId: string }) => r.reservationId).sort()).toEqual([...ids].sort());
    expect((await quota(['settlements', 'unknown', p, ...conn])).stdout).toMatch(/3 unknown settlement\(s\)/);

    const one = await quota([
      'settlements',
      'resolve',
      p,
      ids[0]!,
      '--outcome',
      'settled',
      '--reason',
      'bank statement shows it',
      ...conn,
    ]);
    expect(one.code).toBe(0);
    expect(one.stdout).toBe(`${ids[0]}: settled\n`);

    const file = join(tmp, 'resolve.txt');
    writeFileSync(
      file,
      `# from the bank's report\n${ids[1]}\n{"reservationId":"${ids[2]}","outcome":"settled"}\nno-such-id\n`,
    );
    const batch = await quota([
      'settlements',
      'resolve',
      p,
      '--file',
      file,
      '--outcome',
      'reversed',
      '--reason',
      'never received',
      ...conn,
      '--json',
    ]);
    expect(batch.code).toBe(1);
    expect(batch.json).toMatchObject({ resolved: 2, failed: 1 });
    expect(
      batch.json.results.map((r: { reservationId: string; ok: boolean; status?: string; code?: string }) => [
        r.reservationId,
        r.status ?? r.code,
      ]),
    ).toEqual([
      [ids[1], 'reversed'],
      [ids[2], 'settled'],
      ['no-such-id', 'RESERVATION_NOT_FOUND'],
    ]);
    // The reversed 200 went back to the pool; nothing is unknown any more.
    const pool = await api.getProduct(p);
    expect(pool.ok && pool.value.committed).toBe(400);
    expect((await quota(['settlements', 'unknown', p, ...conn, '--json'])).json.count).toBe(0);
    expect((await quota(['settlements', 'resolve', p, ids[0]!, ...conn])).code).toBe(2); // no --outcome
    const again = await quota(['settlements', 'resolve', p, ids[0]!, '--outcome', 'settled', ...conn]);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/RESERVATION_STATE_CONFLICT/);
  });
});

describe('quota import (small files)', () => {
  it('CSV with a header: rows land, a bad row is written to the rejects file with its line in the file', async () => {
    const p = await product();
    const file = join(tmp, 'lines.csv');
    writeFileSync(
      file,
      'customerId,limit,status,statusReason,tier\nc1,1000,,,\n' +
        'c2,2000,frozen,risk review,\nbad id,5,,,\nc4,4000,,,gold\n',
    );
    const out = await quota(['import', p, file, ...conn, '--json']);
    expect(out.code).toBe(1);
    expect(out.json).toMatchObject({ rows: 4, upserted: 3, rejected: 1, nextLine: 6 });
    const rejects = readFileSync(out.json.rejectsFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rejects).toEqual([
      expect.objectContaining({ line: 4, code: 'INVALID_REQUEST', detail: expect.stringMatching(/customerId/) }),
    ]);
    const c2 = await api.getLine(p, 'c2');
    expect(c2.ok && [c2.value.limit, c2.value.status, c2.value.statusReason]).toEqual([2000, 'frozen', 'risk review']);
    const c4 = await api.getLine(p, 'c4');
    expect(c4.ok && c4.value.tier).toBe('gold');
  });

  it('--dry-run checks every row locally and sends nothing; an unknown product is exit 4', async () => {
    const p = await product();
    const file = join(tmp, 'dry.ndjson');
    writeFileSync(
      file,
      '{"customerId":"d1","limit":10}\n{"customerId":"d2","limit":-1}\n\n' +
        '{"customerId":"d3","limit":1,"colour":"red"}\nnot json\n',
    );
    const dry = await quota(['import', p, file, '--dry-run', '--json']);
    expect(dry.code).toBe(1);
    expect(dry.json).toMatchObject({ dryRun: true, rows: 4, valid: 1, rejected: 3 });
    const rejects = readFileSync(dry.json.rejectsFile, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(rejects.map((r: { line: number }) => r.line)).toEqual([2, 4, 5]);
    expect(await api.getLine(p, 'd1')).toMatchObject({ ok: false, problem: { code: 'NO_CREDIT_LINE' } });
    expect((await quota(['import', 'no-such-product', file, ...conn])).code).toBe(4);
    expect((await quota(['import', p, join(tmp, 'missing.ndjson'), ...conn])).code).toBe(2);
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}
