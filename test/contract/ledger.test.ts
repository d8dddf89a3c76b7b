/**
 * The test ledger itself, over real HTTP on a free port (no Redis): what the
 * settlement worker's tests will lean on has to be right first.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpLedgerClient, createInternalLedgerClient } from '../../src/settlement/ledgerClient.js';
import { createLedgerServer, type LedgerServer, type LedgerServerOptions } from '../../testLedger/ledgerServer.js';
import { parseLedgerEnv } from '../../testLedger/main.js';
import { signBody, verifySignature } from '../../src/bodySignature.js';
import { createEngineContext } from '../support/engineContext.js';

const SECRET = 'test-secret-0123456789';

const running: LedgerServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((l) => l.stop()));
});

async function open(options: Partial<LedgerServerOptions> = {}): Promise<LedgerServer> {
  const ledger = createLedgerServer({ secret: SECRET, ...options });
  running.push(ledger);
  await ledger.start();
  return ledger;
}

function settlement(reservationId: string, customerId = 'cust-1', extra: Record<string, unknown> = {}) {
  return {
    reservationId,
    productId: 'prod-1',
    customerId,
    amount: 5000,
    committedAt: '2025-01-01T00:00:00.000Z',
    metadata: { tier: 'gold' },
    ...extra,
  };
}

interface PostOptions {
  path?: string;
  key?: string | null;
  signature?: string | null;
  raw?: string;
  signal?: AbortSignal;
}

/** POSTs like the worker will: raw JSON bytes, Idempotency-Key, X-Signature over those bytes. */
async function post(
  ledger: LedgerServer,
  body: { reservationId: string } & Record<string, unknown>,
  o: PostOptions = {},
) {
  const raw = o.raw ?? JSON.stringify(body);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const key = o.key === undefined ? body.reservationId : o.key;
  const signature = o.signature === undefined ? signBody(SECRET, raw) : o.signature;
  if (key !== null) headers['idempotency-key'] = key;
  if (signature !== null) headers['x-signature'] = signature;
  const res = await fetch(ledger.url + (o.path ?? '/'), { method: 'POST', headers, body: raw, signal: o.signal });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

async function get(ledger: LedgerServer, path: string) {
  const res = await fetch(ledger.url + path);
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('signature', () => {
  it('signs the exact bytes and verifies in constant time', () => {
    const raw = JSON.stringify(settlement('r1'));
    const sig = signBody(SECRET, raw);
    expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(signBody(SECRET, Buffer.from(raw))).toBe(sig);
    expect(verifySignature(SECRET, raw, sig)).toBe(true);
    expect(verifySignature(SECRET, Buffer.from(raw), sig)).toBe(true);
    expect(verifySignature(SECRET, raw + ' ', sig)).toBe(false);
    expect(verifySignature('another-secret-0123', raw, sig)).toBe(false);
    expect(verifySignature(SECRET, raw, undefined)).toBe(false);
    expect(verifySignature(SECRET, raw, sig.slice(0, -2))).toBe(false);
    expect(verifySignature(SECRET, raw, sig.replace('sha256=', 'sha1='))).toBe(false);
  });
});

describe('ledger server', () => {
  it('applies a signed delivery and answers the look-up', async () => {
    const ledger = await open();
    const res = await post(ledger, settlement('r1'));
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ status: 'applied', reservationId: 'r1' });

    const entry = ledger.deliveries().get('r1');
    expect(entry).toMatchObject({ reservationId: 'r1', body: settlement('r1'), deliveries: 1 });
    for (const path of ['/r1', '/settlements/r1']) {
      const found = await get(ledger, path);
      expect(found.status).toBe(200);
      expect(found.json).toMatchObject({
        status: 'applied',
        reservationId: 'r1',
        body: settlement('r1'),
        deliveries: 1,
      });
    }
    expect((await get(ledger, '/never-sent')).status).toBe(404);
    expect((await get(ledger, '/settlements/never-sent')).status).toBe(404);
    expect(ledger.stats()).toMatchObject({ posts: 1, applied: 1, duplicates: 0, gets: 4 });
  });

  it('accepts POST /settlements and a SETTLEMENT_URL ending in a slash', async () => {
    const ledger = await open();
    expect((await post(ledger, settlement('a1'), { path: '/settlements' })).status).toBe(200);
    expect((await post(ledger, settlement('a2'), { path: '/settlements/' })).status).toBe(200);
    expect((await get(ledger, '//a2')).status).toBe(200);
    expect([...ledger.deliveries().keys()]).toEqual(['a1', 'a2']);
  });

  it('refuses a missing, wrong or re-serialised signature with 401 and applies nothing', async () => {
    const ledger = await open();
    const body = settlement('r1');
    expect((await post(ledger, body, { signature: null })).status).toBe(401);
    expect(
      (await post(ledger, body, { signature: signBody('wrong-secret-0123456', JSON.stringify(body)) })).status,
    ).toBe(401);
    // Same JSON, other bytes: the HMAC covers the raw body, not its meaning.
    const pretty = JSON.stringify(body, null, 2);
    expect((await post(ledger, body, { raw: pretty, signature: signBody(SECRET, JSON.stringify(body)) })).status).toBe(
      401,
    );
    expect((await post(ledger, body, { raw: pretty })).status).toBe(200);
    expect(ledger.stats()).toMatchObject({ posts: 4, badSignature: 3, applied: 1 });
  });

  it('answers 400 without an Idempotency-Key, with a key other than reservationId, or a bad body', async () => {
    const ledger = await open();
    expect((await post(ledger, settlement('r1'), { key: null })).json).toEqual({ error: 'missing_idempotency_key' });
    expect((await post(ledger, settlement('r1'), { key: 'r2' })).json).toEqual({ error: 'idempotency_key_mismatch' });
    expect((await post(ledger, settlement('r1', 'cust-1', { amount: -1 }))).status).toBe(400);
    expect((await post(ledger, { reservationId: 'r1' }, { raw: '{not json' })).status).toBe(400);
    expect(ledger.deliveries().size).toBe(0);
    expect(ledger.stats()).toMatchObject({ posts: 4, badRequest: 4, applied: 0 });
  });

  it('applies a key once: duplicates are answered 200 and counted, a different body is 422', async () => {
    const ledger = await open();
    const body = settlement('r1');
    expect((await post(ledger, body)).json.status).toBe('applied');
    const dup = await post(ledger, body);
    expect(dup.status).toBe(200);
    expect(dup.json.status).toBe('duplicate');
    // Same content in another key order is the same body.
    const reordered = Object.fromEntries(Object.entries(body).reverse()) as typeof body;
    expect((await post(ledger, reordered)).json.status).toBe('duplicate');
    const changed = await post(ledger, { ...body, amount: 6000 });
    expect(changed.status).toBe(422);
    expect(changed.json.error).toBe('idempotency_key_reused');

    expect(ledger.deliveries().get('r1')).toMatchObject({ deliveries: 3, body });
    expect(ledger.stats()).toMatchObject({ posts: 4, applied: 1, duplicates: 2, conflicts: 1 });
  });

  it('answers duplicates 409 when asked to', async () => {
    const ledger = await open({ duplicateStatus: 409 });
    expect((await post(ledger, settlement('r1'))).status).toBe(200);
    expect((await post(ledger, settlement('r1'))).status).toBe(409);
    expect(ledger.stats()).toMatchObject({ applied: 1, duplicates: 1 });
  });

  it('applies concurrent duplicates exactly once', async () => {
    const ledger = await open({ latencyMs: 20 }); // all requests are in flight together
    const answers = await Promise.all(Array.from({ length: 25 }, () => post(ledger, settlement('r1'))));
    expect(answers.filter((a) => a.json.status === 'applied')).toHaveLength(1);
    expect(answers.filter((a) => a.json.status === 'duplicate')).toHaveLength(24);
    expect(ledger.deliveries().get('r1')?.deliveries).toBe(25);
    expect(ledger.stats()).toMatchObject({ posts: 25, applied: 1, duplicates: 24 });
  });

  it('serves stats and deliveries as JSON', async () => {
    const ledger = await open();
    await post(ledger, settlement('r1'));
    await post(ledger, settlement('r1'));
    expect((await get(ledger, '/_stats')).json).toEqual(ledger.stats());
    expect((await get(ledger, '/_deliveries')).json).toEqual({ r1: ledger.deliveries().get('r1') });
  });

  it('reset() forgets records and counters', async () => {
    const ledger = await open();
    await post(ledger, settlement('r1'));
    ledger.reset();
    expect(ledger.deliveries().size).toBe(0);
    expect(ledger.stats().posts).toBe(0);
    expect((await post(ledger, settlement('r1'))).json.status).toBe('applied');
  });
});

describe('fault injection', () => {
  /** Which of n sequential new keys got an injected 500. */
  async function failedIndexes(ledger: LedgerServer, n: number, prefix: string): Promise<number[]> {
    const failed: number[] = [];
    for (let i = 0; i < n; i++) {
      const res = await post(ledger, settlement(`${prefix}${i}`));
      if (res.status === 500) failed.push(i);
      else expect(res.status).toBe(200);
    }
    return failed;
  }

  it('failRate answers a seeded, reproducible share with 500 and records nothing for them', async () => {
    const a = await open({ failRate: 0.3, seed: 42 });
    const b = await open({ failRate: 0.3, seed: 42 });
    const failedA = await failedIndexes(a, 100, 'k');
    const failedB = await failedIndexes(b, 100, 'k');
    expect(failedB).toEqual(failedA);
    expect(failedA.length).toBeGreaterThan(15);
    expect(failedA.length).toBeLessThan(45);
    expect(a.stats()).toMatchObject({ posts: 100, failedInjected: failedA.length, applied: 100 - failedA.length });
    for (const i of failedA) expect(a.deliveries().has(`k${i}`)).toBe(false);

    // reset() re-seeds: the same run again gives the same choices; another seed other ones.
    a.reset();
    expect(await failedIndexes(a, 100, 'k')).toEqual(failedA);
    const c = await open({ failRate: 0.3, seed: 43 });
    expect(await failedIndexes(c, 100, 'k')).not.toEqual(failedA);
  });

  it('failFirstAttempts fails the first attempt of each key with 503, without recording', async () => {
    const ledger = await open({ failFirstAttempts: true });
    expect((await post(ledger, settlement('r1'))).status).toBe(503);
    expect((await get(ledger, '/r1')).status).toBe(404);
    expect((await post(ledger, settlement('r1'))).status).toBe(200);
    expect((await post(ledger, settlement('r2'))).status).toBe(503);
    expect(ledger.stats()).toMatchObject({ failedInjected: 2, applied: 1 });
  });

  it('hangAfterRecordMs records first, then answers late: a timed-out caller finds it applied', async () => {
    const ledger = await open({ hangAfterRecordMs: 400 });
    await expect(post(ledger, settlement('r1'), { signal: AbortSignal.timeout(100) })).rejects.toThrow();
    const found = await get(ledger, '/r1');
    expect(found.status).toBe(200);

    const started = Date.now();
    const late = await post(ledger, settlement('r2'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(380);
    expect(late.json.status).toBe('applied');
    expect(ledger.stats()).toMatchObject({ applied: 2, hung: 2 });

    ledger.control({ hangAfterRecordMs: 0 });
    const quick = Date.now();
    await post(ledger, settlement('r3'));
    expect(Date.now() - quick).toBeLessThan(300);
  });

  it('hangRate hangs a seeded share of deliveries', async () => {
    const ledger = await open({ hangAfterRecordMs: 30, hangRate: 0.5, seed: 7 });
    for (let i = 0; i < 20; i++) await post(ledger, settlement(`h${i}`));
    const { hung, applied } = ledger.stats();
    expect(applied).toBe(20);
    expect(hung).toBeGreaterThan(2);
    expect(hung).toBeLessThan(18);
  });

  it('rejectCustomers answers 422 with a reason, consistently, and records no effect', async () => {
    const ledger = await open({ rejectCustomers: ['bad-cust'] });
    const first = await post(ledger, settlement('r1', 'bad-cust'));
    expect(first.status).toBe(422);
    expect(first.json).toMatchObject({ error: 'rejected', reason: 'customer_rejected', customerId: 'bad-cust' });
    expect((await post(ledger, settlement('r1', 'bad-cust'))).status).toBe(422);
    expect((await post(ledger, settlement('r2', 'bad-cust'))).status).toBe(422);
    expect((await post(ledger, settlement('r3', 'good-cust'))).status).toBe(200);

    expect(ledger.deliveries().has('r1')).toBe(false);
    expect(ledger.rejections().get('r1')).toMatchObject({ reason: 'customer_rejected', deliveries: 2 });
    const lookup = await get(ledger, '/r1');
    expect(lookup.status).toBe(404); // no effect: the worker may reverse it
    expect(lookup.json.status).toBe('rejected');
    expect(ledger.stats()).toMatchObject({ rejected: 3, applied: 1 });
  });

  it('rejectRate rejects a seeded share of customers, the same ones every time', async () => {
    const customers = Array.from({ length: 40 }, (_, i) => `c${i}`);
    const rejectedBy = async (ledger: LedgerServer, round: string) => {
      const out = new Set<string>();
      for (const c of customers) if ((await post(ledger, settlement(`${round}-${c}`, c))).status === 422) out.add(c);
      return out;
    };
    const ledger = await open({ rejectRate: 0.25, seed: 3 });
    const once = await rejectedBy(ledger, 'a');
    expect(await rejectedBy(ledger, 'b')).toEqual(once); // other keys, same customers
    expect(await rejectedBy(await open({ rejectRate: 0.25, seed: 3 }), 'a')).toEqual(once);
    expect(once.size).toBeGreaterThan(3);
    expect(once.size).toBeLessThan(20);
  });

  it('down drops settlement requests without an answer; /_control brings it back', async () => {
    const ledger = await open();
    await post(ledger, settlement('r1'));
    ledger.control({ down: true });
    await expect(post(ledger, settlement('r2'))).rejects.toThrow();
    await expect(fetch(ledger.url + '/r1')).rejects.toThrow();
    expect((await get(ledger, '/_stats')).json).toMatchObject({ refused: 2, posts: 2, applied: 1 });

    const back = await fetch(ledger.url + '/_control', { method: 'POST', body: JSON.stringify({ down: false }) });
    expect(((await back.json()) as { down: boolean }).down).toBe(false);
    expect((await post(ledger, settlement('r2'))).status).toBe(200);
  });

  it('stop() refuses connections and start() comes back on the same port, records kept', async () => {
    const ledger = await open();
    await post(ledger, settlement('r1'));
    const url = ledger.url;
    await ledger.stop();
    await expect(fetch(url + '/r1')).rejects.toThrow();
    await ledger.start();
    expect(ledger.url).toBe(url);
    expect((await get(ledger, '/r1')).status).toBe(200);
  });

  it('stop() does not wait for hung answers', async () => {
    const ledger = await open({ hangAfterRecordMs: 60_000 });
    const pending = post(ledger, settlement('r1'));
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await ledger.stop();
    await expect(pending).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('latencyMs delays every settlement request', async () => {
    const ledger = await open({ latencyMs: 150 });
    const started = Date.now();
    await post(ledger, settlement('r1'));
    await get(ledger, '/r1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('validates settings from control() and POST /_control', async () => {
    const ledger = await open();
    expect(() => ledger.control({ failRate: 2 })).toThrow();
    expect(() => createLedgerServer({ secret: SECRET, hangRate: -1 })).toThrow();
    const bad = await fetch(ledger.url + '/_control', { method: 'POST', body: JSON.stringify({ failrate: 0.5 }) });
    expect(bad.status).toBe(400);
    const ok = await fetch(ledger.url + '/_control', {
      method: 'POST',
      body: JSON.stringify({ rejectCustomers: ['x'], latencyMs: 5 }),
    });
    expect(ok.status).toBe(200);
    expect(ledger.control({})).toMatchObject({ rejectCustomers: ['x'], latencyMs: 5, failRate: 0 });
    expect((await get(ledger, '/_control')).json).toMatchObject({ rejectCustomers: ['x'], latencyMs: 5 });
  });
});

describe('ledger CLI configuration', () => {
  it('reads the environment with defaults', () => {
    const { options, logLevel } = parseLedgerEnv({
      SETTLEMENT_SECRET: SECRET,
      LEDGER_FAIL_RATE: '0.1',
      LEDGER_HANG_RATE: '0.2',
    });
    expect(logLevel).toBe('info');
    expect(options).toMatchObject({
      port: 4000,
      secret: SECRET,
      failRate: 0.1,
      rejectRate: 0,
      hangRate: 0.2,
      hangAfterRecordMs: 30_000,
      seed: 1,
    });
    expect(parseLedgerEnv({ SETTLEMENT_SECRET: SECRET, LEDGER_HANG_MS: '500' }).options).toMatchObject({
      hangRate: 1,
      hangAfterRecordMs: 500,
    });
  });

  it.each([
    [{}, 'SETTLEMENT_SECRET'],
    [{ SETTLEMENT_SECRET: 'short' }, 'SETTLEMENT_SECRET'],
    [{ SETTLEMENT_SECRET: SECRET, LEDGER_PORT: 'abc' }, 'LEDGER_PORT'],
    [{ SETTLEMENT_SECRET: SECRET, LEDGER_FAIL_RATE: '1.5' }, 'LEDGER_FAIL_RATE'],
    [{ SETTLEMENT_SECRET: SECRET, LEDGER_REJECT_RATE: '-0.1' }, 'LEDGER_REJECT_RATE'],
    [{ SETTLEMENT_SECRET: SECRET, LEDGER_HANG_MS: '1.5' }, 'LEDGER_HANG_MS'],
    [{ SETTLEMENT_SECRET: SECRET, LEDGER_SEED: 'x' }, 'LEDGER_SEED'],
  ])('names the bad variable (%j)', (env, name) => {
    expect(() => parseLedgerEnv(env)).toThrow(name);
  });
});

describe("the worker's ledger client (src/settlement/ledgerClient.ts)", () => {
  it('delivers to the real ledger: settled, then found by the look-up', async () => {
    const ledger = await open();
    const client = createHttpLedgerClient({ url: ledger.url, secret: SECRET, timeoutMs: 2_000 });
    expect(await client.deliver(settlement('r-client-1'))).toEqual({ kind: 'settled' });
    expect(await client.lookup('prod-1', 'r-client-1')).toEqual({ kind: 'settled' });
    expect(await client.lookup('prod-1', 'r-never')).toEqual({ kind: 'absent' });
  });

  it('treats a redirect as an unknown outcome and does not follow it (a POST must not become a GET)', async () => {
    const ledger = await open();
    // Answers every request with a redirect to the real ledger's look-up of an applied key.
    const seed = createHttpLedgerClient({ url: ledger.url, secret: SECRET, timeoutMs: 2_000 });
    expect(await seed.deliver(settlement('r-applied'))).toEqual({ kind: 'settled' });
    const redirector = createServer((_req, res) => {
      res.writeHead(303, { location: `${ledger.url}/r-applied` }).end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`;
      const client = createHttpLedgerClient({ url, secret: SECRET, timeoutMs: 2_000 });
      expect(await client.deliver(settlement('r-redirected'))).toMatchObject({
        kind: 'unknown',
        reason: expect.stringMatching(/303/),
      });
      expect(await client.lookup('prod-1', 'r-redirected')).toMatchObject({ kind: 'unknown' });
      expect(ledger.stats().applied).toBe(1);
    } finally {
      await new Promise((resolve) => redirector.close(resolve));
    }
  });
});

describe("the service's own ledger (createInternalLedgerClient: the engine's ledger-entry scripts, real Redis)", () => {
  it('records an instruction once (a redelivery keeps the first); the look-up finds what it recorded', async () => {
    const ctx = await createEngineContext();
    try {
      const client = createInternalLedgerClient(ctx.engine);
      const stored = () => ctx.redis.hget(ctx.keys.internalLedger('prod-1'), 'r-own-1');
      expect(await client.lookup('prod-1', 'r-own-1')).toEqual({ kind: 'absent' });
      expect(await client.deliver(settlement('r-own-1'))).toEqual({ kind: 'settled' });
      const first = await stored();
      const recordedAt = expect.stringMatching(/^\d{4}-\d\d-\d\dT/);
      expect(JSON.parse(first!)).toEqual({ ...settlement('r-own-1'), recordedAt });
      expect(await client.deliver(settlement('r-own-1', 'cust-1', { amount: 1 }))).toEqual({ kind: 'settled' });
      expect(await stored()).toBe(first);
      expect(await client.lookup('prod-1', 'r-own-1')).toEqual({ kind: 'settled' });
      expect(await client.lookup('prod-1', 'r-own-2')).toEqual({ kind: 'absent' });
      expect(await ctx.redis.hlen(ctx.keys.internalLedger('prod-1'))).toBe(1);
    } finally {
      await ctx.close();
    }
  });
});
