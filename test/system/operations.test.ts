/**
 * Operations: the built service as a process (start, readiness, SIGTERM /
 * SIGINT drain and the hard shutdown timeout), configuration errors that stop
 * the start naming the variable, behaviour while Redis hangs or is down (503
 * UNAVAILABLE within 2 seconds, readiness failing, no write replayed later),
 * the private redis-server, and the startup durability check.
 *
 * Every redis-server and service started here is stopped in afterAll/finally,
 * also when a test fails.
 */
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest, type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { startService, type RunningService } from '../../src/main.js';
import { checkDurability } from '../../src/redis/durabilityCheck.js';
import { createKeys } from '../../src/redis/keys.js';
import { readLine, readRecord } from '../../src/redis/storedRecords.js';
import { freePort, startRedisServer, type RedisServerHandle } from '../../src/redis/redisServer.js';
import { resolveRedis } from '../../src/redis/resolveRedis.js';
import { uniqueId } from '../support/engineContext.js';
import { apiKeysEnv, request, type HttpAnswer } from '../support/http.js';
import {
  buildService,
  killAllServices,
  logLines,
  spawnService,
  waitExit,
  type ServiceBuild,
  type ServiceProcess,
} from '../support/serviceProcess.js';
import { sleep, waitFor } from '../support/wait.js';

const ADMIN_KEY = 'ops-admin-key-0001';
const CLIENT_KEY = 'ops-client-key-0001';
const API_KEYS = apiKeysEnv({ admin: ADMIN_KEY, client: CLIENT_KEY });
/** The contract: a request is answered within 2 seconds while Redis does not answer. */
const ANSWER_WITHIN_MS = 2_000;

/** A pino logger whose lines are kept for assertions. */
function captureLogger(): { logger: Logger; lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

const http = (
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  key = CLIENT_KEY,
): Promise<HttpAnswer> => request(baseUrl, method, path, { body, headers, key, timeoutMs: 10_000 });

/** One request on a fresh connection (no pooled keep-alive socket): refused or answered. */
function freshConnectionGet(port: number, path: string): Promise<{ status: number } | { error: string }> {
  return new Promise((resolvePromise) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: 3_000 }, (res) => {
      res.resume();
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0 }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolvePromise({ error: err.code ?? err.message }));
    req.end();
  });
}

/** The answer to a node:http request, body as text. */
function answerOf(req: ClientRequest): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolvePromise, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
  });
}

// ---------------------------------------------------------------------------
// The built service as a process
// ---------------------------------------------------------------------------

let build: ServiceBuild;
const spawnBuilt = (env: Record<string, string>): ServiceProcess => spawnService(build.entry, env);

beforeAll(async () => {
  build = await buildService('operations');
}, 120_000);

afterAll(async () => {
  await killAllServices();
  build?.remove();
});

describe('the service as a process (node dist/src/main.js)', () => {
  let redis: RedisServerHandle;
  beforeAll(async () => {
    redis = await startRedisServer({ appendOnly: true });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  async function startProcess(extra: Record<string, string> = {}) {
    const port = await freePort();
    const keyPrefix = uniqueId('ops');
    const p = spawnBuilt({
      NODE_ENV: 'production',
      REDIS_URL: redis.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      QUOTA_API_KEYS: API_KEYS,
      KEY_PREFIX: keyPrefix,
      LOG_LEVEL: 'info',
      ...extra,
    });
    const baseUrl = `http://127.0.0.1:${port}`;
    await waitFor(
      '/readyz 200',
      async () => {
        if (p.child.exitCode !== null) throw new Error(`exited early: ${p.stderr()}${p.stdout()}`);
        const r = await http(baseUrl, 'GET', '/readyz');
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 20_000, everyMs: 50 },
    ).catch((err: Error) => {
      p.child.kill('SIGKILL');
      throw new Error(`${err.message}\nstdout:\n${p.stdout()}\nstderr:\n${p.stderr()}`);
    });
    return { p, port, baseUrl, keys: createKeys(keyPrefix) };
  }

  it(
    'starts, is ready, says what it found about Redis; SIGTERM ' + 'lets an in-flight request finish, then exits 0',
    async () => {
      const SHUTDOWN_TIMEOUT_MS = 8_000;
      const { p, port, baseUrl, keys } = await startProcess({ SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) });
      try {
        const ready = await http(baseUrl, 'GET', '/readyz');
        expect(ready.status).toBe(200);
        const logs = logLines(p.stdout());
        expect(logs.some((l) => l.msg === 'quota-allocator started')).toBe(true);
        expect(logs.some((l) => /redis durability/.test(l.msg ?? ''))).toBe(true);

        // It serves.
        const productId = uniqueId('p');
        expect(
          (await http(baseUrl, 'PUT', `/v1/products/${productId}`, { capacity: 1_000 }, {}, ADMIN_KEY)).status,
        ).toBe(201);

        // A slow in-flight request: a bulk import whose body is still streaming,
        // on a keep-alive connection (one socket, reused by the next request).
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        const rows = Array.from(
          { length: 20 },
          (_, i) => JSON.stringify({ customerId: `c${i}`, limit: 100 + i }) + '\n',
        );
        const upload = httpRequest({
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: `/v1/products/${productId}/customers:bulk`,
          agent,
          headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/x-ndjson' },
        });
        const inFlight = answerOf(upload);
        upload.write(rows.slice(0, 10).join(''));
        await sleep(300); // the request is in the handler, reading its body

        const signalledAt = performance.now();
        p.child.kill('SIGTERM');
        await sleep(300);
        // Draining: the process is still there for the in-flight request, and
        // takes no new work (a new connection is refused or told not ready).
        expect(p.child.exitCode).toBeNull();
        const probe = await freshConnectionGet(port, '/readyz');
        console.log(`[operations] /readyz on a new connection while draining: ${JSON.stringify(probe)}`);
        expect('status' in probe ? probe.status : 503).toBe(503);

        upload.end(rows.slice(10).join(''));
        const answer = await inFlight;
        const answeredAt = performance.now();
        expect(answer.status).toBe(200);
        expect(JSON.parse(answer.body).upserted).toBe(20);

        // The same keep-alive connection while draining: readiness fails there
        // too (or the connection is already closed).
        const readyOnKeptConnection = await answerOf(
          httpRequest({ host: '127.0.0.1', port, path: '/readyz', agent }).end(),
        ).catch((err: NodeJS.ErrnoException) => ({ status: 0, body: err.code ?? err.message, headers: {} }));
        const lastAnswerAt = performance.now();
        console.log(
          `[operations] in-flight answer during the drain had Connection: ${answer.headers.connection}; ` +
            (`/readyz on that kept-alive connection afterwards: ` +
              `${readyOnKeptConnection.status} ${readyOnKeptConnection.body}`),
        );
        expect(readyOnKeptConnection.status).not.toBe(200);

        // The client keeps its pooled connection (as HTTP clients and load
        // balancers do); the drain must close it rather than wait for the client.
        const exit = await waitExit(p, SHUTDOWN_TIMEOUT_MS + 2_000).finally(() => agent.destroy());
        const logs2 = logLines(p.stdout());
        console.log(
          `[operations] SIGTERM: in-flight request answered ` +
            `${Math.round(answeredAt - signalledAt)} ms after the signal; ` +
            (`exit code ${exit.code} ${Math.round(exit.at - lastAnswerAt)} ms ` +
              `after the last answer on the kept-alive connection`),
        );
        expect(exit.code).toBe(0);
        expect(exit.at - signalledAt).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
        // "connections close": once its last request is answered, the draining
        // server closes the connection; the exit does not wait for the client to
        // drop it or for the keep-alive timeout.
        expect(exit.at - lastAnswerAt).toBeLessThan(2_000);
        expect(logs2.some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM')).toBe(true);
        expect(logs2.some((l) => l.msg === 'quota-allocator stopped')).toBe(true);

        // The in-flight request's effect landed.
        const check = new Redis(redis.url);
        try {
          expect((await readLine(check, keys, productId, 'c0'))?.limit).toBe('100');
          expect((await readLine(check, keys, productId, 'c19'))?.limit).toBe('119');
        } finally {
          check.disconnect();
        }
      } finally {
        p.child.kill('SIGKILL');
      }
    },
    60_000,
  );

  it('SIGTERM under steady keep-alive traffic: the drain ends cleanly (exit 0) before the hard timeout', async () => {
    // A client (a load balancer, a sidecar) that keeps one connection open and
    // sends requests on it back to back. Draining must close that connection
    // (Connection: close once a request is answered), not keep serving on it
    // until the hard timeout kills the process.
    const SHUTDOWN_TIMEOUT_MS = 4_000;
    const { p, port } = await startProcess({ SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let sending = true;
    const served: Array<{ at: number; status: number; connection: string | undefined }> = [];
    const errors: string[] = [];
    const traffic = (async () => {
      while (sending) {
        try {
          const r = await answerOf(httpRequest({ host: '127.0.0.1', port, path: '/healthz', agent }).end());
          served.push({ at: performance.now(), status: r.status, connection: r.headers.connection });
        } catch (err) {
          errors.push((err as NodeJS.ErrnoException).code ?? (err as Error).message);
          await sleep(50);
        }
      }
    })();
    try {
      await sleep(500);
      const signalledAt = performance.now();
      p.child.kill('SIGTERM');
      const exit = await waitExit(p, SHUTDOWN_TIMEOUT_MS + 3_000);
      const servedAfterSignal = served.filter((s) => s.at > signalledAt);
      console.log(
        `[operations] SIGTERM under keep-alive traffic: exit code ` +
          `${exit.code} after ${Math.round(exit.at - signalledAt)} ms ` +
          (`(hard timeout ${SHUTDOWN_TIMEOUT_MS} ms); ${servedAfterSignal.length} ` +
            `requests served on the kept-alive connection after the signal `) +
          (`(Connection: ${[...new Set(servedAfterSignal.map((s) => s.connection))].join(',') || '-'}); ` +
            `client errors: ${[...new Set(errors)].join(',') || 'none'}`),
      );
      expect(exit.code).toBe(0);
      expect(exit.at - signalledAt).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
      expect(logLines(p.stdout()).some((l) => l.msg === 'quota-allocator stopped')).toBe(true);
    } finally {
      sending = false;
      await traffic;
      agent.destroy();
      p.child.kill('SIGKILL');
    }
  }, 30_000);

  it('SIGINT stops an idle instance cleanly: exit 0 and the "stopped" line', async () => {
    const { p } = await startProcess();
    try {
      const signalledAt = performance.now();
      p.child.kill('SIGINT');
      const exit = await waitExit(p, 10_000);
      console.log(`[operations] SIGINT (idle): exit code ${exit.code} after ${Math.round(exit.at - signalledAt)} ms`);
      expect(exit.code).toBe(0);
      expect(logLines(p.stdout()).some((l) => l.msg === 'quota-allocator stopped')).toBe(true);
    } finally {
      p.child.kill('SIGKILL');
    }
  }, 30_000);

  it('SIGHUP re-reads QUOTA_API_KEYS_FILE: a rotated key works without a restart (issue 10)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qa-ops-keys-'));
    const file = join(dir, 'keys');
    writeFileSync(file, 'admin:ops:rotate-key-AAAA\n');
    const { p, baseUrl } = await startProcess({ QUOTA_API_KEYS: '', QUOTA_API_KEYS_FILE: file });
    try {
      expect((await http(baseUrl, 'GET', '/v1/products/none', undefined, {}, 'rotate-key-AAAA')).status).toBe(404);
      expect((await http(baseUrl, 'GET', '/v1/products/none', undefined, {}, 'rotate-key-BBBB')).status).toBe(401);
      writeFileSync(file, 'admin:ops:rotate-key-BBBB\n');
      p.child.kill('SIGHUP');
      await waitFor(
        'the new key accepted',
        async () => {
          const r = await http(baseUrl, 'GET', '/v1/products/none', undefined, {}, 'rotate-key-BBBB');
          return r.status === 404 ? r : undefined;
        },
        { timeoutMs: 5_000, everyMs: 50 },
      );
      expect((await http(baseUrl, 'GET', '/v1/products/none', undefined, {}, 'rotate-key-AAAA')).status).toBe(401);
      const lines = logLines(p.stdout());
      // The signal did it (the file watch may also have; its line says 'file changed').
      expect(lines.some((l) => l.msg === 'API keys reloaded' && l.reason === 'SIGHUP')).toBe(true);
      expect(p.stdout()).not.toMatch(/rotate-key-/);
      expect(p.child.exitCode).toBeNull();
    } finally {
      p.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);

  it('the hard shutdown timeout ends a drain that a stuck request holds up (exit non-zero, says so)', async () => {
    const SHUTDOWN_TIMEOUT_MS = 1_000;
    const { p, baseUrl } = await startProcess({ SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) });
    const abort = new AbortController();
    try {
      const productId = uniqueId('p');
      expect((await http(baseUrl, 'PUT', `/v1/products/${productId}`, { capacity: 1_000 }, {}, ADMIN_KEY)).status).toBe(
        201,
      );
      // A body that never ends.
      const stuck = fetch(`${baseUrl}/v1/products/${productId}/customers:bulk`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/x-ndjson' },
        body: new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode(JSON.stringify({ customerId: 'c1', limit: 1 }) + '\n'));
          },
        }),
        duplex: 'half',
        signal: abort.signal,
      } as RequestInit);
      stuck.catch(() => {});
      await sleep(300);
      const signalledAt = performance.now();
      p.child.kill('SIGTERM');
      const exit = await waitExit(p, SHUTDOWN_TIMEOUT_MS + 5_000);
      const after = exit.at - signalledAt;
      console.log(
        `[operations] stuck request: exit code ${exit.code} ` +
          `${Math.round(after)} ms after SIGTERM (timeout ${SHUTDOWN_TIMEOUT_MS} ms)`,
      );
      expect(exit.code).not.toBe(0);
      expect(after).toBeGreaterThanOrEqual(SHUTDOWN_TIMEOUT_MS - 100);
      expect(after).toBeLessThan(SHUTDOWN_TIMEOUT_MS + 2_000);
      expect(logLines(p.stdout()).some((l) => /shutdown timed out/.test(l.msg ?? ''))).toBe(true);
    } finally {
      abort.abort();
      p.child.kill('SIGKILL');
    }
  }, 30_000);
});

describe('configuration errors stop the start, naming the variable', () => {
  const nowhere = 'redis://127.0.0.1:1';
  const cases: Array<[string, Record<string, string>, string]> = [
    ['PORT=abc', { PORT: 'abc' }, 'PORT'],
    ['PORT=70000', { PORT: '70000' }, 'PORT'],
    ['NODE_ENV=production without QUOTA_API_KEYS', { NODE_ENV: 'production' }, 'QUOTA_API_KEYS'],
    ['a malformed QUOTA_API_KEYS', { QUOTA_API_KEYS: 'superuser:abcdefghij' }, 'QUOTA_API_KEYS'],
    ['a QUOTA_API_KEYS entry with an empty key', { QUOTA_API_KEYS: 'admin:s3cr3t,client:' }, 'QUOTA_API_KEYS'],
    ['REDIS_URL that is not a redis URL', { REDIS_URL: 'http://127.0.0.1:6379' }, 'REDIS_URL'],
    ['SETTLEMENT_URL without SETTLEMENT_SECRET', { SETTLEMENT_URL: 'http://127.0.0.1:9/ledger' }, 'SETTLEMENT_SECRET'],
    ['an unknown NODE_ENV', { NODE_ENV: 'staging' }, 'NODE_ENV'],
  ];
  for (const [name, env, variable] of cases) {
    it(`${name}: exits non-zero and names ${variable}`, async () => {
      const p = spawnBuilt({ REDIS_URL: nowhere, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env });
      try {
        const exit = await waitExit(p, 10_000);
        expect(exit.code).not.toBe(0);
        expect(exit.code).not.toBeNull();
        expect(p.stderr()).toContain(variable);
      } finally {
        p.child.kill('SIGKILL');
      }
    }, 20_000);
  }

  it('a REDIS_URL nobody answers on: the start fails with a message instead of hanging', async () => {
    const port = await freePort();
    const p = spawnBuilt({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      PORT: '0',
      HOST: '127.0.0.1',
      QUOTA_API_KEYS: API_KEYS,
      LOG_LEVEL: 'info',
    });
    try {
      const exit = await waitExit(p, 15_000);
      expect(exit.code).not.toBe(0);
      expect(p.stdout() + p.stderr()).toMatch(
        /could not start: Redis at REDIS_URL \(redis:\/\/127\.0\.0\.1:\d+\/?\) does not answer/,
      );
    } finally {
      p.child.kill('SIGKILL');
    }
  }, 30_000);
});

// ---------------------------------------------------------------------------
// Redis hangs or goes away under a running service
// ---------------------------------------------------------------------------

describe('while Redis does not answer', () => {
  interface Running {
    service: RunningService;
    baseUrl: string;
    keys: ReturnType<typeof createKeys>;
  }

  async function startOn(redisUrl: string): Promise<Running> {
    const keyPrefix = uniqueId('down');
    const config = parseConfig({
      NODE_ENV: 'test',
      PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL: redisUrl,
      KEY_PREFIX: keyPrefix,
      QUOTA_API_KEYS: API_KEYS,
      LOG_LEVEL: 'silent',
      SHUTDOWN_TIMEOUT_MS: '5000',
    });
    const service = await startService(config, pino({ level: 'silent' }));
    return { service, baseUrl: `http://127.0.0.1:${service.port}`, keys: createKeys(keyPrefix) };
  }

  function expectUnavailable(r: HttpAnswer, label: string) {
    expect(r.status, `${label}: ${JSON.stringify(r.body)}`).toBe(503);
    expect(r.body?.code, label).toBe('UNAVAILABLE');
    expect(r.headers.get('content-type'), label).toMatch(/application\/problem\+json/);
    expect(Number(r.headers.get('retry-after')), `${label}: Retry-After`).toBeGreaterThanOrEqual(1);
    expect(r.ms, `${label}: answered within ${ANSWER_WITHIN_MS} ms`).toBeLessThan(ANSWER_WITHIN_MS);
  }

  it(
    'hangs (SIGSTOP): 503 UNAVAILABLE with Retry-After within 2 s, /readyz ' +
      '503; after SIGCONT it serves again, nothing applied twice',
    async () => {
      const redis = await startRedisServer({ appendOnly: true });
      const pid = redis.process.pid!;
      let stopped = false;
      let svc: Running | undefined;
      const direct = new Redis(redis.url);
      try {
        svc = await startOn(redis.url);
        const { baseUrl, keys } = svc;
        const p = uniqueId('p');
        expect((await http(baseUrl, 'PUT', `/v1/products/${p}`, { capacity: 10_000 }, {}, ADMIN_KEY)).status).toBe(201);
        expect(
          (await http(baseUrl, 'PUT', `/v1/products/${p}/customers/c1`, { limit: 10_000 }, {}, ADMIN_KEY)).status,
        ).toBe(201);
        const before = await http(
          baseUrl,
          'POST',
          `/v1/products/${p}/reservations`,
          { customerId: 'c1', amount: 100 },
          { 'Idempotency-Key': 'before' },
        );
        expect(before.status).toBe(201);

        process.kill(pid, 'SIGSTOP');
        stopped = true;
        const started = performance.now();
        const answers = await Promise.all([
          ...Array.from({ length: 10 }, (_, i) =>
            http(
              baseUrl,
              'POST',
              `/v1/products/${p}/reservations`,
              { customerId: 'c1', amount: 10 },
              { 'Idempotency-Key': `hang-${i}` },
            ),
          ),
          http(baseUrl, 'GET', `/v1/products/${p}`),
          http(baseUrl, 'GET', `/v1/products/${p}/customers/c1`),
          http(baseUrl, 'POST', `/v1/products/${p}/reservations/${before.body.reservationId}/commit`, {}),
        ]);
        const readyz = await http(baseUrl, 'GET', '/readyz', undefined, {}, '');
        const slowest = Math.max(...answers.map((a) => a.ms));
        console.log(
          `[operations] Redis hanging: ${answers.length} requests answered ` +
            `${[...new Set(answers.map((a) => a.status))].join(',')} ` +
            (`within ${Math.round(slowest)} ms (all together ` +
              `${Math.round(performance.now() - started)} ms); /readyz ${readyz.status} in ` +
              `${Math.round(readyz.ms)} ms`),
        );
        answers.forEach((a, i) => expectUnavailable(a, `request ${i}`));
        expect(readyz.status).toBe(503);
        expect(readyz.ms).toBeLessThan(ANSWER_WITHIN_MS);
        expect(readyz.body.redis).toBe(false);

        process.kill(pid, 'SIGCONT');
        stopped = false;

        // Back: it serves again.
        await waitFor(
          '/readyz 200 after SIGCONT',
          async () => ((await http(baseUrl, 'GET', '/readyz')).status === 200 ? true : undefined),
          { timeoutMs: 10_000, everyMs: 50 },
        );
        const after = await http(
          baseUrl,
          'POST',
          `/v1/products/${p}/reservations`,
          { customerId: 'c1', amount: 1 },
          { 'Idempotency-Key': 'after' },
        );
        expect(after.status).toBe(201);

        // The writes Redis received before it froze ran once when it resumed (the
        // client had been told 503: outcome unknown); retrying each with its key
        // gets that one outcome back, never a second hold.
        const ids = new Set<string>([before.body.reservationId, after.body.reservationId]);
        let heldExpected = 100 + 1;
        for (let i = 0; i < 10; i++) {
          const retry = await http(
            baseUrl,
            'POST',
            `/v1/products/${p}/reservations`,
            { customerId: 'c1', amount: 10 },
            { 'Idempotency-Key': `hang-${i}` },
          );
          expect(retry.status).toBe(201);
          const again = await http(
            baseUrl,
            'POST',
            `/v1/products/${p}/reservations`,
            { customerId: 'c1', amount: 10 },
            { 'Idempotency-Key': `hang-${i}` },
          );
          expect(again.body.reservationId).toBe(retry.body.reservationId);
          ids.add(retry.body.reservationId);
          heldExpected += 10;
        }
        expect(ids.size).toBe(12);
        // The commit sent while Redis hung ran at most once.
        const committed = (await http(baseUrl, 'GET', `/v1/products/${p}/reservations/${before.body.reservationId}`))
          .body;
        const committedAmount = committed.status === 'held' ? 0 : committed.committedAmount;
        if (committed.status !== 'held') heldExpected -= 100;

        await sleep(500); // nothing arrives late
        const [held, committedCounter] = (await direct.hmget(keys.pool(p), 'held', 'committed')).map(Number);
        expect(held).toBe(heldExpected);
        expect(committedCounter).toBe(committedAmount);
        const lineHeld = Number((await readLine(direct, keys, p, 'c1'))?.held);
        expect(lineHeld).toBe(heldExpected);
        const records = await direct.hlen(keys.records(p));
        expect(records).toBe(12);
      } finally {
        if (stopped) process.kill(pid, 'SIGCONT');
        direct.disconnect();
        await svc?.service.stop().catch(() => {});
        await redis.stop();
      }
    },
    60_000,
  );

  it(
    'is down (stopped, then restarted with AOF): 503 UNAVAILABLE at ' +
      'once, /readyz 503; back after restart, no write replayed',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'qa-ops-redis-'));
      let redis: RedisServerHandle | undefined = await startRedisServer({ appendOnly: true, dir });
      const port = redis.port;
      let svc: Running | undefined;
      let direct: Redis | undefined;
      try {
        svc = await startOn(redis.url);
        const { baseUrl, keys } = svc;
        const p = uniqueId('p');
        expect((await http(baseUrl, 'PUT', `/v1/products/${p}`, { capacity: 10_000 }, {}, ADMIN_KEY)).status).toBe(201);
        expect(
          (await http(baseUrl, 'PUT', `/v1/products/${p}/customers/c1`, { limit: 10_000 }, {}, ADMIN_KEY)).status,
        ).toBe(201);
        const h1 = await http(
          baseUrl,
          'POST',
          `/v1/products/${p}/reservations`,
          { customerId: 'c1', amount: 100 },
          { 'Idempotency-Key': 'h1' },
        );
        const h2 = await http(
          baseUrl,
          'POST',
          `/v1/products/${p}/reservations`,
          { customerId: 'c1', amount: 200 },
          { 'Idempotency-Key': 'h2' },
        );
        expect([h1.status, h2.status]).toEqual([201, 201]);
        expect(
          (await http(baseUrl, 'POST', `/v1/products/${p}/reservations/${h2.body.reservationId}/commit`, {})).status,
        ).toBe(200);

        await redis.stop();
        redis = undefined;

        const down: HttpAnswer[] = [];
        for (let i = 0; i < 5; i++) {
          down.push(
            await http(
              baseUrl,
              'POST',
              `/v1/products/${p}/reservations`,
              { customerId: 'c1', amount: 10 },
              { 'Idempotency-Key': `down-${i}` },
            ),
          );
        }
        down.push(await http(baseUrl, 'POST', `/v1/products/${p}/reservations/${h1.body.reservationId}/release`, {}));
        down.push(await http(baseUrl, 'GET', `/v1/products/${p}`));
        const readyz = await http(baseUrl, 'GET', '/readyz');
        console.log(
          `[operations] Redis down: answers ` +
            `${down.map((a) => `${a.status}/${Math.round(a.ms)}ms`).join(' ')}; /readyz ` +
            `${readyz.status}/${Math.round(readyz.ms)}ms`,
        );
        down.forEach((a, i) => expectUnavailable(a, `request ${i}`));
        expect(readyz.status).toBe(503);
        expect(readyz.ms).toBeLessThan(ANSWER_WITHIN_MS);

        // Some more time down, with the client's reconnect attempts failing.
        await sleep(1_500);
        expectUnavailable(await http(baseUrl, 'GET', `/v1/products/${p}`), 'later');

        redis = await startRedisServer({ appendOnly: true, dir, port });
        const backAt = performance.now();
        await waitFor(
          '/readyz 200 after the restart',
          async () => ((await http(baseUrl, 'GET', '/readyz')).status === 200 ? true : undefined),
          { timeoutMs: 15_000, everyMs: 50 },
        );
        console.log(`[operations] Redis restarted: ready again after ${Math.round(performance.now() - backAt)} ms`);

        direct = new Redis(redis.url);
        // What was acknowledged survived (AOF); nothing sent while down was applied later.
        await sleep(500);
        expect((await direct.hmget(keys.pool(p), 'held', 'committed')).map(Number)).toEqual([100, 200]);
        const line = (await readLine(direct, keys, p, 'c1'))!;
        expect([line.held, line.drawn].map(Number)).toEqual([100, 200]);
        expect((await readRecord(direct, keys, p, h1.body.reservationId))?.status).toBe('held');
        for (let i = 0; i < 5; i++) expect(await direct.exists(keys.idempotency(p, 'reserve', `down-${i}`))).toBe(0);
        expect(await direct.hlen(keys.records(p))).toBe(2);

        // Retrying is evaluated afresh (503 was not stored), and applied once.
        const retry = await http(
          baseUrl,
          'POST',
          `/v1/products/${p}/reservations`,
          { customerId: 'c1', amount: 10 },
          { 'Idempotency-Key': 'down-0' },
        );
        expect(retry.status).toBe(201);
        const again = await http(
          baseUrl,
          'POST',
          `/v1/products/${p}/reservations`,
          { customerId: 'c1', amount: 10 },
          { 'Idempotency-Key': 'down-0' },
        );
        expect(again.status).toBe(201);
        expect(again.body.reservationId).toBe(retry.body.reservationId);
        const release = await http(
          baseUrl,
          'POST',
          `/v1/products/${p}/reservations/${h1.body.reservationId}/release`,
          {},
        );
        expect(release.status).toBe(200);
        expect((await direct.hmget(keys.pool(p), 'held', 'committed')).map(Number)).toEqual([10, 200]);
        expect(await direct.hlen(keys.records(p))).toBe(3);
      } finally {
        direct?.disconnect();
        if (redis) await svc?.service.stop().catch(() => {});
        else {
          // Redis is gone: stop what can be stopped without waiting on it forever.
          await Promise.race([svc?.service.stop().catch(() => {}), sleep(3_000)]);
        }
        await redis?.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
    60_000,
  );
});

// ---------------------------------------------------------------------------
// The private Redis and the durability check
// ---------------------------------------------------------------------------

describe('resolveRedis', () => {
  it('with no Redis configured, starts a private redis-server with AOF on, its data under DATA_DIR', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'qa-ops-data-'));
    const nobody = `redis://127.0.0.1:${await freePort()}`;
    const { logger, lines } = captureLogger();
    const resolved = await resolveRedis(undefined, dataDir, logger);
    const client = resolved.privateServer ? new Redis(resolved.url) : undefined;
    try {
      expect(resolved.privateServer).toBeDefined();
      expect(resolved.url).not.toBe(nobody);
      expect(await client!.ping()).toBe('PONG');
      expect(await client!.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await client!.config('GET', 'appendfsync')).toEqual(['appendfsync', 'always']);
      expect(await client!.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      const [, redisDir] = (await client!.config('GET', 'dir')) as [string, string];
      expect(realpathSync(redisDir).startsWith(realpathSync(dataDir))).toBe(true);
      // It says so.
      expect(lines.some((l) => l.level >= 40 && /private redis-server/.test(l.msg))).toBe(true);
    } finally {
      client?.disconnect();
      await resolved.privateServer?.stop();
    }
    // Stopped: the process is gone and nothing answers there any more.
    expect(
      resolved.privateServer!.process.exitCode !== null || resolved.privateServer!.process.signalCode !== null,
    ).toBe(true);
    const probe = new Redis(resolved.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    await expect(probe.connect()).rejects.toThrow();
    probe.disconnect();
    // Its data stays under DATA_DIR (AOF), for the next start.
    expect(existsSync(join(dataDir, 'redis'))).toBe(true);
    rmSync(dataDir, { recursive: true, force: true });
  }, 30_000);

  it('uses REDIS_URL as given without starting one; with none, never a Redis it was not told about', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'qa-ops-data-'));
    const own = await startRedisServer();
    let unasked: Awaited<ReturnType<typeof resolveRedis>> | undefined;
    try {
      const { logger } = captureLogger();
      const given = await resolveRedis('redis://example.invalid:6380', dataDir, logger);
      expect(given).toEqual({ url: 'redis://example.invalid:6380' });
      // A Redis answers nearby, but nobody named it: the service starts its own.
      unasked = await resolveRedis(undefined, dataDir, logger);
      expect(unasked.privateServer).toBeDefined();
      expect(unasked.url).not.toBe(own.url);
    } finally {
      await unasked?.privateServer?.stop();
      await own.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('the startup durability check', () => {
  const servers: RedisServerHandle[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  async function check(appendOnly: boolean, setup?: (r: Redis) => Promise<unknown>) {
    const server = await startRedisServer({ appendOnly });
    servers.push(server);
    const client = new Redis(server.url);
    try {
      await setup?.(client);
      const { logger, lines } = captureLogger();
      const report = await checkDurability(client, logger);
      return { report, lines };
    } finally {
      client.disconnect();
    }
  }

  it('reports AOF off on a Redis started without AOF, and says so in the log', async () => {
    const { report, lines } = await check(false);
    expect(report.appendonly).toBe('no');
    expect(report.problems.some((p) => /AOF is off/.test(p))).toBe(true);
    expect(lines.some((l) => l.level === 40 && /AOF is off/.test(l.msg))).toBe(true);
  });

  it('reports no problem on a Redis with AOF on (appendfsync always) and noeviction', async () => {
    const { report, lines } = await check(true);
    expect(report).toMatchObject({
      appendonly: 'yes',
      appendfsync: 'always',
      maxmemoryPolicy: 'noeviction',
      problems: [],
    });
    expect(lines.some((l) => l.level === 30 && /redis durability/.test(l.msg))).toBe(true);
    expect(lines.some((l) => l.level >= 40)).toBe(false);
  });

  it('reports an eviction policy other than noeviction, and a relaxed appendfsync', async () => {
    const { report } = await check(true, async (r) => {
      await r.config('SET', 'maxmemory-policy', 'allkeys-lru');
      await r.config('SET', 'appendfsync', 'everysec');
    });
    expect(report.problems.some((p) => /maxmemory-policy is allkeys-lru/.test(p))).toBe(true);
    expect(report.problems.some((p) => /appendfsync is everysec/.test(p))).toBe(true);
  });
});
