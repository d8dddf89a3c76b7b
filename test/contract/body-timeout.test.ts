/**
 * Issue 10 item 4: a slow upload is the client's delay. BODY_TIMEOUT_MS
 * bounds reading a body (408 REQUEST_TIMEOUT, nothing done); the 2-second
 * answer bound counts from the full request, so a body that arrives slowly
 * but in time is served normally, not 503; and many idle slow sockets never
 * produce a 5xx or an error-level log line: every one is answered 408, a
 * burst of 1,500 too (the listen backlog holds it; src/http/server.ts).
 */
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseConfig } from '../../src/config.js';
import { startService, type RunningService } from '../../src/main.js';
import { uniqueId } from '../support/engineContext.js';
import { sleep } from '../support/wait.js';

const BODY_TIMEOUT_MS = 3_000;
const ADMIN = 'body-timeout-admin-key';
const CLIENT = 'body-timeout-client-key';
const logLines: { level: number; msg: string; status?: number }[] = [];
let service: RunningService;
let base: string;

beforeAll(async () => {
  const config = parseConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    REDIS_URL: inject('redisUrl'),
    KEY_PREFIX: uniqueId('bt'),
    QUOTA_API_KEYS: `admin:${ADMIN},client:${CLIENT}`,
    BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
    ROLE: 'api',
  });
  const logger = pino({ level: 'info' }, { write: (s: string) => void logLines.push(JSON.parse(s)) });
  service = await startService(config, logger);
  base = `http://127.0.0.1:${service.port}`;
});
afterAll(() => service.stop());

async function setup(): Promise<string> {
  const p = uniqueId('p');
  const headers = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
  expect((await fetch(`${base}/v1/products/${p}`, { method: 'PUT', headers, body: '{"capacity":100}' })).status).toBe(
    201,
  );
  expect(
    (await fetch(`${base}/v1/products/${p}/customers/c1`, { method: 'PUT', headers, body: '{"limit":100}' })).status,
  ).toBe(201);
  return p;
}

const held = async (p: string) =>
  (
    (await (await fetch(`${base}/v1/products/${p}`, { headers: { authorization: `Bearer ${CLIENT}` } })).json()) as {
      held: number;
    }
  ).held;

interface RawAnswer {
  text: string;
  status: number | undefined;
  ms: number;
}

/**
 * A raw HTTP/1.1 request whose body is sent in `parts`, `gapMs` apart; resolves with what came back when the socket
 * closes or answers.
 */
function slowRequest(
  path: string,
  body: string,
  parts: number,
  gapMs: number,
  extraHeaders = '',
): { answer: Promise<RawAnswer>; socket: Socket } {
  const port = Number(new URL(base).port);
  const socket = connect(port, '127.0.0.1');
  const started = performance.now();
  let text = '';
  const answer = new Promise<RawAnswer>((resolve) => {
    const done = () =>
      resolve({
        text,
        status: /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ? Number(/^HTTP\/1\.1 (\d{3})/.exec(text)![1]) : undefined,
        ms: performance.now() - started,
      });
    socket.on('data', (d) => {
      text += d.toString();
      if (/\r\n\r\n/.test(text) && /content-length: (\d+)/i.test(text)) {
        const length = Number(/content-length: (\d+)/i.exec(text)![1]);
        if (text.length >= text.indexOf('\r\n\r\n') + 4 + length) {
          done();
          socket.destroy();
        }
      }
    });
    socket.on('close', done);
    socket.on('error', (err: NodeJS.ErrnoException) => (text ||= `socket error ${err.code}`));
  });
  socket.on('connect', async () => {
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${CLIENT}\r\nContent-Type: ` +
        `application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n`,
    );
    const size = Math.ceil(body.length / parts);
    for (let i = 0; i < parts && !socket.destroyed; i++) {
      if (i > 0) await sleep(gapMs);
      if (!socket.destroyed) socket.write(body.slice(i * size, (i + 1) * size));
    }
  });
  return { answer, socket };
}

describe('BODY_TIMEOUT_MS and the answer deadline', () => {
  it('a body that arrives slowly but in time is served (the 2 s bound counts from the full request)', async () => {
    const p = await setup();
    const body = JSON.stringify({ customerId: 'c1', amount: 5 });
    // 2.4 s to send the body: more than the 1.8 s answer deadline, less than BODY_TIMEOUT_MS.
    const { answer } = slowRequest(
      `/v1/products/${p}/reservations`,
      body,
      4,
      800,
      `Idempotency-Key: ${uniqueId('k')}\r\n`,
    );
    const a = await answer;
    expect(a.status, a.text).toBe(201);
    expect(await held(p)).toBe(5);
  });

  it(
    'a body that does not arrive in time is 408 REQUEST_TIMEOUT, and ' +
      'nothing is done even when the rest arrives later',
    async () => {
      const p = await setup();
      const body = JSON.stringify({ customerId: 'c1', amount: 7 });
      const { answer } = slowRequest(
        `/v1/products/${p}/reservations`,
        body,
        2,
        BODY_TIMEOUT_MS + 1_500,
        `Idempotency-Key: ${uniqueId('k')}\r\n`,
      );
      const a = await answer;
      expect(a.status, a.text).toBe(408);
      expect(a.text).toMatch(/application\/problem\+json/);
      expect(a.text).toMatch(/"code":"REQUEST_TIMEOUT"/);
      expect(a.ms).toBeGreaterThanOrEqual(BODY_TIMEOUT_MS - 100);
      expect(a.ms).toBeLessThan(BODY_TIMEOUT_MS + 1_000);
      await sleep(2_000); // the second half would have arrived by now
      expect(await held(p)).toBe(0);
    },
  );

  it(
    '1,500 idle slow sockets (bodies and headers) all get 408, ' +
      'never a 5xx nor an error log, and /healthz stays fast',
    async () => {
      const p = await setup();
      const before = logLines.length;
      const body = JSON.stringify({ customerId: 'c1', amount: 1 });
      const slow: { answer: Promise<RawAnswer>; socket: Socket }[] = [];
      for (let i = 0; i < 1_500; i++) {
        if (i % 3 === 0) {
          // Headers never finish.
          let text = '';
          const socket = connect(Number(new URL(base).port), '127.0.0.1');
          socket.on('error', (err: NodeJS.ErrnoException) => (text ||= `socket error ${err.code}`));
          const started = performance.now();
          socket.on('data', (d) => (text += d.toString()));
          socket.on('connect', () => socket.write(`POST /v1/products/${p}/reservations HTTP/1.1\r\nHost: x\r\n`));
          slow.push({
            socket,
            answer: new Promise((resolve) =>
              socket.on('close', () =>
                resolve({
                  text,
                  status: /^HTTP\/1\.1 (\d{3})/.exec(text) ? Number(/^HTTP\/1\.1 (\d{3})/.exec(text)![1]) : undefined,
                  ms: performance.now() - started,
                }),
              ),
            ),
          });
        } else {
          // Headers, then one byte of the body, then nothing.
          slow.push(
            slowRequest(`/v1/products/${p}/reservations`, body, 60, 60_000, `Idempotency-Key: ${uniqueId('k')}\r\n`),
          );
        }
      }
      const probes: number[] = [];
      // (This process opened the 1,500 sockets too: let the burst of connects pass before timing /healthz.)
      await sleep(500);
      const probing = (async () => {
        while (probes.length < 20) {
          const t0 = performance.now();
          expect((await fetch(`${base}/healthz`)).status).toBe(200);
          probes.push(performance.now() - t0);
          await sleep(150);
        }
      })();
      const answers = await Promise.all(slow.map((s) => s.answer));
      await probing;
      for (const s of slow) s.socket.destroy();
      const statuses = answers.map((a) => a.status ?? 0);
      const counts = statuses.reduce<Record<number, number>>((acc, s) => ({ ...acc, [s]: (acc[s] ?? 0) + 1 }), {});
      expect(
        statuses.filter((s) => s >= 500),
        JSON.stringify(counts),
      ).toEqual([]);
      const kinds = answers.reduce<Record<string, number>>((acc, a, i) => {
        const k = `${i % 3 === 0 ? 'headers' : 'body'}:${a.status ?? a.text.slice(0, 30)}`;
        acc[k] = (acc[k] ?? 0) + 1;
        return acc;
      }, {});
      console.log(
        `body-timeout: 1,500 slow sockets answered ${JSON.stringify(counts)} (0: a ` +
          `close or reset without an answer) ${JSON.stringify(kinds)}`,
      );
      const noAnswer = [
        ...new Set(
          answers
            .map((a, i) => (a.status ? '' : `${i % 3 === 0 ? 'headers' : 'body'}: ${a.text.slice(0, 60)}`))
            .filter(Boolean),
        ),
      ];
      // Every socket is answered 408, none reset or closed without an answer: the listen backlog holds
      // the whole burst (src/http/server.ts LISTEN_BACKLOG; with Node's default of 511, 87 to 239 of such
      // a burst's body sockets were reset by the kernel, answered with SYN cookies, before Node saw them).
      expect(counts, JSON.stringify(noAnswer)).toEqual({ 408: 1_500 });
      expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(BODY_TIMEOUT_MS + 4_000);
      expect(Math.max(...probes), `healthz ${probes.map(Math.round).join(',')}`).toBeLessThan(500);
      const errors = logLines.slice(before).filter((l) => l.level >= 50);
      expect(errors, JSON.stringify(errors.slice(0, 3))).toEqual([]);
      expect(await held(p)).toBe(0);
    },
    40_000,
  );

  it('a burst of 1,500 stalled bodies: every socket gets 408, none is reset or closed unanswered', async () => {
    const p = await setup();
    const body = JSON.stringify({ customerId: 'c1', amount: 1 });
    // All connect in one go: more than Node's default listen backlog (511) of connections wait for the
    // accept at once. Each sends its headers, then one byte of the body in a second write, then nothing.
    // (The second segment is what a SYN-cookie connection the kernel could not queue gets reset on: with
    // the default backlog 150 to 180 of these 1,500 were, in every run here.)
    const slow = Array.from({ length: 1_500 }, () =>
      slowRequest(`/v1/products/${p}/reservations`, body, 60, 60_000, `Idempotency-Key: ${uniqueId('k')}\r\n`),
    );
    const answers = await Promise.all(slow.map((s) => s.answer));
    for (const s of slow) s.socket.destroy();
    const kinds = answers.reduce<Record<string, number>>((acc, a) => {
      const k = a.status === 408 && /"code":"REQUEST_TIMEOUT"/.test(a.text) ? '408' : a.text.slice(0, 30) || 'closed';
      acc[k] = (acc[k] ?? 0) + 1;
      return acc;
    }, {});
    expect(kinds).toEqual({ 408: 1_500 });
    expect(await held(p)).toBe(0);
  }, 30_000);
});

describe('load shedding and slow uploads', () => {
  it(
    'uploads still arriving do not count as in flight: 100 stalled ' +
      'bodies do not make SHED_MAX_IN_FLIGHT=20 shed real traffic',
    async () => {
      const config = parseConfig({
        PORT: '0',
        HOST: '127.0.0.1',
        REDIS_URL: inject('redisUrl'),
        KEY_PREFIX: uniqueId('shed'),
        QUOTA_API_KEYS: `admin:${ADMIN},client:${CLIENT}`,
        BODY_TIMEOUT_MS: '3000',
        SHED_MAX_IN_FLIGHT: '20',
        ROLE: 'api',
        LOG_LEVEL: 'silent',
      });
      const shedding = await startService(config, pino({ level: 'silent' }));
      const url = `http://127.0.0.1:${shedding.port}`;
      const sockets: Socket[] = [];
      try {
        const p = uniqueId('p');
        const adminHeaders = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
        expect(
          (await fetch(`${url}/v1/products/${p}`, { method: 'PUT', headers: adminHeaders, body: '{"capacity":100}' }))
            .status,
        ).toBe(201);
        expect(
          (
            await fetch(`${url}/v1/products/${p}/customers/c1`, {
              method: 'PUT',
              headers: adminHeaders,
              body: '{"limit":100}',
            })
          ).status,
        ).toBe(201);
        for (let i = 0; i < 100; i++) {
          const s = connect(shedding.port!, '127.0.0.1');
          s.on('error', () => {});
          s.on('connect', () =>
            s.write(
              `POST /v1/products/${p}/reservations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${CLIENT}\r\n` +
                `Content-Type: application/json\r\nIdempotency-Key: ${uniqueId('k')}\r\nContent-Length: 40\r\n\r\n{"cu`,
            ),
          );
          sockets.push(s);
        }
        await sleep(500);
        const res = await fetch(`${url}/v1/products/${p}/reservations`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${CLIENT}`,
            'content-type': 'application/json',
            'idempotency-key': uniqueId('k'),
          },
          body: JSON.stringify({ customerId: 'c1', amount: 2 }),
        });
        expect(res.status, await res.text()).toBe(201);
      } finally {
        for (const s of sockets) s.destroy();
        await shedding.stop();
      }
    },
    20_000,
  );
});
