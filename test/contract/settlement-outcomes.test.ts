/**
 * How an unknown outcome is settled (CONTRACT.md "Settlement (downstream
 * ledger)"): timeouts and duplicate answers are retried, the last attempt asks
 * the ledger (GET SETTLEMENT_URL/{id}); 200 -> settled, 404 -> reversed, no
 * answer -> settlement_unknown, which an admin resolves.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerServer } from '../../testLedger/ledgerServer.js';
import type { ServiceContext } from '../support/serviceContext.js';
import {
  ADMIN_KEY,
  CLIENT_KEY,
  getLine,
  getPool,
  getReservation,
  makeLine,
  makeProduct,
  metric,
  reserve,
  reserveAndCommit,
  startLedger,
  startService,
  waitUntil,
  waitStatus,
} from '../support/settlement.js';

const ATTEMPTS = 4;
const TIMEOUT_MS = 1_000;
const env = {
  SETTLEMENT_ATTEMPTS: String(ATTEMPTS),
  SETTLEMENT_BACKOFF_MS: '50',
  SETTLEMENT_TIMEOUT_MS: String(TIMEOUT_MS),
};

async function eventsOf(svc: ServiceContext, p: string, id: string): Promise<any[]> {
  const res = await svc.admin('GET', `/v1/products/${p}/reservations/${id}/events`);
  expect(res.status).toBe(200);
  return res.body.events;
}

describe('a ledger that records, then hangs past the worker timeout', () => {
  let ledger: LedgerServer;
  let svc: ServiceContext;
  beforeAll(async () => {
    ledger = await startLedger({ hangAfterRecordMs: 2_000, hangRate: 1 });
    svc = await startService(ledger, env);
  });
  afterAll(async () => {
    await svc?.stop();
    await ledger?.stop();
  });

  it(
    'ends settled (the ledger GET confirms it), never ' + 'reversed; attempts and lastError show the timeouts',
    async () => {
      const p = await makeProduct(svc, 10_000);
      await makeLine(svc, p, 'c1', 5_000);
      const r = await reserveAndCommit(svc, p, 'c1', 1_200);
      const done = await waitStatus(svc, p, r.reservationId);

      expect(done.status).toBe('settled');
      expect(done.attempts).toBe(ATTEMPTS);
      expect(done.lastError).toMatch(/time|abort/i);
      const stats = ledger.stats();
      expect(stats).toMatchObject({ applied: 1, duplicates: ATTEMPTS - 1, hung: ATTEMPTS, gets: 1, rejected: 0 });
      expect(ledger.deliveries().get(r.reservationId)?.body.amount).toBe(1_200);

      const events = await eventsOf(svc, p, r.reservationId);
      expect(events.map((e) => e.to)).toEqual(['held', 'committed', 'settled']);
      expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 1_200, settled: 1_200, available: 8_800 });
      expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 0, drawn: 1_200, settling: 0, available: 3_800 });
    },
  );
});

describe('a ledger that loses the first answer, then answers duplicates with 409', () => {
  let ledger: LedgerServer;
  let svc: ServiceContext;
  beforeAll(async () => {
    ledger = await startLedger({ duplicateStatus: 409, hangAfterRecordMs: 2_000, hangRate: 1 });
    svc = await startService(ledger, env);
  });
  afterAll(async () => {
    await svc?.stop();
    await ledger?.stop();
  });

  it('treats 409 as unknown, retries, and settles on the ledger GET', async () => {
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const r = await reserveAndCommit(svc, p, 'c1', 700);
    await waitUntil(
      'the first delivery to hang',
      async () => ledger.stats().hung,
      (n) => n >= 1,
      { timeoutMs: 5_000, everyMs: 5 },
    );
    ledger.control({ hangAfterRecordMs: 0 });
    const done = await waitStatus(svc, p, r.reservationId);

    expect(done.status).toBe('settled');
    expect(done.attempts).toBe(ATTEMPTS);
    expect(done.lastError).toMatch(/409/);
    expect(ledger.stats()).toMatchObject({ applied: 1, duplicates: ATTEMPTS - 1, gets: 1 });
    expect(await getPool(svc, p)).toMatchObject({ committed: 700, settled: 700 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 700, settling: 0 });
  });
});

describe('a ledger that never records', () => {
  let ledger: LedgerServer;
  let svc: ServiceContext;
  beforeAll(async () => {
    ledger = await startLedger();
    svc = await startService(ledger, env);
  });
  afterAll(async () => {
    await svc?.stop();
    await ledger?.stop();
  });

  const resolve = (p: string, id: string, body: unknown, key = ADMIN_KEY) =>
    svc.call('POST', `/v1/products/${p}/reservations/${id}/resolve`, { body, key });

  it('every POST fails (500) and the GET answers 404: reversed, quota back in pool and line', async () => {
    ledger.reset();
    ledger.control({ failRate: 1, down: false });
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const r = await reserveAndCommit(svc, p, 'c1', 2_000);
    expect(await getPool(svc, p)).toMatchObject({ committed: 2_000 });
    const done = await waitStatus(svc, p, r.reservationId);

    expect(done.status).toBe('reversed');
    expect(done.attempts).toBe(ATTEMPTS);
    expect(done.lastError).toMatch(/never received|500/);
    expect(ledger.stats()).toMatchObject({ posts: ATTEMPTS, failedInjected: ATTEMPTS, applied: 0, gets: 1 });
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 0, settled: 0, available: 10_000 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 0, drawn: 0, settling: 0, available: 5_000 });
    const events = await eventsOf(svc, p, r.reservationId);
    expect(events.map((e) => e.to)).toEqual(['held', 'committed', 'reversed']);
    expect(events[2].reason).toMatch(/never received/);
  });

  it('the first attempt fails (503), the second lands: settled, one effect', async () => {
    ledger.reset();
    ledger.control({ failRate: 0, failFirstAttempts: true, down: false });
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const r = await reserveAndCommit(svc, p, 'c1', 300);
    const done = await waitStatus(svc, p, r.reservationId);
    ledger.control({ failFirstAttempts: false });
    expect(done).toMatchObject({ status: 'settled', attempts: 1 });
    expect(done.lastError).toMatch(/503/);
    expect(ledger.stats()).toMatchObject({ posts: 2, applied: 1, failedInjected: 1, gets: 0 });
    expect(await getPool(svc, p)).toMatchObject({ committed: 300, settled: 300 });
  });

  it('the ledger is fully down (GET fails too): settlement_unknown, counted; an admin resolves it', async () => {
    ledger.reset();
    ledger.control({ failRate: 0, failFirstAttempts: false, down: true });
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const unknownBefore = await metric(svc, 'quota_settlement_outcomes_total{outcome="unknown",changed="true"}');
    const r1 = await reserveAndCommit(svc, p, 'c1', 1_000);
    const r2 = await reserveAndCommit(svc, p, 'c1', 400);
    const d1 = await waitStatus(svc, p, r1.reservationId);
    const d2 = await waitStatus(svc, p, r2.reservationId);
    ledger.control({ down: false });

    for (const d of [d1, d2]) {
      expect(d.status).toBe('settlement_unknown');
      expect(d.attempts).toBe(ATTEMPTS);
      expect(d.lastError).toMatch(/unreachable|lookup failed/);
    }
    expect(ledger.stats()).toMatchObject({ applied: 0, refused: 2 * ATTEMPTS + 2, gets: 2 });
    expect(await metric(svc, 'quota_settlement_outcomes_total{outcome="unknown",changed="true"}')).toBe(
      unknownBefore + 2,
    );
    // Unknown: the quota stays drawn and settling until someone decides.
    expect(await getPool(svc, p)).toMatchObject({ committed: 1_400, settled: 0 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 1_400, settling: 1_400 });
    const listed = await svc.admin('GET', `/v1/products/${p}/reservations?status=settlement_unknown`);
    expect(new Set(listed.body.items.map((x: any) => x.reservationId))).toEqual(
      new Set([r1.reservationId, r2.reservationId]),
    );

    // A client key may not resolve: 403, nothing changes.
    const forbidden = await resolve(p, r1.reservationId, { outcome: 'settled' }, CLIENT_KEY);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.code).toBe('FORBIDDEN');
    expect((await getReservation(svc, p, r1.reservationId)).status).toBe('settlement_unknown');

    // Admin: r1 settled after checking with the bank, r2 reversed.
    const s = await resolve(p, r1.reservationId, { outcome: 'settled', reason: 'bank confirms receipt' });
    expect(s.status, JSON.stringify(s.body)).toBe(200);
    expect(s.body).toMatchObject({ reservationId: r1.reservationId, status: 'settled' });
    const v = await resolve(p, r2.reservationId, { outcome: 'reversed' });
    expect(v.status, JSON.stringify(v.body)).toBe(200);
    expect(v.body).toMatchObject({ reservationId: r2.reservationId, status: 'reversed' });
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 1_000, settled: 1_000, available: 9_000 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 0, drawn: 1_000, settling: 0, available: 4_000 });
    const events = await eventsOf(svc, p, r1.reservationId);
    expect(events.map((e) => e.to)).toEqual(['held', 'committed', 'settlement_unknown', 'settled']);
    expect(events[3].reason).toBe('bank confirms receipt');
  });

  it(
    'resolve on a reservation not in settlement_unknown: 409 ' + 'RESERVATION_STATE_CONFLICT, nothing changes',
    async () => {
      ledger.reset();
      ledger.control({ failRate: 0, failFirstAttempts: false, down: false });
      const p = await makeProduct(svc, 10_000);
      await makeLine(svc, p, 'c1', 5_000);
      const held = await reserve(svc, p, 'c1', 100);
      const settled = await reserveAndCommit(svc, p, 'c1', 250);
      expect((await waitStatus(svc, p, settled.reservationId)).status).toBe('settled');

      for (const [id, outcome] of [
        [held.reservationId, 'settled'],
        [held.reservationId, 'reversed'],
        [settled.reservationId, 'reversed'],
      ] as const) {
        const res = await resolve(p, id, { outcome });
        expect(res.status, `${outcome} on ${id}: ${JSON.stringify(res.body)}`).toBe(409);
        expect(res.body.code).toBe('RESERVATION_STATE_CONFLICT');
      }
      expect((await getReservation(svc, p, held.reservationId)).status).toBe('held');
      expect((await getReservation(svc, p, settled.reservationId)).status).toBe('settled');
      expect(await getPool(svc, p)).toMatchObject({ held: 100, committed: 250, settled: 250 });
    },
  );

  // CONTRACT.md: "on a reservation not in settlement_unknown it answers 409 RESERVATION_STATE_CONFLICT".
  it('resolve { outcome: "settled" } on a reservation the worker already settled: 409 too', async () => {
    ledger.reset();
    ledger.control({ failRate: 0, failFirstAttempts: false, down: false });
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const r = await reserveAndCommit(svc, p, 'c1', 250);
    expect((await waitStatus(svc, p, r.reservationId)).status).toBe('settled');
    const res = await resolve(p, r.reservationId, { outcome: 'settled' });
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.code).toBe('RESERVATION_STATE_CONFLICT');
    expect(await getPool(svc, p)).toMatchObject({ committed: 250, settled: 250 });
  });

  // CONTRACT.md fixes 409 for any state but settlement_unknown; README.md's operator table says a repeat answers 200.
  it('repeating the same resolve: 409 (no longer settlement_unknown), no second effect', async () => {
    ledger.reset();
    ledger.control({ failRate: 0, failFirstAttempts: false, down: true });
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const r = await reserveAndCommit(svc, p, 'c1', 600);
    expect((await waitStatus(svc, p, r.reservationId)).status).toBe('settlement_unknown');
    ledger.control({ down: false });
    expect((await resolve(p, r.reservationId, { outcome: 'reversed' })).status).toBe(200);
    const again = await resolve(p, r.reservationId, { outcome: 'reversed' });
    expect(await getPool(svc, p)).toMatchObject({ committed: 0, settled: 0, available: 10_000 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ drawn: 0, settling: 0, available: 5_000 });
    expect(again.status, JSON.stringify(again.body)).toBe(409);
    expect(again.body.code).toBe('RESERVATION_STATE_CONFLICT');
  });
});
