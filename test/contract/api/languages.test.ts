/**
 * Contract "Languages": title and detail in Simplified Chinese for zh,
 * zh-CN, zh-Hans (or the best match of a weighted list), English otherwise;
 * code, status and every other field the same in both. Every error code is
 * provoked over real HTTP in both languages (INTERNAL, which no request can
 * provoke on purpose, is rendered directly); a replayed refusal changes
 * only its texts; the line view explains each blocker in the chosen language.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { CATALOGUE, ERROR_CODES, type ErrorCode } from '../../../src/errors/catalogue.js';
import { chooseLanguage } from '../../../src/errors/language.js';
import { problem, renderProblem } from '../../../src/http/problems.js';
import { startDelayProxy, type DelayProxy } from '../../support/delayProxy.js';
import { startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import {
  ADMIN_KEY,
  admin,
  client,
  expectProblem,
  hold,
  makeLine,
  makeProduct,
  raw,
  sleep,
  uniqueId,
  type RawResponse,
} from '../../support/api.js';

const EN = { 'Accept-Language': 'en' };
const ZH = { 'Accept-Language': 'zh-CN' };
const CJK = /[\u4e00-\u9fff]/;

let svc: ServiceContext;
beforeAll(async () => {
  svc = await startServiceContext();
});
afterAll(() => svc.stop());

type Call = (headers: Record<string, string>) => Promise<RawResponse>;
const provoked = new Set<ErrorCode>();

/** Calls twice, in English then in Chinese: the same answer but for title and detail. Returns both bodies. */
async function inBoth(code: ErrorCode, call: Call) {
  const status = CATALOGUE[code].status;
  const en = await call(EN);
  const zh = await call(ZH);
  expectProblem(en, status, code);
  expectProblem(zh, status, code);
  const { title: enTitle, detail: enDetail, requestId: _a, ...enRest } = en.body;
  const { title: zhTitle, detail: zhDetail, requestId: _b, ...zhRest } = zh.body;
  expect(zhRest, code).toEqual(enRest);
  expect(enTitle).toBe(CATALOGUE[code].en.title);
  expect(zhTitle).toBe(CATALOGUE[code].zh.title);
  expect(zhDetail, code).toMatch(CJK);
  expect(enDetail, code).not.toMatch(CJK);
  expect(zhDetail).not.toMatch(/undefined|null|NaN/);
  expect(zh.headers.get('content-language')).toBe('zh-CN');
  expect(en.headers.get('content-language')).toBe('en');
  expect(zh.headers.get('retry-after') === null).toBe(en.headers.get('retry-after') === null);
  provoked.add(code);
  return { en: en.body, zh: zh.body };
}

const path = (p: string, rest = '') => `/v1/products/${p}${rest}`;
const reserveIn =
  (p: string, body: unknown, key = uniqueId('k')) =>
  (h: Record<string, string>) =>
    client(svc, 'POST', path(p, '/reservations'), body, { ...h, 'Idempotency-Key': key });

describe('every code in both languages', () => {
  let p: string;
  beforeAll(async () => {
    p = await makeProduct(svc, { capacity: 100_000, minAmount: 10, maxAmount: 500 });
    await makeLine(svc, p, 'ok', { limit: 300 });
    await makeLine(svc, p, 'holder', { limit: 10_000 });
    await makeLine(svc, p, 'pending', { limit: 300, status: 'pending_activation', statusReason: 'KYC review 7' });
    await makeLine(svc, p, 'frozen', { limit: 300, status: 'frozen', statusReason: 'risk review 42' });
    await makeLine(svc, p, 'closed', { limit: 300, status: 'closed' });
  });

  it('request problems: 400, 401, 403, 404, 405, 413', async () => {
    const invalid = await inBoth('INVALID_REQUEST', reserveIn(p, { customerId: 'ok', amount: 'ten' }));
    expect(invalid.zh.detail).toContain('body.amount');
    expect(invalid.zh.errors).toEqual(invalid.en.errors);
    await inBoth('UNAUTHENTICATED', (h) => raw(svc, 'GET', path(p), { key: null, headers: h }));
    await inBoth('FORBIDDEN', (h) => client(svc, 'PUT', path(p), { capacity: 1 }, h));
    await inBoth('PRODUCT_NOT_FOUND', (h) => client(svc, 'GET', path(uniqueId('absent')), undefined, h));
    await inBoth('NO_CREDIT_LINE', (h) => client(svc, 'GET', path(p, '/customers/nobody'), undefined, h));
    await inBoth('RESERVATION_NOT_FOUND', (h) => client(svc, 'GET', path(p, '/reservations/absent'), undefined, h));
    await inBoth('ROUTE_NOT_FOUND', (h) => client(svc, 'GET', '/v1/nothing-here', undefined, h));
    const method = await inBoth('METHOD_NOT_ALLOWED', (h) => client(svc, 'DELETE', path(p), undefined, h));
    expect(method.zh.detail).toContain('DELETE');
    await inBoth(
      'PAYLOAD_TOO_LARGE',
      reserveIn(p, { customerId: 'ok', amount: 20, metadata: { x: 'y'.repeat(40_000) } }),
    );
  });

  it('reserve refusals, in the contract order of checks', async () => {
    const range = await inBoth('AMOUNT_OUT_OF_RANGE', reserveIn(p, { customerId: 'ok', amount: 5 }));
    expect(range.zh.detail).toContain('0.10 元');
    expect(range.zh.detail).toContain('5.00 元');
    const limit = await inBoth('CUSTOMER_LIMIT_EXCEEDED', reserveIn(p, { customerId: 'ok', amount: 400 }));
    expect(limit.zh.detail).toContain('3.00 元');
    const pending = await inBoth('ACCOUNT_PENDING_ACTIVATION', reserveIn(p, { customerId: 'pending', amount: 100 }));
    expect(pending.zh.detail).toContain('KYC review 7'); // the reason is the operator's text, as written
    expect(pending.zh.detail).toMatch(/激活/);
    expect(pending.en.detail).toBe('the account is pending activation: KYC review 7');
    expect((await inBoth('ACCOUNT_FROZEN', reserveIn(p, { customerId: 'frozen', amount: 100 }))).zh.detail).toContain(
      'risk review 42',
    );
    await inBoth('ACCOUNT_CLOSED', reserveIn(p, { customerId: 'closed', amount: 100 }));

    const small = await makeProduct(svc, { capacity: 50, minAmount: 10 });
    await makeLine(svc, small, 'c', { limit: 1_000 });
    const pool = await inBoth('POOL_EXHAUSTED', reserveIn(small, { customerId: 'c', amount: 100 }));
    expect(pool.en.drawable).toBe(50);
    expect(pool.zh.detail).toContain('0.50 元');

    const opensAt = Date.now() + 3_600_000;
    const later = await makeProduct(svc, { capacity: 1_000, opensAt: new Date(opensAt).toISOString() });
    await makeLine(svc, later, 'c', { limit: 1_000 });
    const notOpen = await inBoth('PRODUCT_NOT_OPEN', reserveIn(later, { customerId: 'c', amount: 100 }));
    expect(notOpen.zh.detail).toContain('北京时间');

    const resumeAt = Date.UTC(2031, 11, 1, 2, 0); // 10:00 in Beijing
    const paused = await makeProduct(svc, {
      capacity: 1_000,
      status: 'paused',
      pauseReason: 'ledger maintenance',
      resumeAt: new Date(resumeAt).toISOString(),
    });
    await makeLine(svc, paused, 'c', { limit: 1_000 });
    const pause = await inBoth('PRODUCT_PAUSED', reserveIn(paused, { customerId: 'c', amount: 100 }));
    expect(pause.zh.detail).toContain('ledger maintenance');
    expect(pause.zh.detail).toContain('2031年12月1日 10:00（北京时间）');
    expect(pause.en.detail).toContain('2031-12-01T02:00:00.000Z');

    const closed = await makeProduct(svc, { capacity: 1_000, status: 'closed' });
    await makeLine(svc, closed, 'c', { limit: 1_000 });
    await inBoth('PRODUCT_CLOSED', reserveIn(closed, { customerId: 'c', amount: 100 }));
  });

  it('reservation state refusals: commit, release, resolve, repay, idempotency', async () => {
    const released = await hold(svc, p, 'holder', 20);
    expect((await client(svc, 'POST', path(p, `/reservations/${released.reservationId}/release`))).status).toBe(200);
    await inBoth('RESERVATION_RELEASED', (h) =>
      client(svc, 'POST', path(p, `/reservations/${released.reservationId}/commit`), undefined, h),
    );

    const committed = await hold(svc, p, 'holder', 20);
    expect((await client(svc, 'POST', path(p, `/reservations/${committed.reservationId}/commit`))).status).toBe(200);
    await inBoth('RESERVATION_ALREADY_COMMITTED', (h) =>
      client(svc, 'POST', path(p, `/reservations/${committed.reservationId}/release`), undefined, h),
    );

    const held = await hold(svc, p, 'holder', 20);
    const over = await inBoth('COMMIT_EXCEEDS_HOLD', (h) =>
      client(svc, 'POST', path(p, `/reservations/${held.reservationId}/commit`), { amount: 30 }, h),
    );
    expect(over.zh.detail).toContain('0.20 元');
    await inBoth('RESERVATION_STATE_CONFLICT', (h) =>
      admin(svc, 'POST', path(p, `/reservations/${held.reservationId}/resolve`), { outcome: 'settled' }, h),
    );
    await inBoth('REPAYMENT_EXCEEDS_DRAWN', (h) =>
      client(
        svc,
        'POST',
        path(p, '/customers/ok/repayments'),
        { amount: 10 },
        { ...h, 'Idempotency-Key': uniqueId('k') },
      ),
    );
    const key = uniqueId('k');
    expect((await reserveIn(p, { customerId: 'holder', amount: 20 }, key)(EN)).status).toBe(201);
    await inBoth('IDEMPOTENCY_KEY_REUSED', reserveIn(p, { customerId: 'holder', amount: 21 }, key));

    const expiring = await hold(svc, p, 'holder', 20, { ttlSeconds: 1 });
    await sleep(1_300);
    await inBoth('RESERVATION_EXPIRED', (h) =>
      client(svc, 'POST', path(p, `/reservations/${expiring.reservationId}/commit`), undefined, h),
    );
  });

  describe(
    '408, 429 and 503 (a service of their own: short body timeout, a ' +
      'per-customer rate, Redis behind a delaying proxy)',
    () => {
      let proxy: DelayProxy;
      let edge: ServiceContext;
      beforeAll(async () => {
        const target = new URL(inject('redisUrl'));
        proxy = await startDelayProxy({ host: target.hostname, port: Number(target.port) });
        edge = await startServiceContext({
          REDIS_URL: proxy.url,
          BODY_TIMEOUT_MS: '300',
          RATE_LIMIT_CUSTOMER_PER_SECOND: '2',
        });
      });
      afterAll(async () => {
        await edge?.stop();
        await proxy?.stop();
      });

      it('REQUEST_TIMEOUT: a body that stalls', async () => {
        const stalled = (h: Record<string, string>) =>
          new Promise<RawResponse>((resolve, reject) => {
            // fetch cannot stall a body: a raw request announcing more bytes than it sends.
            import('node:net').then(({ connect }) => {
              const socket = connect(Number(new URL(edge.baseUrl).port), '127.0.0.1');
              let text = '';
              socket.on('data', (d) => (text += d.toString()));
              socket.on('error', reject);
              socket.on('close', () => {
                const [head = '', body = ''] = text.split('\r\n\r\n');
                const headers = new Headers();
                for (const line of head.split('\r\n').slice(1))
                  headers.append(line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim());
                resolve({
                  status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]),
                  headers,
                  text: body,
                  body: JSON.parse(body),
                  ms: 0,
                });
              });
              const lang = Object.entries(h)
                .map(([k, v]) => `${k}: ${v}\r\n`)
                .join('');
              socket.write(
                `POST /v1/products/p/reservations HTTP/1.1\r\nHost: x\r\n` +
                  `Authorization: Bearer ${ADMIN_KEY}\r\nConnection: close\r\n` +
                  `Content-Type: application/json\r\nIdempotency-Key: k1\r\nContent-Length: 40\r\n${lang}\r\n{"cu`,
              );
            }, reject);
          });
        await inBoth('REQUEST_TIMEOUT', stalled);
      });

      it('RATE_LIMITED: a customer over its rate', async () => {
        const p2 = await makeProduct(edge, { capacity: 1_000 });
        await makeLine(edge, p2, 'c', { limit: 1_000 });
        const burst = async (h: Record<string, string>) => {
          const answers = await Promise.all(
            [1, 2, 3, 4].map(() =>
              client(
                edge,
                'POST',
                path(p2, '/reservations'),
                { customerId: 'c', amount: 1 },
                { ...h, 'Idempotency-Key': uniqueId('k') },
              ),
            ),
          );
          const limited = answers.find((a) => a.status === 429);
          expect(limited, JSON.stringify(answers.map((a) => a.status))).toBeDefined();
          return limited!;
        };
        await inBoth('RATE_LIMITED', burst);
      });

      it('UNAVAILABLE: Redis too slow to answer by the deadline', async () => {
        proxy.setReplyDelay(2_500);
        try {
          await inBoth('UNAVAILABLE', (h) => client(edge, 'GET', path(uniqueId('p')), undefined, h));
        } finally {
          proxy.setReplyDelay(0);
        }
      }, 15_000);
    },
  );

  it('INTERNAL (no request provokes it on purpose): rendered in both languages, the request id kept', () => {
    const draft = problem('INTERNAL', {
      message: 'an internal error occurred; quote request id r-1',
      requestId: 'r-1',
    });
    const en = renderProblem(draft, 'en');
    const zh = renderProblem(draft, 'zh');
    expect({ ...zh, title: '', detail: '' }).toEqual({ ...en, title: '', detail: '' });
    expect(zh.detail).toMatch(CJK);
    expect(zh.detail).toContain('r-1');
    provoked.add('INTERNAL');
  });

  it('covered every code of the catalogue', () => {
    expect([...provoked].sort()).toEqual([...ERROR_CODES].sort());
  });
});

describe('choosing the language', () => {
  it.each([
    [undefined, 'en'],
    ['', 'en'],
    ['zh', 'zh'],
    ['zh-CN', 'zh'],
    ['zh-cn', 'zh'],
    ['zh-Hans', 'zh'],
    ['zh-Hans-CN', 'zh'],
    ['zh-TW', 'en'],
    ['zh-Hant', 'en'],
    ['en-US', 'en'],
    ['fr', 'en'],
    ['en;q=0.5, zh-CN;q=0.9', 'zh'],
    ['zh-CN;q=0.4, en;q=0.8', 'en'],
    ['fr, zh;q=0.1', 'zh'],
    ['zh, en', 'zh'],
    ['en, zh', 'en'],
    ['zh;q=0, *', 'en'],
    ['*', 'en'],
    ['zh;q=abc, en;q=0.1', 'en'],
    ['de-DE,de;q=0.9,zh-CN;q=0.8,en;q=0.7', 'zh'],
  ])('%s → %s', (header, expected) => {
    expect(chooseLanguage(header)).toBe(expected);
  });

  it('over HTTP: a weighted list whose best match is Chinese answers Chinese', async () => {
    for (const [header, language] of [
      ['en;q=0.5, zh-CN;q=0.9', 'zh'],
      ['zh-TW', 'en'],
      ['fr, zh-Hans;q=0.2', 'zh'],
    ] as const) {
      const res = await client(svc, 'GET', path(uniqueId('absent')), undefined, { 'Accept-Language': header });
      expectProblem(res, 404, 'PRODUCT_NOT_FOUND');
      expect(res.body.title, header).toBe(CATALOGUE.PRODUCT_NOT_FOUND[language].title);
      expect(res.headers.get('vary') ?? '').toMatch(/Accept-Language/i);
    }
  });
});

describe('a replayed answer in another language', () => {
  it(
    'a stored refusal replays with the same status, code and ' + 'fields, its texts in the language asked now',
    async () => {
      const p = await makeProduct(svc, { capacity: 1_000 });
      await makeLine(svc, p, 'pending', { limit: 300, status: 'pending_activation', statusReason: 'KYC in review' });
      const key = uniqueId('k');
      const first = await reserveIn(p, { customerId: 'pending', amount: 100 }, key)(EN);
      expectProblem(first, 409, 'ACCOUNT_PENDING_ACTIVATION');
      // The line is activated: a fresh evaluation would now grant it; the replay answers the first outcome.
      await makeLine(svc, p, 'pending', { limit: 300, status: 'active' });
      const inChinese = await reserveIn(p, { customerId: 'pending', amount: 100 }, key)(ZH);
      expectProblem(inChinese, 409, 'ACCOUNT_PENDING_ACTIVATION');
      expect(inChinese.headers.get('idempotent-replayed')).toBe('true');
      expect({ ...inChinese.body, title: '', detail: '' }).toEqual({ ...first.body, title: '', detail: '' });
      expect(inChinese.body.title).toBe('账户待激活');
      expect(inChinese.body.detail).toContain('KYC in review');
      const again = await reserveIn(p, { customerId: 'pending', amount: 100 }, key)(EN);
      expect(again.text).toBe(first.text); // the same language: byte for byte
    },
  );

  it('a stored 2xx replays byte for byte whatever the language (it has no texts)', async () => {
    const p = await makeProduct(svc, { capacity: 1_000 });
    await makeLine(svc, p, 'c', { limit: 300 });
    const key = uniqueId('k');
    const first = await reserveIn(p, { customerId: 'c', amount: 100 }, key)(EN);
    expect(first.status).toBe(201);
    const replay = await reserveIn(p, { customerId: 'c', amount: 100 }, key)(ZH);
    expect(replay.status).toBe(201);
    expect(replay.text).toBe(first.text);
  });
});

describe('the line view explains each blocker (blockerDetails)', () => {
  it('in the chosen language, in the order of blockers, with the reason and when the blocker lifts', async () => {
    const resumeAt = new Date(Date.now() + 2 * 3_600_000).toISOString();
    const p = await makeProduct(svc, { capacity: 1_000, status: 'paused', pauseReason: '系统升级', resumeAt });
    await makeLine(svc, p, 'c', { limit: 300, status: 'pending_activation', statusReason: 'KYC in review' });
    const get = (h: Record<string, string>) => client(svc, 'GET', path(p, '/customers/c'), undefined, h);
    const en = (await get(EN)).body;
    const zh = (await get(ZH)).body;
    expect(en.blockers).toEqual(['PRODUCT_PAUSED', 'ACCOUNT_PENDING_ACTIVATION']);
    expect(zh.blockerDetails.map((d: { code: string }) => d.code)).toEqual(zh.blockers);
    expect({ ...zh, blockerDetails: null }).toEqual({ ...en, blockerDetails: null });

    const [pausedZh, pendingZh] = zh.blockerDetails;
    const [pausedEn, pendingEn] = en.blockerDetails;
    expect(pausedZh).toEqual({
      code: 'PRODUCT_PAUSED',
      title: '产品暂停借款',
      detail: expect.stringContaining('系统升级'),
      retryAt: new Date(resumeAt).toISOString(),
    });
    expect(pausedZh.detail).toContain('北京时间');
    expect(pausedEn).toEqual({
      code: 'PRODUCT_PAUSED',
      title: 'The product is paused',
      detail: expect.stringContaining(new Date(resumeAt).toISOString()),
      retryAt: pausedZh.retryAt,
    });
    expect(pendingZh).toEqual({
      code: 'ACCOUNT_PENDING_ACTIVATION',
      title: '账户待激活',
      detail: expect.stringContaining('KYC in review'),
    });
    expect(pendingZh.detail).toMatch(/激活/);
    expect(pendingEn.detail).toBe('the account is pending activation: KYC in review');
  });

  it('is empty when nothing blocks', async () => {
    const p = await makeProduct(svc, { capacity: 1_000 });
    await makeLine(svc, p, 'c', { limit: 300 });
    const line = (await client(svc, 'GET', path(p, '/customers/c'), undefined, ZH)).body;
    expect(line.drawable).toBe(300);
    expect(line.blockerDetails).toEqual([]);
  });
});
