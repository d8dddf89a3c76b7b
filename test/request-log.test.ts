/** One log line per request (request id, route template, status, duration); X-Request-Id taken from the caller or made, and returned. */
import { pino } from 'pino';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { startService, type RunningService } from '../src/main.js';
import { uniqueId } from './support/engineContext.js';

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
  });
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  service = await startService(config, logger);
  base = `http://127.0.0.1:${service.port}`;
});
afterAll(() => service.stop());

it('logs one line per request and returns the caller\'s X-Request-Id, or a new one', async () => {
  const p = uniqueId('p');
  const given = await fetch(`${base}/v1/products/${p}`, { headers: { ...auth, 'x-request-id': 'trace-abc.123' } });
  expect(given.status).toBe(404);
  expect(given.headers.get('x-request-id')).toBe('trace-abc.123');

  const made = await fetch(`${base}/v1/products/${p}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: '{"capacity":5}' });
  expect(made.status).toBe(201);
  const madeId = made.headers.get('x-request-id');
  expect(madeId).toMatch(/^[0-9a-f-]{36}$/);

  const bad = await fetch(`${base}/v1/products/${p}`, { headers: { ...auth, 'x-request-id': 'not ok {}' } });
  expect(bad.headers.get('x-request-id')).not.toBe('not ok {}');

  await new Promise((resolve) => setTimeout(resolve, 50));
  const requestLines = lines.filter((l) => l.msg === 'request');
  const first = requestLines.find((l) => l.requestId === 'trace-abc.123');
  expect(first).toMatchObject({ method: 'GET', route: '/v1/products/:productId', status: 404, url: `/v1/products/${p}` });
  expect(typeof first?.durationMs).toBe('number');
  expect(requestLines.filter((l) => l.requestId === madeId)).toHaveLength(1);
  expect(requestLines.find((l) => l.requestId === madeId)).toMatchObject({ method: 'PUT', status: 201 });
});
