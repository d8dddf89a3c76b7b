/**
 * Issue 10 item 11: several named keys per role (`role:name:key`), rotated
 * without a restart from QUOTA_API_KEYS_FILE (re-read on SIGHUP, i.e.
 * reloadApiKeys, and when the file changes), the key's name (never the key)
 * in every request's log line, admin actions included.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { startService, type RunningService } from '../../src/main.js';
import { uniqueId } from '../support/engineContext.js';
import { sleep } from '../support/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'qa-keys-'));
const keysFile = join(dir, 'keys');
const lines: Record<string, unknown>[] = [];
let service: RunningService;
let base: string;

beforeAll(async () => {
  writeFileSync(
    keysFile,
    'admin:ops-alice:alice-key-0001\nclient:android-app:android-key-0001\nclient:web:web-key-0001\n',
  );
  const config = parseConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    REDIS_URL: inject('redisUrl'),
    KEY_PREFIX: uniqueId('keys'),
    QUOTA_API_KEYS_FILE: keysFile,
    ROLE: 'api',
    LOG_REQUESTS: 'all', // the test reads each request's line (the key's name)
  });
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  service = await startService(config, logger);
  base = `http://127.0.0.1:${service.port}`;
});
afterAll(async () => {
  await service.stop();
  rmSync(dir, { recursive: true, force: true });
});

const call = (key: string, method: string, path: string, body?: unknown) =>
  fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });

it('accepts every named key of a role and logs the key name, never the key', async () => {
  const p = uniqueId('p');
  const put = await call('alice-key-0001', 'PUT', `/v1/products/${p}`, { capacity: 5 });
  expect(put.status).toBe(201);
  for (const key of ['android-key-0001', 'web-key-0001'])
    expect((await call(key, 'GET', `/v1/products/${p}`)).status).toBe(200);
  expect((await call('android-key-0001', 'PUT', `/v1/products/${p}`, { capacity: 6 })).status).toBe(403);
  await sleep(50);
  const requests = lines.filter((l) => l.msg === 'request' && String(l.url).includes(p));
  expect(requests.map((l) => [l.method, l.status, l.key])).toEqual([
    ['PUT', 201, 'ops-alice'],
    ['GET', 200, 'android-app'],
    ['GET', 200, 'web'],
    ['PUT', 403, 'android-app'],
  ]);
  expect(JSON.stringify(lines)).not.toMatch(/alice-key-0001|android-key-0001|web-key-0001/);
});

it(
  'rotates keys without a restart: SIGHUP (reloadApiKeys) and a ' +
    'changed file; a broken file keeps the keys in force',
  async () => {
    const p = uniqueId('p');
    expect((await call('alice-key-0001', 'PUT', `/v1/products/${p}`, { capacity: 5 })).status).toBe(201);

    // Rotation: the android app gets a new key; both work during the overlap, then the old one goes.
    writeFileSync(
      keysFile,
      'admin:ops-alice:alice-key-0001\nclient:android-app:android-key-0002\nclient:android-app-old:android-key-0001\n',
    );
    expect(service.reloadApiKeys()).toBe(true);
    expect((await call('android-key-0002', 'GET', `/v1/products/${p}`)).status).toBe(200);
    expect((await call('android-key-0001', 'GET', `/v1/products/${p}`)).status).toBe(200);
    expect((await call('web-key-0001', 'GET', `/v1/products/${p}`)).status).toBe(401);

    // A typo in the file: refused, logged, the keys in force stay.
    writeFileSync(keysFile, 'admin:ops-alice:alice-key-0001\nsuperuser:android-key-0002\n');
    expect(service.reloadApiKeys()).toBe(false);
    expect((await call('android-key-0002', 'GET', `/v1/products/${p}`)).status).toBe(200);
    expect(lines.some((l) => l.msg === 'API keys file not reloaded; the keys in force stay')).toBe(true);

    // The file watched: a change is picked up without any signal.
    writeFileSync(keysFile, 'admin:ops-alice:alice-key-0001\nclient:android-app:android-key-0002\n');
    const deadline = Date.now() + 8_000;
    while (Date.now() < deadline && (await call('android-key-0001', 'GET', `/v1/products/${p}`)).status !== 401)
      await sleep(200);
    expect((await call('android-key-0001', 'GET', `/v1/products/${p}`)).status).toBe(401);
    expect((await call('android-key-0002', 'GET', `/v1/products/${p}`)).status).toBe(200);
  },
  20_000,
);
