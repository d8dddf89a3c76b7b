/**
 * Shared pieces of the settlement tests (test/contract/settlement-*.test.ts): a real
 * test ledger on a free port, the full service in-process, HTTP shortcuts,
 * and a BullMQ queue handle on the service's own
 * settlement queue. No mocks: real Redis, real BullMQ, real HTTP.
 */
import { createHash } from 'node:crypto';
import { Queue } from 'bullmq';
import { expect, inject } from 'vitest';
import { createLedgerServer, type LedgerServer, type LedgerServerOptions } from '../../testLedger/ledgerServer.js';
import { queueConnectionOptions } from '../../src/redis/connection.js';
import { createKeys } from '../../src/redis/keys.js';
import { SETTLEMENT_QUEUE, type SettlementJobData } from '../../src/settlement/settlementQueue.js';
import { uniqueId } from './engineContext.js';
import { ADMIN_KEY, CLIENT_KEY, startServiceContext, type ServiceContext } from './serviceContext.js';
import { sleep, waitUntil } from './wait.js';

export { ADMIN_KEY, CLIENT_KEY, sleep, uniqueId, waitUntil };

export const SECRET = 'settlement-test-secret-0123456789';
export const TERMINAL = ['settled', 'reversed', 'settlement_unknown'] as const;

export async function startLedger(options: Partial<LedgerServerOptions> = {}): Promise<LedgerServer> {
  const ledger = createLedgerServer({ secret: SECRET, ...options });
  await ledger.start();
  return ledger;
}

/** The service wired to `ledger` (or to its internal ledger when none), with fast settlement timings. */
export function startService(ledger: LedgerServer | null, env: Record<string, string> = {}): Promise<ServiceContext> {
  return startServiceContext({
    ...(ledger ? { SETTLEMENT_URL: ledger.url, SETTLEMENT_SECRET: SECRET } : {}),
    SETTLEMENT_ATTEMPTS: '4',
    SETTLEMENT_BACKOFF_MS: '50',
    // Well above a stall of the shared test process (the ledger runs in it too), well below the hangs tests inject.
    SETTLEMENT_TIMEOUT_MS: '1000',
    RELAY_INTERVAL_MS: '200',
    RELAY_GRACE_MS: '0',
    ...env,
  });
}

function ok<T = any>(res: { status: number; body: T }, expected: number | number[], what: string): T {
  const wanted = Array.isArray(expected) ? expected : [expected];
  expect(wanted, `${what}: got ${res.status} ${JSON.stringify(res.body)}`).toContain(res.status);
  return res.body;
}

export async function makeProduct(
  svc: ServiceContext,
  capacity = 100_000_000,
  productId = uniqueId('p'),
): Promise<string> {
  ok(await svc.admin('PUT', `/v1/products/${productId}`, { capacity }), 201, 'PUT product');
  return productId;
}

export async function makeLine(svc: ServiceContext, productId: string, customerId: string, limit = 10_000_000) {
  ok(await svc.admin('PUT', `/v1/products/${productId}/customers/${customerId}`, { limit }), [200, 201], 'PUT line');
}

export async function reserve(
  svc: ServiceContext,
  productId: string,
  customerId: string,
  amount: number,
  metadata?: Record<string, unknown>,
) {
  const res = await svc.client(
    'POST',
    `/v1/products/${productId}/reservations`,
    { customerId, amount, ...(metadata ? { metadata } : {}) },
    {
      'Idempotency-Key': uniqueId('k'),
    },
  );
  return ok(res, 201, 'reserve') as any;
}

export async function commit(svc: ServiceContext, productId: string, reservationId: string, amount?: number) {
  const res = await svc.client(
    'POST',
    `/v1/products/${productId}/reservations/${reservationId}/commit`,
    amount === undefined ? {} : { amount },
  );
  return ok(res, 200, 'commit') as any;
}

/** Reserve then commit over HTTP (the settlement feed queues its job). */
export async function reserveAndCommit(
  svc: ServiceContext,
  productId: string,
  customerId: string,
  amount: number,
  commitAmount?: number,
) {
  const r = await reserve(svc, productId, customerId, amount, { campaign: 'launch', n: amount });
  const c = await commit(svc, productId, r.reservationId, commitAmount);
  expect(c.status).toBe('committed');
  return c;
}

export async function getReservation(svc: ServiceContext, productId: string, reservationId: string) {
  return ok(
    await svc.client('GET', `/v1/products/${productId}/reservations/${reservationId}`),
    200,
    'GET reservation',
  ) as any;
}

export async function getPool(svc: ServiceContext, productId: string) {
  return ok(await svc.client('GET', `/v1/products/${productId}`), 200, 'GET product') as any;
}

export async function getLine(svc: ServiceContext, productId: string, customerId: string) {
  return ok(await svc.client('GET', `/v1/products/${productId}/customers/${customerId}`), 200, 'GET line') as any;
}

/** One page of the admin listing by status: the first, or the one after `cursor` (a `nextCursor`). */
export async function listPage(
  svc: ServiceContext,
  productId: string,
  status: string,
  cursor: string | null = null,
  limit = 100,
) {
  const after = cursor === null ? '' : `&cursor=${cursor}`;
  const res = await svc.admin('GET', `/v1/products/${productId}/reservations?status=${status}&limit=${limit}${after}`);
  return ok(res, 200, `list ${status}`) as { items: any[]; nextCursor: string | null };
}

/** Every reservation in one state, paging through the admin listing. */
export async function listAll(svc: ServiceContext, productId: string, status: string, limit = 500): Promise<any[]> {
  const all: any[] = [];
  let cursor: string | null = null;
  do {
    const page = await listPage(svc, productId, status, cursor, limit);
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return all;
}

/** Waits until no reservation of the product is `committed` and every given id is in a terminal state. */
export async function waitAllTerminal(svc: ServiceContext, productId: string, ids: string[], timeoutMs = 20_000) {
  await waitUntil(
    `no committed reservation left in ${productId}`,
    () => listPage(svc, productId, 'committed', null, 500),
    (page) => page.items.length === 0,
    { timeoutMs },
  );
  const out = new Map<string, any>();
  for (const id of ids) out.set(id, await getReservation(svc, productId, id));
  return out;
}

export async function waitStatus(svc: ServiceContext, productId: string, reservationId: string, timeoutMs = 15_000) {
  return waitUntil(
    `reservation ${reservationId} to leave committed`,
    () => getReservation(svc, productId, reservationId),
    (r) => r.status !== 'committed' && r.status !== 'held',
    { timeoutMs },
  );
}

/**
 * The test ledger's rejectRate rule, recomputed independently: sha256(`${seed}:${customerId}`) as a fraction < rate.
 */
export function ledgerRejects(seed: number, rate: number, customerId: string): boolean {
  return createHash('sha256').update(`${seed}:${customerId}`).digest().readUInt32BE(0) / 2 ** 32 < rate;
}

/** A BullMQ producer on the service's own settlement queue (prefix `{<keyPrefix>-q}`). */
export function settlementQueueOf(svc: ServiceContext): Queue<SettlementJobData> {
  const prefix = createKeys(svc.keyPrefix).queuePrefix();
  expect(prefix).toBe(`{${svc.keyPrefix}-q}`);
  return new Queue<SettlementJobData>(SETTLEMENT_QUEUE, {
    connection: queueConnectionOptions(inject('redisUrl')),
    prefix,
  });
}

/** Value of one Prometheus series in the service's /metrics text (0 when absent). */
export async function metric(svc: ServiceContext, series: string): Promise<number> {
  const res = await svc.call<string>('GET', '/metrics', { key: null });
  expect(res.status).toBe(200);
  const line = String(res.body)
    .split('\n')
    .find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** Runs `fn` over `items` with at most `width` in flight. */
export async function inBatches<T, R>(
  items: T[],
  width: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  async function lane() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
  return out;
}

export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
