/**
 * Every customer-facing refusal of a reserve, through @quota-allocator/client
 * with `language: 'zh'` (and the other spellings the contract names), against
 * the real service and Redis: the code, status and every other field are the
 * English answer's; the title and detail are the catalogue's Chinese texts
 * (src/errors/catalogue.ts) for what was refused; and the temporary ones
 * (not open yet, paused until a known time, rate limited) keep their
 * Retry-After (`retryAfterSeconds`), the others have none.
 */
import { QuotaClient, type Problem } from '@quota-allocator/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATALOGUE, textsOf, type DetailParams, type ErrorCode } from '../../../src/errors/catalogue.js';
import { uniqueId } from '../../support/engineContext.js';
import { ADMIN_KEY, CLIENT_KEY, startServiceContext, type ServiceContext } from '../../support/serviceContext.js';

const CJK = /[\u4e00-\u9fff]/;
/** `zh` and the other ways of asking for Simplified Chinese (contract "Languages"). */
const ZH_TAGS = ['zh', 'zh-CN', 'zh-Hans', 'en;q=0.5, zh;q=0.9'];
const MINUTE = 60_000;
/** Whole minutes, so the Chinese time (to the minute) is the one the service computes. */
const minutesAhead = (n: number) => Math.ceil(Date.now() / MINUTE) * MINUTE + n * MINUTE;

interface Row {
  name: string;
  code: ErrorCode;
  /** What the detail is about (the refusal's context, as the service knows it). */
  params: DetailParams;
  /** Retry-After expected (seconds, about): only on the temporary refusals. */
  retryAfterAbout?: number;
  reserve: (client: QuotaClient) => Promise<{ ok: boolean; problem?: Problem }>;
}

let svc: ServiceContext;
let admin: QuotaClient;
let english: QuotaClient;
const rows: Row[] = [];

async function product(config: Parameters<QuotaClient['admin']['putProduct']>[1]) {
  const p = uniqueId('p');
  const put = await admin.admin.putProduct(p, config);
  expect(put.ok, JSON.stringify(put)).toBe(true);
  return p;
}
async function line(p: string, c: string, config: Parameters<QuotaClient['admin']['putLine']>[2]) {
  const put = await admin.admin.putLine(p, c, config);
  expect(put.ok, JSON.stringify(put)).toBe(true);
}
const reserveOf =
  (p: string, customerId: string, amount: number) =>
  (client: QuotaClient): Promise<{ ok: boolean; problem?: Problem }> =>
    client.reserve(p, { customerId, amount });

beforeAll(async () => {
  svc = await startServiceContext();
  admin = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: ADMIN_KEY });
  english = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: CLIENT_KEY });

  const p = await product({ capacity: 100_000, minAmount: 10, maxAmount: 500 });
  await line(p, 'ok', { limit: 300 });
  await line(p, 'pending', { limit: 300, status: 'pending_activation', statusReason: '实名认证审核中' });
  await line(p, 'frozen', { limit: 300, status: 'frozen', statusReason: 'risk review 42' });
  await line(p, 'closed', { limit: 300, status: 'closed' });
  await line(p, 'keyed', { limit: 10_000 });
  const key = uniqueId('k');
  expect((await english.reserve(p, { customerId: 'keyed', amount: 20 }, { idempotencyKey: key })).ok).toBe(true);

  const small = await product({ capacity: 50 });
  await line(small, 'c', { limit: 1_000 });
  const empty = await product({ capacity: 0 });
  await line(empty, 'c', { limit: 1_000 });
  const tiered = await product({ capacity: 1_000, priorityReserve: { tiers: ['gold'], amount: 900 } });
  await line(tiered, 'plain', { limit: 10_000 });

  const opensAt = minutesAhead(60);
  const later = await product({ capacity: 1_000, opensAt: new Date(opensAt).toISOString() });
  await line(later, 'c', { limit: 1_000 });
  const resumeAt = minutesAhead(30);
  const maintenance = await product({
    capacity: 1_000,
    status: 'paused',
    pauseReason: '系统维护',
    resumeAt: new Date(resumeAt).toISOString(),
  });
  await line(maintenance, 'c', { limit: 1_000 });
  const pausedOpenEnded = await product({ capacity: 1_000, status: 'paused', pauseReason: 'bank cut-over' });
  await line(pausedOpenEnded, 'c', { limit: 1_000 });
  const closed = await product({ capacity: 1_000, status: 'closed' });
  await line(closed, 'c', { limit: 1_000 });
  const ended = await product({ capacity: 1_000, closesAt: new Date(Date.now() - MINUTE).toISOString() });
  await line(ended, 'c', { limit: 1_000 });

  rows.push(
    {
      name: 'unknown product',
      code: 'PRODUCT_NOT_FOUND',
      params: {},
      reserve: reserveOf(uniqueId('absent'), 'c', 100),
    },
    { name: 'no credit line', code: 'NO_CREDIT_LINE', params: {}, reserve: reserveOf(p, 'nobody', 100) },
    { name: 'product closed', code: 'PRODUCT_CLOSED', params: {}, reserve: reserveOf(closed, 'c', 100) },
    { name: 'past closesAt', code: 'PRODUCT_CLOSED', params: {}, reserve: reserveOf(ended, 'c', 100) },
    {
      name: 'maintenance until a known time',
      code: 'PRODUCT_PAUSED',
      params: { pauseReason: '系统维护', retryAt: resumeAt },
      retryAfterAbout: (resumeAt - Date.now()) / 1000,
      reserve: reserveOf(maintenance, 'c', 100),
    },
    {
      name: 'paused, open-ended',
      code: 'PRODUCT_PAUSED',
      params: { pauseReason: 'bank cut-over' },
      reserve: reserveOf(pausedOpenEnded, 'c', 100),
    },
    {
      name: 'not open yet',
      code: 'PRODUCT_NOT_OPEN',
      params: { retryAt: opensAt },
      retryAfterAbout: (opensAt - Date.now()) / 1000,
      reserve: reserveOf(later, 'c', 100),
    },
    {
      name: 'line pending activation',
      code: 'ACCOUNT_PENDING_ACTIVATION',
      params: { statusReason: '实名认证审核中' },
      reserve: reserveOf(p, 'pending', 100),
    },
    {
      name: 'line frozen',
      code: 'ACCOUNT_FROZEN',
      params: { statusReason: 'risk review 42' },
      reserve: reserveOf(p, 'frozen', 100),
    },
    { name: 'line closed', code: 'ACCOUNT_CLOSED', params: {}, reserve: reserveOf(p, 'closed', 100) },
    {
      name: 'below the per-draw minimum',
      code: 'AMOUNT_OUT_OF_RANGE',
      params: { minAmount: 10, maxAmount: 500 },
      reserve: reserveOf(p, 'ok', 5),
    },
    {
      name: 'over the per-draw maximum',
      code: 'AMOUNT_OUT_OF_RANGE',
      params: { minAmount: 10, maxAmount: 500 },
      reserve: reserveOf(p, 'ok', 501),
    },
    {
      name: 'over the line limit',
      code: 'CUSTOMER_LIMIT_EXCEEDED',
      params: { line: { available: 300 } as DetailParams['line'] },
      reserve: reserveOf(p, 'ok', 400),
    },
    {
      name: 'pool nearly exhausted',
      code: 'POOL_EXHAUSTED',
      params: { drawable: 50 },
      reserve: reserveOf(small, 'c', 100),
    },
    { name: 'pool empty', code: 'POOL_EXHAUSTED', params: { drawable: 0 }, reserve: reserveOf(empty, 'c', 100) },
    {
      name: "pool's share open to the line's tier",
      code: 'POOL_EXHAUSTED',
      params: { drawable: 100 },
      reserve: reserveOf(tiered, 'plain', 200),
    },
    {
      name: 'idempotency key reused with another body',
      code: 'IDEMPOTENCY_KEY_REUSED',
      params: {},
      reserve: (client) => client.reserve(p, { customerId: 'keyed', amount: 21 }, { idempotencyKey: key }),
    },
  );
});
afterAll(() => svc?.stop());

/** The answer's body, less what may change with the language or the moment. */
function sameInEveryLanguage(problem: Problem) {
  const { title: _t, detail: _d, retryAfterSeconds: _r, ...rest } = problem;
  return rest;
}

function expectChineseAnswer(row: Row, tag: string, zh: Problem, en: Problem) {
  const label = `${row.name} (${tag})`;
  expect(zh.code, label).toBe(row.code);
  expect(zh.status, label).toBe(CATALOGUE[row.code].status);
  expect(sameInEveryLanguage(zh), label).toEqual(sameInEveryLanguage(en));
  const texts = textsOf(row.code, row.params, 'zh');
  expect(zh.title, label).toBe(texts.title);
  expect(zh.detail, label).toBe(texts.detail);
  expect(zh.detail, label).toMatch(CJK);
  expect(zh.detail, label).not.toBe(en.detail);
  expect(zh.detail, label).not.toMatch(/undefined|null|NaN/);
  if (row.retryAfterAbout === undefined) {
    expect(zh.retryAfterSeconds, label).toBeUndefined();
  } else {
    expect(zh.retryAfterSeconds, label).toBeGreaterThanOrEqual(1);
    expect(Math.abs(zh.retryAfterSeconds! - row.retryAfterAbout), label).toBeLessThan(30);
    expect(Math.abs(zh.retryAfterSeconds! - en.retryAfterSeconds!), label).toBeLessThanOrEqual(1);
  }
}

describe('reserve refusals in Chinese through the client', () => {
  it('the table covers every customer-facing refusal of a reserve that a request can provoke', () => {
    const covered = new Set(rows.map((r) => r.code));
    // Not here: INVALID_REQUEST (the caller's bug, not the borrower's), the transport ones (401, 403, 408, 413,
    // 503) and RATE_LIMITED (its own service below).
    const customerFacing = (Object.keys(CATALOGUE) as ErrorCode[]).filter((code) => {
      const ops = CATALOGUE[code].operations;
      return Array.isArray(ops) && ops.includes('reserve') && ![408, 413].includes(CATALOGUE[code].status);
    });
    expect([...covered].sort()).toEqual(customerFacing.sort());
  });

  it('each answers the catalogue’s Chinese title and detail, the English answer’s code and fields', async () => {
    for (const row of rows) {
      const en = await row.reserve(english);
      expect(en.ok, row.name).toBe(false);
      expect(en.problem!.code, row.name).toBe(row.code);
      // The expected context is the one the service refused with: its English detail reads the same.
      expect(en.problem!.detail, row.name).toBe(textsOf(row.code, row.params, 'en').detail);
      if (row.retryAfterAbout === undefined) expect(en.problem!.retryAfterSeconds, row.name).toBeUndefined();
      for (const tag of ZH_TAGS) {
        const zhClient = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: CLIENT_KEY, language: tag });
        const zh = await row.reserve(zhClient);
        expect(zh.ok, `${row.name} (${tag})`).toBe(false);
        expectChineseAnswer(row, tag, zh.problem!, en.problem!);
      }
    }
  });
});

describe('rate limited in Chinese through the client', () => {
  let limited: ServiceContext;
  beforeAll(async () => {
    limited = await startServiceContext({ RATE_LIMIT_CUSTOMER_PER_SECOND: '1' });
  });
  afterAll(() => limited?.stop());

  it('RATE_LIMITED keeps its code and Retry-After; its texts are the catalogue’s Chinese', async () => {
    const adminHere = new QuotaClient({ baseUrl: limited.baseUrl, apiKey: ADMIN_KEY });
    const p = uniqueId('p');
    expect((await adminHere.admin.putProduct(p, { capacity: 100_000 })).ok).toBe(true);
    expect((await adminHere.admin.putLine(p, 'c', { limit: 100_000 })).ok).toBe(true);
    /** A second reserve in the same one-second window is refused (retried if the window turned in between). */
    async function limitedAnswer(client: QuotaClient): Promise<Problem> {
      for (let attempt = 0; attempt < 5; attempt++) {
        await client.reserve(p, { customerId: 'c', amount: 1 });
        const second = await client.reserve(p, { customerId: 'c', amount: 1 });
        if (!second.ok && second.problem.code === 'RATE_LIMITED') return second.problem;
      }
      throw new Error('never rate limited');
    }
    const row: Row = {
      name: 'rate limited',
      code: 'RATE_LIMITED',
      params: { message: 'more than 1 requests per second for this customer' },
      retryAfterAbout: 1,
      reserve: () => Promise.reject(new Error('not used')),
    };
    const en = await limitedAnswer(new QuotaClient({ baseUrl: limited.baseUrl, apiKey: CLIENT_KEY }));
    expect(en.detail).toBe(textsOf('RATE_LIMITED', row.params, 'en').detail);
    expect(en.retryAfterSeconds).toBe(1);
    for (const tag of ZH_TAGS) {
      const zh = await limitedAnswer(new QuotaClient({ baseUrl: limited.baseUrl, apiKey: CLIENT_KEY, language: tag }));
      expectChineseAnswer(row, tag, zh, en);
    }
  });
});
