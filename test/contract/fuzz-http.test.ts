/**
 * A standing HTTP fuzz test (issue 10): random methods, paths, headers and
 * bodies (deep and wide JSON, unicode, huge numbers, duplicate keys, broken
 * encodings, slow bodies) against the running service, over real sockets.
 *
 * Every answer must be a documented status with a problem+json `code` for
 * errors (no 5xx: no faults are injected here), within the 2-second bound
 * counted from the full request; /healthz stays fast throughout; and
 * afterwards the books add up: the pool counters equal the sums of the
 * reservation records and the service's own invariant audit finds nothing.
 *
 * Replay a failure with FUZZ_SEED=<seed printed below> (fast-check then
 * prints the shrunk counterexample). FUZZ_RUNS sets the case count (default 3,000).
 */
import { request as httpRequest, Agent } from 'node:http';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createInvariantAudit } from '../../src/audit/invariantAudit.js';
import { createQuotaEngine } from '../../src/engine/quotaEngine.js';
import { PROBLEMS } from '../../src/http/problems.js';
import { createMetrics } from '../../src/metrics.js';
import { bullmqConnectionsForUrl, connectApiRedis } from '../../src/redis/connection.js';
import { createKeys } from '../../src/redis/keys.js';
import { listAll, waitUntil } from '../support/settlement.js';
import { ADMIN_KEY, CLIENT_KEY, startServiceContext, type ServiceContext } from '../support/serviceContext.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const RUNS = Number(process.env.FUZZ_RUNS ?? 3_000);
const BODY_TIMEOUT_MS = 1_500;
/** The contract's bound for an answer, from the full request. */
const ANSWER_BOUND_MS = 2_000;
const DOCUMENTED = new Set([200, 201, 202, 400, 401, 403, 404, 405, 408, 409, 413, 422, 429]);
const CUSTOMERS = ['c0', 'c1', 'c2', 'c3'];

let svc: ServiceContext;
let product: string;
const agent = new Agent({ keepAlive: true, maxSockets: 8 });
const reservationIds: string[] = ['r-none'];
const stats = { cases: 0, byStatus: {} as Record<number, number>, slow: 0, maxMs: 0 };

beforeAll(async () => {
  svc = await startServiceContext({
    BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS),
    RELAY_INTERVAL_MS: '300',
    RELAY_GRACE_MS: '0',
  });
  product = `fz-${SEED.toString(36)}-${Date.now().toString(36)}`;
  expect((await svc.admin('PUT', `/v1/products/${product}`, { capacity: 1_000_000, holdTtlSeconds: 600 })).status).toBe(
    201,
  );
  for (const c of CUSTOMERS)
    expect((await svc.admin('PUT', `/v1/products/${product}/customers/${c}`, { limit: 200_000 })).status).toBe(201);
  console.log(`fuzz-http: seed ${SEED} (replay: FUZZ_SEED=${SEED}), ${RUNS} cases`);
});
afterAll(async () => {
  agent.destroy();
  await svc?.stop();
});

// ---- what a request is made of ----------------------------------------------------------------

interface FuzzRequest {
  method: string;
  path: string;
  key: 'none' | 'bad' | 'client' | 'admin';
  headers: Record<string, string>;
  body: Buffer | undefined;
  /** Send the body in two parts this far apart (0: at once). */
  gapMs: number;
}

const id = fc.oneof(
  fc.constantFrom(
    'PRODUCT',
    'PRODUCT',
    'PRODUCT',
    'nope',
    'a'.repeat(65),
    '..',
    '%2e%2e',
    '%ZZ',
    '%00',
    '%C3%A9t%C3%A9',
    '%F0%9F%92%B8',
    'x:y',
    '',
  ),
  fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/),
);
const customer = fc.oneof(fc.constantFrom(...CUSTOMERS, ...CUSTOMERS), id);
const reservation = fc.oneof(
  fc.nat(1_000).map((n) => `#${n}`),
  id,
);
const query = fc.oneof(
  fc.constant(''),
  fc.constantFrom(
    '?status=held',
    '?status=committed&limit=500',
    '?status=bogus',
    '?offset=-1&status=held',
    '?limit=0&status=held',
  ),
  fc.constantFrom(
    '?cursor=18446744073709551616',
    '?cursor=0&count=1000',
    '?cursor=abc',
    `?cursor=${'9'.repeat(30)}`,
    '?x=%ZZ',
  ),
);
const path = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(id).map(([p]) => `/v1/products/${p}`) },
  { weight: 6, arbitrary: fc.tuple(id, query).map(([p, q]) => `/v1/products/${p}/reservations${q}`) },
  { weight: 2, arbitrary: fc.tuple(id, reservation).map(([p, r]) => `/v1/products/${p}/reservations/${r}`) },
  {
    weight: 6,
    arbitrary: fc
      .tuple(id, reservation, fc.constantFrom('commit', 'release', 'events', 'resolve', 'redrive', 'nope'))
      .map(([p, r, op]) => `/v1/products/${p}/reservations/${r}/${op}`),
  },
  { weight: 3, arbitrary: fc.tuple(id, customer).map(([p, c]) => `/v1/products/${p}/customers/${c}`) },
  { weight: 4, arbitrary: fc.tuple(id, customer).map(([p, c]) => `/v1/products/${p}/customers/${c}/repayments`) },
  { weight: 1, arbitrary: fc.tuple(id).map(([p]) => `/v1/products/${p}/customers:bulk`) },
  { weight: 1, arbitrary: fc.tuple(id, query).map(([p, q]) => `/v1/products/${p}/ledger${q}`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '/v1',
      '/v1/',
      '/v1/nothing',
      '/v1/products',
      '/v1//products',
      '/nothing',
      '/healthz',
      '/v1/%E0%A4%A',
      '/v1/products/%',
    ),
  },
);

/** JSON text nested `depth` levels (arrays or objects), as an attacker would build it. */
const deepJson = fc
  .tuple(fc.integer({ min: 1, max: 8_000 }), fc.boolean())
  .map(([depth, arrays]) =>
    arrays ? `${'['.repeat(depth)}1${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
  );
const hugeNumber = fc.constantFrom(
  '1e400',
  '-1e400',
  '123456789012345678901234567890',
  '9007199254740993',
  '0.1e-400',
  '-0',
  '1.5',
  '00',
  'NaN',
  'Infinity',
);
const amount = fc.oneof(
  fc.integer({ min: -5, max: 300 }),
  fc.double(),
  hugeNumber.map((n) => ({ raw: n })),
);
const jsonOf = (v: unknown) =>
  JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && 'raw' in x ? `@@${x.raw}@@` : x)).replace(
    /"@@(.*?)@@"/g,
    '$1',
  );
const reserveLike = fc
  .record(
    {
      customerId: customer,
      amount,
      ttlSeconds: fc.oneof(
        fc.integer({ min: -1, max: 700 }),
        hugeNumber.map((n) => ({ raw: n })),
      ),
      metadata: fc.oneof(
        fc.jsonValue({ maxDepth: 4 }),
        fc.dictionary(fc.string(), fc.string({ unit: 'binary' }), { maxKeys: 50 }),
      ),
      outcome: fc.constantFrom('settled', 'reversed', 'maybe'),
      limit: fc.integer({ min: -1, max: 1_000_000 }),
      capacity: fc.integer({ min: 0, max: 2_000_000 }),
      status: fc.constantFrom('open', 'closed', 'paused', 'active', 'frozen', 'weird'),
    },
    { requiredKeys: [] },
  )
  .map(jsonOf);
const bodyText = fc.oneof(
  { weight: 8, arbitrary: reserveLike },
  { weight: 2, arbitrary: fc.json({ maxDepth: 6 }) },
  { weight: 2, arbitrary: deepJson },
  { weight: 1, arbitrary: deepJson.map((d) => `{"customerId":"c0","amount":1,"metadata":{"x":${d}}}`) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 100, max: 3_000 })
      .map((n) => `{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '{"customerId":"c0","amount":1,"amount":2}',
      '{"__proto__":{"x":1},"customerId":"c0","amount":1}',
      '{"constructor":{"prototype":{}}}',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: reserveLike.chain((t) => fc.nat(t.length).map((n) => t.slice(0, n))) },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 16_000, max: 40_000 })
      .map((n) => `{"customerId":"c0","amount":1,"metadata":{"x":"${'y'.repeat(n)}"}}`),
  },
  { weight: 1, arbitrary: fc.array(reserveLike, { maxLength: 20 }).map((rows) => rows.join('\n')) },
);
const body = fc.oneof(
  {
    weight: 10,
    arbitrary: bodyText.map((t) => ({ bytes: Buffer.from(t, 'utf8'), encoding: undefined as string | undefined })),
  },
  {
    weight: 1,
    arbitrary: fc
      .uint8Array({ maxLength: 300 })
      .map((b) => ({ bytes: Buffer.from(b), encoding: undefined as string | undefined })),
  },
  { weight: 1, arbitrary: bodyText.map((t) => ({ bytes: gzipSync(t), encoding: 'gzip' as string | undefined })) },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 100 }).map((b) => ({
      bytes: Buffer.from(b),
      encoding: fc.sample(fc.constantFrom('gzip', 'br', 'deflate', 'x-unknown'), 1)[0],
    })),
  },
);
const headerValue = fc.stringMatching(/^[\x21-\x7e]{0,80}$/);
const anyRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'),
    path,
    key: fc.constantFrom('none', 'bad', 'client', 'client', 'client', 'admin', 'admin'),
    contentType: fc.constantFrom(
      'application/json',
      'application/json',
      'application/json',
      'application/problem+json',
      'text/plain',
      'application/x-ndjson',
      'application/json; charset=utf-16',
      'application/json; charset=latin1',
      '',
    ),
    idempotencyKey: fc.option(headerValue, { freq: 4 }),
    language: fc.option(fc.constantFrom('de', 'fr-CH, en;q=0.5', '*', 'xx-INVALID;;', 'en'), { freq: 2 }),
    requestId: fc.option(headerValue, { freq: 3 }),
    body: fc.option(body, { freq: 5 }),
    slow: fc.oneof(
      { weight: 19, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.integer({ min: 10, max: 80 }) },
    ),
  })
  .map((r) => {
    const headers: Record<string, string> = {};
    if (r.contentType && r.body) headers['content-type'] = r.contentType;
    if (r.body?.encoding) headers['content-encoding'] = r.body.encoding;
    if (r.idempotencyKey !== null) headers['idempotency-key'] = r.idempotencyKey;
    if (r.language !== null) headers['accept-language'] = r.language;
    if (r.requestId !== null) headers['x-request-id'] = r.requestId;
    return {
      method: r.method,
      path: r.path,
      key: r.key,
      headers,
      body: r.body?.bytes,
      gapMs: r.body && r.slow !== null ? r.slow : 0,
    };
  });

/**
 * Near-valid traffic, so the fuzz reaches the engine: reserves, commits, releases and repayments with small mutations.
 */
const flowRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    op: fc.constantFrom('reserve', 'reserve', 'reserve', 'commit', 'release', 'repay', 'get'),
    customerId: fc.constantFrom(...CUSTOMERS),
    amount: fc.oneof(
      { weight: 5, arbitrary: fc.integer({ min: 1, max: 300 }) },
      { weight: 1, arbitrary: fc.integer({ min: -10, max: 500_000 }) },
    ),
    commitAmount: fc.option(fc.integer({ min: 0, max: 400 }), { freq: 2 }),
    reservation: fc.nat(1_000).map((n) => `#${n}`),
    idempotencyKey: fc.oneof(fc.stringMatching(/^[A-Za-z0-9]{8,16}$/), fc.constantFrom('same-key-1', 'same-key-2')),
    metadata: fc.option(fc.jsonValue({ maxDepth: 3 }), { freq: 3 }),
  })
  .map((f) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': f.idempotencyKey };
    const json = (v: unknown) => Buffer.from(JSON.stringify(v));
    const base = `/v1/products/PRODUCT`;
    switch (f.op) {
      case 'reserve':
        return {
          method: 'POST',
          path: `${base}/reservations`,
          key: 'client',
          headers,
          body: json({
            customerId: f.customerId,
            amount: f.amount,
            ...(f.metadata !== null ? { metadata: { m: f.metadata } } : {}),
          }),
          gapMs: 0,
        };
      case 'commit':
        return {
          method: 'POST',
          path: `${base}/reservations/${f.reservation}/commit`,
          key: 'client',
          headers,
          body: f.commitAmount === null ? undefined : json({ amount: f.commitAmount }),
          gapMs: 0,
        };
      case 'release':
        return {
          method: 'POST',
          path: `${base}/reservations/${f.reservation}/release`,
          key: 'client',
          headers,
          body: undefined,
          gapMs: 0,
        };
      case 'repay':
        return {
          method: 'POST',
          path: `${base}/customers/${f.customerId}/repayments`,
          key: 'client',
          headers,
          body: json({ amount: f.amount }),
          gapMs: 0,
        };
      default:
        return {
          method: 'GET',
          path: `${base}/reservations/${f.reservation}`,
          key: 'client',
          headers: {},
          body: undefined,
          gapMs: 0,
        };
    }
  });
const fuzzRequest = fc.oneof({ weight: 3, arbitrary: anyRequest }, { weight: 2, arbitrary: flowRequest });

// ---- sending one ------------------------------------------------------------------------------

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** From the last byte of the request to the end of the answer. */
  ms: number;
}

function send(req: FuzzRequest): Promise<Answer> {
  const path = req.path
    .replaceAll('PRODUCT', product)
    .replace(/#(\d+)/, (_m, n: string) => reservationIds[Number(n) % reservationIds.length]!);
  const headers: Record<string, string> = { ...req.headers };
  const keys = { admin: ADMIN_KEY, client: CLIENT_KEY, bad: 'not-a-key' };
  if (req.key !== 'none') headers.authorization = `Bearer ${keys[req.key]}`;
  if (req.body) headers['content-length'] = String(req.body.length);
  const url = new URL(svc.baseUrl);
  return new Promise((resolve, reject) => {
    let sentAt = performance.now();
    const r = httpRequest({ host: url.hostname, port: url.port, method: req.method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString('utf8'),
          ms: performance.now() - sentAt,
        }),
      );
      res.on('error', reject);
    });
    r.on('error', reject);
    if (!req.body) {
      r.end();
      sentAt = performance.now();
    } else if (req.gapMs === 0) {
      r.end(req.body);
      sentAt = performance.now();
    } else {
      const half = Math.floor(req.body.length / 2);
      r.write(req.body.subarray(0, half));
      setTimeout(() => {
        r.end(req.body!.subarray(half));
        sentAt = performance.now();
      }, req.gapMs);
    }
  });
}

/** The contract's checks on one answer; returns a description of what is wrong, if anything. */
function judge(req: FuzzRequest, a: Answer): string | undefined {
  if (!DOCUMENTED.has(a.status)) return `undocumented status ${a.status}: ${a.text.slice(0, 300)}`;
  if (a.ms > ANSWER_BOUND_MS) return `answered after ${Math.round(a.ms)} ms`;
  const path = req.path.split('?')[0]!;
  if ((path.startsWith('/v1') && req.key === 'none') || (path.startsWith('/v1') && req.key === 'bad')) {
    if (a.status !== 401 && !(a.status === 400 && /%/.test(path))) return `no valid key but ${a.status}`;
  }
  if (a.status >= 400) {
    if (!String(a.headers['content-type'] ?? '').startsWith('application/problem+json'))
      return `error without problem+json: ${a.headers['content-type']}`;
    if (req.method === 'HEAD') return undefined;
    let problem: { code?: string; status?: number };
    try {
      problem = JSON.parse(a.text);
    } catch {
      return `error body is not JSON: ${a.text.slice(0, 200)}`;
    }
    const known = problem.code ? PROBLEMS[problem.code as keyof typeof PROBLEMS] : undefined;
    if (!known || known.status !== a.status || problem.status !== a.status)
      return `code ${problem.code} does not match status ${a.status}`;
    if (a.status === 405 && !a.headers.allow) return '405 without Allow';
  }
  return undefined;
}

describe('HTTP fuzz', () => {
  it('every answer is documented, problem+json, within its bound; /healthz stays fast; the books add up', async () => {
    const probes: number[] = [];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const t0 = performance.now();
        const r = await fetch(`${svc.baseUrl}/healthz`);
        await r.text();
        probes.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    try {
      await fc.assert(
        fc.asyncProperty(fuzzRequest, async (req) => {
          const a = await send(req);
          stats.cases++;
          stats.byStatus[a.status] = (stats.byStatus[a.status] ?? 0) + 1;
          stats.maxMs = Math.max(stats.maxMs, a.ms);
          if (req.gapMs) stats.slow++;
          if (a.status === 201 && req.path.includes('/reservations')) {
            const rid = (JSON.parse(a.text) as { reservationId?: string }).reservationId;
            if (rid) reservationIds.push(rid);
          }
          const wrong = judge(req, a);
          if (wrong) throw new Error(`${req.method} ${req.path} (${req.key}) -> ${wrong}`);
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true, verbose: 1 },
      );
    } finally {
      probing = false;
      await prober;
      console.log(
        `fuzz-http: seed ${SEED}, ${stats.cases} cases (${stats.slow} slow bodies), statuses ` +
          `${JSON.stringify(stats.byStatus)}, slowest answer ${Math.round(stats.maxMs)} ms, /healthz ` +
          `max ${Math.round(Math.max(...probes))} ms over ${probes.length} probes`,
      );
    }
    expect(stats.cases).toBe(RUNS);
    // Not all 4xx: the fuzz reaches the engine (created holds) too.
    expect(stats.byStatus[201] ?? 0).toBeGreaterThan(0);
    expect(Math.max(...probes), 'slowest /healthz during the run').toBeLessThan(1_000);

    // A few bodies that never finish arrive: 408, nothing done.
    const late = await Promise.all(
      Array.from({ length: 5 }, () =>
        send({
          method: 'POST',
          path: `/v1/products/PRODUCT/reservations`,
          key: 'client',
          headers: { 'content-type': 'application/json', 'idempotency-key': `late-${SEED}` },
          body: Buffer.from('{"customerId":"c0","amount":1}'),
          gapMs: BODY_TIMEOUT_MS + 500,
        }),
      ),
    );
    for (const a of late) expect(a.status, a.text).toBe(408);

    // The books: once committed draws have settled, the counters equal the sums of the records...
    await waitUntil(
      'no committed reservation left',
      () => listAll(svc, product, 'committed'),
      (items) => items.length === 0,
      { timeoutMs: 20_000, everyMs: 200 },
    );
    const pool = (await svc.client('GET', `/v1/products/${product}`)).body;
    const sum = (
      items: { amount: number; committedAmount: number }[],
      f: (r: { amount: number; committedAmount: number }) => number,
    ) => items.reduce((a, r) => a + f(r), 0);
    const held = await listAll(svc, product, 'held');
    const settled = await listAll(svc, product, 'settled');
    const unknown = await listAll(svc, product, 'settlement_unknown');
    expect({ held: pool.held, committed: pool.committed, settled: pool.settled }).toEqual({
      held: sum(held, (r) => r.amount),
      committed: sum([...settled, ...unknown], (r) => r.committedAmount),
      settled: sum(settled, (r) => r.committedAmount),
    });
    expect(pool.held + pool.committed).toBeLessThanOrEqual(pool.capacity + pool.settled);
    // ...and the service's own invariant audit (pool and lines recomputed from the records) finds nothing.
    const redis = await connectApiRedis(inject('redisUrl'));
    try {
      const keys = createKeys(svc.keyPrefix);
      const audit = createInvariantAudit({
        bullmq: bullmqConnectionsForUrl(inject('redisUrl')), // the job is not started: auditOnce() is called directly
        redis,
        keys,
        engine: createQuotaEngine({ redis, keys }),
        logger: pino({ level: 'silent' }),
        metrics: createMetrics(),
        intervalMs: 60_000,
      });
      for (let i = 0; i < 3; i++) {
        const report = await audit.auditOnce();
        expect(report.violations, JSON.stringify(report.products.filter((p) => p.violations > 0)).slice(0, 2000)).toBe(
          0,
        );
      }
    } finally {
      redis.disconnect();
    }
  }, 110_000);
});
