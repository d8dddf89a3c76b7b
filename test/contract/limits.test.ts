/**
 * The optional limits (off unless configured): 429 RATE_LIMITED per API key
 * and per customer, and 503 UNAVAILABLE when an instance sheds load. Both
 * answer problem+json with Retry-After, and neither is stored as an
 * idempotent answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueId } from '../support/engineContext.js';
import { ADMIN_KEY, startServiceContext, type ServiceContext } from '../support/serviceContext.js';

async function productWithLines(svc: ServiceContext, customers: string[]): Promise<string> {
  const p = uniqueId('p');
  expect((await svc.admin('PUT', `/v1/products/${p}`, { capacity: 1_000_000 })).status).toBe(201);
  for (const c of customers)
    expect((await svc.admin('PUT', `/v1/products/${p}/customers/${c}`, { limit: 100_000 })).status).toBe(201);
  return p;
}

/** Waits for the start of a wall-clock second, so a burst falls in one rate window. */
async function startOfSecond() {
  await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5));
}

describe('rate limits', () => {
  let svc: ServiceContext;
  beforeAll(async () => {
    svc = await startServiceContext({ RATE_LIMIT_KEY_PER_SECOND: '20', RATE_LIMIT_CUSTOMER_PER_SECOND: '3' });
  });
  afterAll(() => svc.stop());

  it(
    'answers 429 with Retry-After past the per-customer rate; ' + 'other customers and retries later are served',
    async () => {
      const p = await productWithLines(svc, ['c1', 'c2']);
      await startOfSecond();
      const answers = [];
      for (let i = 0; i < 5; i++) {
        answers.push(
          await svc.client(
            'POST',
            `/v1/products/${p}/reservations`,
            { customerId: 'c1', amount: 1 },
            { 'Idempotency-Key': `k${i}` },
          ),
        );
      }
      expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 429, 429]);
      expect(answers[3]!.body).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
      expect(answers[3]!.headers.get('content-type')).toContain('application/problem+json');
      expect(Number(answers[3]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(
        (
          await svc.client(
            'POST',
            `/v1/products/${p}/reservations`,
            { customerId: 'c2', amount: 1 },
            { 'Idempotency-Key': 'other' },
          )
        ).status,
      ).toBe(201);

      // Not stored: the same key succeeds once the window has passed.
      await startOfSecond();
      expect(
        (
          await svc.client(
            'POST',
            `/v1/products/${p}/reservations`,
            { customerId: 'c1', amount: 1 },
            { 'Idempotency-Key': 'k3' },
          )
        ).status,
      ).toBe(201);
      const line = await svc.client('GET', `/v1/products/${p}/customers/c1`);
      expect(line.body.held).toBe(4);
    },
  );

  it('answers 429 past the per-key rate, per key', async () => {
    const p = await productWithLines(svc, []);
    await startOfSecond();
    const statuses = await Promise.all(
      Array.from({ length: 30 }, () => svc.client('GET', `/v1/products/${p}`).then((r) => r.status)),
    );
    expect(statuses.filter((s) => s === 200)).toHaveLength(20);
    expect(statuses.filter((s) => s === 429)).toHaveLength(10);
    // Another key has its own window.
    expect((await svc.call('GET', `/v1/products/${p}`, { key: ADMIN_KEY })).status).toBe(200);
  });
});

describe('load shedding', () => {
  let svc: ServiceContext;
  beforeAll(async () => {
    svc = await startServiceContext({ SHED_MAX_IN_FLIGHT: '1' });
  });
  afterAll(() => svc.stop());

  it('answers 503 with Retry-After while the instance is at its in-flight limit; health still answers', async () => {
    const p = await productWithLines(svc, []);
    // A bulk import whose body is still streaming keeps one request in flight.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new TextEncoder().encode('{"customerId":"s1","limit":10}\n'));
        await held;
        controller.close();
      },
    });
    const slow = fetch(`${svc.baseUrl}/v1/products/${p}/customers:bulk`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
      body,
      duplex: 'half',
    } as RequestInit);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const shed = await svc.client('GET', `/v1/products/${p}`);
    expect(shed.status).toBe(503);
    expect(shed.body).toMatchObject({ code: 'UNAVAILABLE' });
    expect(shed.headers.get('retry-after')).toBe('1');
    expect((await svc.call('GET', '/healthz', { key: null })).status).toBe(200);

    release();
    expect((await slow).status).toBe(200);
    expect((await svc.client('GET', `/v1/products/${p}`)).status).toBe(200);
  });
});
