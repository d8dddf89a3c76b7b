/**
 * The request log: with LOG_REQUESTS=all one line per request (request id,
 * route template, status, duration); with the default (errors) only 5xx and
 * slow requests, plus every admin-route request; a fraction samples the rest.
 * X-Request-Id taken from the caller or made, and returned, whatever is logged.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { DEFAULT_REQUEST_LOG, requestLogLevel, type RequestLogSettings } from '../../src/http/requestLog.js';
import { startService, type RunningService } from '../../src/main.js';
import { uniqueId } from '../support/engineContext.js';

const lines: Record<string, unknown>[] = [];
let service: RunningService;
let base: string;
const auth = { authorization: 'Bearer log-test-admin-key' };

beforeAll(async () => {
  const config = parseConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    REDIS_URL: inject('redisUrl'),
    KEY_PREFIX: uniqueId('log'),
    QUOTA_API_KEYS: 'admin:log-test-admin-key',
    ROLE: 'api',
    LOG_REQUESTS: 'all',
  });
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  service = await startService(config, logger);
  base = `http://127.0.0.1:${service.port}`;
});
afterAll(() => service.stop());

it("logs one line per request and returns the caller's X-Request-Id, or a new one", async () => {
  const p = uniqueId('p');
  const given = await fetch(`${base}/v1/products/${p}`, { headers: { ...auth, 'x-request-id': 'trace-abc.123' } });
  expect(given.status).toBe(404);
  expect(given.headers.get('x-request-id')).toBe('trace-abc.123');

  const made = await fetch(`${base}/v1/products/${p}`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/json' },
    body: '{"capacity":5}',
  });
  expect(made.status).toBe(201);
  const madeId = made.headers.get('x-request-id');
  expect(madeId).toMatch(/^[0-9a-f-]{36}$/);

  const bad = await fetch(`${base}/v1/products/${p}`, { headers: { ...auth, 'x-request-id': 'not ok {}' } });
  expect(bad.headers.get('x-request-id')).not.toBe('not ok {}');

  await new Promise((resolve) => setTimeout(resolve, 50));
  const requestLines = lines.filter((l) => l.msg === 'request');
  const first = requestLines.find((l) => l.requestId === 'trace-abc.123');
  expect(first).toMatchObject({
    method: 'GET',
    route: '/v1/products/:productId',
    status: 404,
    url: `/v1/products/${p}`,
  });
  expect(typeof first?.durationMs).toBe('number');
  expect(requestLines.filter((l) => l.requestId === madeId)).toHaveLength(1);
  expect(requestLines.find((l) => l.requestId === madeId)).toMatchObject({ method: 'PUT', status: 201 });
});

it('LOG_REQUESTS: errors by default, all, or a fraction; anything else is refused at start', () => {
  const base = { QUOTA_API_KEYS: 'admin:log-test-admin-key-0001' };
  expect(parseConfig(base).requestLog).toEqual({ policy: { mode: 'errors' }, slowMs: 500 });
  expect(parseConfig({ ...base, LOG_REQUESTS: 'all', LOG_SLOW_REQUEST_MS: '250' }).requestLog).toEqual({
    policy: { mode: 'all' },
    slowMs: 250,
  });
  expect(parseConfig({ ...base, LOG_REQUESTS: '0.01' }).requestLog.policy).toEqual({ mode: 'sampled', fraction: 0.01 });
  for (const bad of ['1', '0', '1.5', 'some', '-0.1'])
    expect(() => parseConfig({ ...base, LOG_REQUESTS: bad })).toThrow(/LOG_REQUESTS/);
});

it('whatever the setting, 5xx answers (error) and slow requests (warn) are logged; the rest as the policy says', () => {
  const settings = (policy: RequestLogSettings['policy']): RequestLogSettings => ({ policy, slowMs: 500 });
  const never = () => 0.99;
  const always = () => 0;
  for (const policy of [{ mode: 'all' }, { mode: 'errors' }, { mode: 'sampled', fraction: 0.5 }] as const) {
    expect(requestLogLevel(settings(policy), 503, 1, never)).toBe('error');
    expect(requestLogLevel(settings(policy), 201, 500, never)).toBe('warn');
  }
  expect(requestLogLevel(settings({ mode: 'all' }), 201, 3, never)).toBe('info');
  expect(requestLogLevel(settings({ mode: 'errors' }), 409, 3, always)).toBeUndefined();
  expect(requestLogLevel(settings({ mode: 'sampled', fraction: 0.5 }), 201, 3, always)).toBe('info');
  expect(requestLogLevel(settings({ mode: 'sampled', fraction: 0.5 }), 201, 3, never)).toBeUndefined();
  expect(requestLogLevel(settings({ mode: 'errors' }), 200, 3, never, true)).toBe('info'); // an admin route
  expect(DEFAULT_REQUEST_LOG.policy.mode).toBe('all'); // an app built without settings (tests) logs every request
});

it('with the default (errors), every admin-route request still gets a line naming its key, never the key', async () => {
  const adminKey = 'ops-anna-key-0123456789';
  const clientKey = 'android-app-key-0123456789';
  const own: Record<string, unknown>[] = [];
  const quiet = await startService(
    parseConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL: inject('redisUrl'),
      KEY_PREFIX: uniqueId('log'),
      QUOTA_API_KEYS: `admin:ops-anna:${adminKey},client:android-app:${clientKey}`,
      ROLE: 'api',
    }),
    pino({ level: 'info' }, { write: (line: string) => void own.push(JSON.parse(line)) }),
  );
  try {
    const url = `http://127.0.0.1:${quiet.port}`;
    const send = (key: string, method: string, path: string, body?: unknown) =>
      fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'idempotency-key': uniqueId('k'),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const p = uniqueId('p');
    expect((await send(adminKey, 'PUT', `/v1/products/${p}`, { capacity: 1_000 })).status).toBe(201);
    expect((await send(adminKey, 'PUT', `/v1/products/${p}/customers/c1`, { limit: 100 })).status).toBe(201);
    expect(
      (await send(clientKey, 'POST', `/v1/products/${p}/reservations`, { customerId: 'c1', amount: 5 })).status,
    ).toBe(201);
    expect((await send(clientKey, 'GET', `/v1/products/${p}`)).status).toBe(200);
    expect((await send(clientKey, 'PATCH', `/v1/products/${p}`, { status: 'paused' })).status).toBe(403);
    expect((await send(adminKey, 'GET', `/v1/products/${p}/reservations?status=held`)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 50));

    const logged = own.filter((l) => l.msg === 'request').map((l) => `${l.method} ${l.status} ${l.key}`);
    expect(logged).toEqual(['PUT 201 ops-anna', 'PUT 201 ops-anna', 'PATCH 403 android-app', 'GET 200 ops-anna']);
    const text = JSON.stringify(own);
    expect(text).not.toContain(adminKey);
    expect(text).not.toContain(clientKey);
  } finally {
    await quiet.stop();
  }
});
