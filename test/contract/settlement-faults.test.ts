/**
 * Settlement under a faulty downstream ledger (CONTRACT.md "Settlement
 * (downstream ledger)", invariant 5): the full service in-process against the
 * real test ledger over HTTP. Every committed reservation ends settled,
 * reversed or settlement_unknown; nothing stays committed; the ledger's
 * effects match the service's counters exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LedgerServer } from '../../testLedger/ledgerServer.js';
import type { ServiceContext } from '../support/serviceContext.js';
import {
  TERMINAL,
  getLine,
  getPool,
  inBatches,
  ledgerRejects,
  listAll,
  listPage,
  makeLine,
  makeProduct,
  metric,
  reserveAndCommit,
  startLedger,
  startService,
  sum,
  waitAllTerminal,
} from '../support/settlement.js';

describe(
  'every committed reservation reaches a terminal settlement ' + 'state (mixed faults, then the ledger goes down)',
  () => {
    let ledger: LedgerServer;
    let svc: ServiceContext;
    beforeAll(async () => {
      ledger = await startLedger({
        seed: 3,
        failRate: 0.4,
        hangAfterRecordMs: 2_500,
        hangRate: 0.3,
        rejectCustomers: ['bad-1'],
      });
      svc = await startService(ledger, {
        SETTLEMENT_ATTEMPTS: '3',
        SETTLEMENT_BACKOFF_MS: '20',
        SETTLEMENT_TIMEOUT_MS: '1000',
      });
    });
    afterAll(async () => {
      await svc?.stop();
      await ledger?.stop();
    });

    it('none stays committed; settled ones are in the ledger, reversed ones never are; counters match', async () => {
      const p = await makeProduct(svc);
      const customers = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'bad-1'];
      for (const c of customers) await makeLine(svc, p, c);

      // Batch A: the ledger fails 40% of attempts, hangs after recording 30% of them, rejects bad-1.
      const a = await inBatches(
        Array.from({ length: 45 }, (_, i) => i),
        10,
        (i) =>
          reserveAndCommit(
            svc,
            p,
            customers[i % customers.length]!,
            1_000 + i * 10,
            i % 4 === 0 ? 900 + i * 10 : undefined,
          ),
      );
      await waitAllTerminal(
        svc,
        p,
        a.map((r) => r.reservationId as string),
        20_000,
      );
      const afterA = ledger.stats();
      // Batch B: the ledger is down (POSTs and look-ups alike), so their outcome cannot be known.
      ledger.control({ down: true });
      const b = await inBatches(
        Array.from({ length: 15 }, (_, i) => i),
        10,
        (i) => reserveAndCommit(svc, p, customers[i % 8]!, 500 + i),
      );

      const ids = [...a, ...b].map((r) => r.reservationId as string);
      const final = await waitAllTerminal(svc, p, ids, 25_000);
      ledger.control({ down: false });

      const byStatus = (s: string) => [...final.values()].filter((r) => r.status === s);
      for (const r of final.values()) expect(TERMINAL, `${r.reservationId} is ${r.status}`).toContain(r.status);
      expect((await listPage(svc, p, 'committed')).items).toEqual([]);
      expect(await listAll(svc, p, 'committed')).toHaveLength(0);
      for (const r of b)
        expect(final.get(r.reservationId).status, 'committed while the ledger was down').toBe('settlement_unknown');

      const settled = byStatus('settled');
      const reversed = byStatus('reversed');
      const unknown = byStatus('settlement_unknown');
      expect(settled.length + reversed.length + unknown.length).toBe(ids.length);
      // Batch A ran against an answering ledger: nothing unknown; bad-1 (rejected by the ledger) reversed.
      for (const r of a)
        expect(final.get(r.reservationId).status, `${r.reservationId} of ${r.customerId}`).not.toBe(
          'settlement_unknown',
        );
      for (const r of a.filter((x) => x.customerId === 'bad-1'))
        expect(final.get(r.reservationId).status).toBe('reversed');
      expect(afterA.hung, 'some answers were lost after the ledger recorded them').toBeGreaterThan(0);
      expect(afterA.failedInjected).toBeGreaterThan(0);

      // Only what the ledger confirms it never took is reversed; everything settled is in the ledger.
      const applied = ledger.deliveries();
      for (const r of settled)
        expect(applied.has(r.reservationId), `settled ${r.reservationId} must be in the ledger`).toBe(true);
      for (const r of reversed)
        expect(applied.has(r.reservationId), `reversed ${r.reservationId} must not be in the ledger`).toBe(false);
      for (const id of applied.keys()) expect(['settled', 'settlement_unknown']).toContain(final.get(id)?.status);

      const pool = await getPool(svc, p);
      const committedAmounts = (rs: any[]) => sum(rs.map((r) => r.committedAmount as number));
      expect(pool).toMatchObject({
        held: 0,
        committed: committedAmounts(settled) + committedAmounts(unknown),
        settled: committedAmounts(settled),
      });
      for (const c of customers) {
        const mine = (rs: any[]) => rs.filter((r) => r.customerId === c);
        expect(await getLine(svc, p, c), c).toMatchObject({
          held: 0,
          drawn: committedAmounts(mine(settled)) + committedAmounts(mine(unknown)),
          settling: committedAmounts(mine(unknown)),
        });
      }
      expect(await metric(svc, 'quota_settlement_outcomes_total{outcome="unknown",changed="true"}')).toBe(
        unknown.length,
      );

      const stats = ledger.stats();
      console.log(
        `[settlement mixed faults] ${ids.length} committed: ` +
          `settled=${settled.length} reversed=${reversed.length} ` +
          `unknown=${unknown.length}; ` +
          (`ledger posts=${stats.posts} applied=${stats.applied} ` +
            `duplicates=${stats.duplicates} failedInjected=${stats.failedInjected} `) +
          `hung=${stats.hung} rejected=${stats.rejected} refused=${stats.refused} gets=${stats.gets}`,
      );
      expect(stats.badSignature).toBe(0);
      expect(stats.badRequest).toBe(0);
      expect(stats.conflicts).toBe(0);
    });
  },
);

describe('ledger failing 30% of attempts and rejecting 10% of customers', () => {
  const SEED = 3; // rejects 6 of the 60 customers
  const REJECT_RATE = 0.1;
  let ledger: LedgerServer;
  let svc: ServiceContext;
  beforeAll(async () => {
    ledger = await startLedger({ seed: SEED, failRate: 0.3, rejectRate: REJECT_RATE });
    // 12 attempts: a good reservation failing all of them (0.3^12 each) is out of reach; timeouts are generous (no
    // hangs here).
    svc = await startService(ledger, {
      SETTLEMENT_ATTEMPTS: '12',
      SETTLEMENT_BACKOFF_MS: '20',
      SETTLEMENT_TIMEOUT_MS: '2000',
    });
  });
  afterAll(async () => {
    await svc?.stop();
    await ledger?.stop();
  });

  it(
    'good ones settle exactly once, rejected customers are reversed ' +
      'with their quota back, counters match the ledger',
    async () => {
      const CUSTOMERS = 60;
      const PER_CUSTOMER = 5;
      const LIMIT = 50_000;
      const p = await makeProduct(svc, 100_000_000);
      const customers = Array.from({ length: CUSTOMERS }, (_, i) => `cust-${String(i).padStart(3, '0')}`);
      const rejectedCustomers = new Set(customers.filter((c) => ledgerRejects(SEED, REJECT_RATE, c)));
      expect(rejectedCustomers.size, 'the seed must reject some customers').toBeGreaterThan(0);
      expect(rejectedCustomers.size).toBeLessThan(CUSTOMERS / 3);
      await inBatches(customers, 20, (c) => makeLine(svc, p, c, LIMIT));

      const started = Date.now();
      const plan = Array.from({ length: CUSTOMERS * PER_CUSTOMER }, (_, i) => {
        const amount = 1_000 + ((i * 7919) % 4_000);
        return {
          customerId: customers[i % CUSTOMERS]!,
          amount,
          commitAmount: i % 3 === 0 ? amount - 100 * (i % 7) - 1 : undefined,
        };
      });
      const committed = await inBatches(plan, 25, (x) =>
        reserveAndCommit(svc, p, x.customerId, x.amount, x.commitAmount),
      );
      const ids = committed.map((r) => r.reservationId as string);
      expect(new Set(ids).size).toBe(plan.length);

      const final = await waitAllTerminal(svc, p, ids, 30_000);
      const elapsed = Date.now() - started;
      const all = [...final.values()];
      const settled = all.filter((r) => r.status === 'settled');
      const reversed = all.filter((r) => r.status === 'reversed');
      const unknown = all.filter((r) => r.status === 'settlement_unknown');
      const stats = ledger.stats();
      const deliveries = ledger.deliveries();
      console.log(
        `[settlement 30% failures, 10% rejected customers] ${ids.length} committed in ${elapsed} ms: ` +
          `settled=${settled.length} reversed=${reversed.length} unknown=${unknown.length} ` +
          `(rejected customers: ${rejectedCustomers.size}/${CUSTOMERS}); ` +
          (`ledger deliveries (POSTs)=${stats.posts} effects ` +
            `(applied)=${stats.applied} duplicates=${stats.duplicates} `) +
          `failedInjected=${stats.failedInjected} rejected=${stats.rejected} gets=${stats.gets}`,
      );

      // Nothing stays committed; good customers settled, rejected customers reversed.
      expect(await listAll(svc, p, 'committed')).toHaveLength(0);
      expect(unknown.map((r) => r.reservationId)).toEqual([]);
      for (const r of all) {
        const want = rejectedCustomers.has(r.customerId) ? 'reversed' : 'settled';
        expect(
          r.status,
          `${r.reservationId} of ${r.customerId} (attempts ${r.attempts}, lastError ${r.lastError})`,
        ).toBe(want);
      }
      for (const r of reversed) expect(r.lastError ?? '').toMatch(/422/);

      // The admin listings agree with the records.
      expect(new Set((await listAll(svc, p, 'settled')).map((r) => r.reservationId))).toEqual(
        new Set(settled.map((r) => r.reservationId)),
      );
      expect(new Set((await listAll(svc, p, 'reversed')).map((r) => r.reservationId))).toEqual(
        new Set(reversed.map((r) => r.reservationId)),
      );

      // Ledger: one effect per settled reservation, no key applied twice, bodies as committed.
      expect(stats.applied).toBe(settled.length);
      expect(deliveries.size).toBe(stats.applied);
      expect(new Set(deliveries.keys())).toEqual(new Set(settled.map((r) => r.reservationId)));
      for (const r of settled) {
        const entry = deliveries.get(r.reservationId)!;
        expect(entry.body).toEqual({
          reservationId: r.reservationId,
          productId: p,
          customerId: r.customerId,
          amount: r.committedAmount,
          committedAt: r.committedAt,
          metadata: r.metadata,
        });
        expect(r.metadata).toEqual({ campaign: 'launch', n: r.amount });
      }
      expect(sum([...deliveries.values()].map((e) => e.deliveries))).toBe(stats.applied + stats.duplicates);
      expect(new Set(ledger.rejections().keys())).toEqual(new Set(reversed.map((r) => r.reservationId)));
      expect(stats.posts).toBeGreaterThanOrEqual(ids.length);
      expect(stats.failedInjected).toBeGreaterThan(0);
      expect(stats.badSignature + stats.badRequest + stats.conflicts).toBe(0);

      // Pool: settled == committed == sum of settled committedAmounts (the reversed quota is back).
      const settledSum = sum(settled.map((r) => r.committedAmount));
      const pool = await getPool(svc, p);
      expect(pool).toMatchObject({
        held: 0,
        committed: settledSum,
        settled: settledSum,
        available: 100_000_000 - settledSum,
      });

      // Lines: rejected customers are whole again; good customers have drawn what they committed, nothing settling.
      for (const c of customers) {
        const line = await getLine(svc, p, c);
        if (rejectedCustomers.has(c)) {
          expect(line, c).toMatchObject({ held: 0, drawn: 0, settling: 0, available: LIMIT });
        } else {
          const drawn = sum(settled.filter((r) => r.customerId === c).map((r) => r.committedAmount));
          expect(line, c).toMatchObject({ held: 0, drawn, settling: 0, available: LIMIT - drawn });
        }
      }
    },
  );
});
