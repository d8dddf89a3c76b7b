/**
 * `quota loadtest` against the in-process service: a short run whose
 * invariant check (from the service's own snapshots) passes, and the same
 * check failing when an oversell is planted in the snapshot source.
 */
import { QuotaClient } from '@quota-allocator/client';
import { apiSnapshotSource, checkInvariants, type SnapshotSource } from '@quota-allocator/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueId } from '../../support/engineContext.js';
import { ADMIN_KEY, startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import { quota } from '../../support/cli.js';

let svc: ServiceContext;
let api: QuotaClient;
beforeAll(async () => {
  svc = await startServiceContext();
  api = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: ADMIN_KEY });
});
afterAll(async () => {
  await svc?.stop();
});

describe('quota loadtest', () => {
  it(
    'a 3-second run with commits: throughput, latency, answers by ' +
      'code, invariants OK, no holds left, product closed',
    async () => {
      const productId = uniqueId('lt');
      const out = await quota([
        'loadtest',
        '--url',
        svc.baseUrl,
        '--key',
        ADMIN_KEY,
        '--product',
        productId,
        '--rate',
        '400',
        '--duration',
        '3',
        '--connections',
        '8',
        '--customers',
        '100',
        '--capacity',
        '400000',
        '--commit-ratio',
        '0.2',
        '--cleanup',
        '--json',
      ]);
      const report = out.json;
      expect(out.code, out.stderr).toBe(0);
      // The live progress line, once a second.
      expect(out.stderr).toMatch(/loadtest \d\/3s {2}answers \d+/);
      const checks = report.invariants.checks.map((c: { name: string; detail: string }) => `${c.name}: ${c.detail}`);
      console.info(`loadtest report: ${JSON.stringify({ ...report, invariants: checks }, null, 1)}`);
      expect(report.productId).toBe(productId);
      expect(report.createdProduct).toBe(true);
      expect(report.requests).toBeGreaterThan(100); // loose: a loaded CI machine is slow; the verdict is the point
      expect(report.throughputPerSecond).toBeGreaterThan(30);
      expect(report.latencyMs.p99).toBeGreaterThanOrEqual(report.latencyMs.p50);
      expect(report.draws.granted).toBeGreaterThan(0);
      expect(report.draws.committed).toBeGreaterThan(0);
      expect(report.draws.released + report.draws.committed).toBe(report.draws.granted);
      // A realistic mix is refused too: pending and frozen lines, limits used up, the pool drained by commits.
      expect(Object.keys(report.answersByCode).some((k) => k.startsWith('409 '))).toBe(true);
      expect(report.invariants.ok).toBe(true);
      expect(report.invariants.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok])).toEqual([
        ['pool never oversold', true],
        ['every line within its limit', true],
        ['pool counters equal the grants', true],
        ['lines add up to the pool', true],
      ]);
      expect(report.cleanup).toEqual({ holdsLeft: 0, productClosed: true });
      const pool = await api.getProduct(productId);
      expect(pool.ok && [pool.value.status, pool.value.held, pool.value.committed]).toEqual([
        'closed',
        0,
        report.draws.committedAmount,
      ]);
    },
    60_000,
  );

  it('refuses a product it did not create unless --existing-product', async () => {
    const p = uniqueId('p');
    await api.admin.putProduct(p, { capacity: 1_000 });
    const refused = await quota([
      'loadtest',
      '--url',
      svc.baseUrl,
      '--key',
      ADMIN_KEY,
      '--product',
      p,
      '--duration',
      '1',
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/already exists and was not created by this run: pass --existing-product/);
    const pool = await api.getProduct(p);
    expect(pool.ok && pool.value.held).toBe(0);
  });
});

describe('the invariant check', () => {
  it(
    'fails when the snapshot source shows an oversold pool or a ' + 'line over its limit; passes on the true snapshots',
    async () => {
      const p = uniqueId('p');
      await api.admin.putProduct(p, { capacity: 1_000 });
      await api.admin.putLine(p, 'c1', { limit: 1_000 });
      const r = await api.reserve(p, { customerId: 'c1', amount: 600 });
      expect(r.ok).toBe(true);
      const real: SnapshotSource = apiSnapshotSource(api, p, ['c1']);
      const grants = { held: 600, committed: 0, baseline: { held: 0, committed: 0 }, ownsProduct: true };

      const honest = await checkInvariants(real, grants, []);
      expect(honest.ok, JSON.stringify(honest)).toBe(true);

      // Planted: the service's snapshot shows 600 more held than the pool's capacity allows.
      const oversold: SnapshotSource = {
        pool: async () => ({ ...(await real.pool()), held: 1_200 }),
        lines: () => real.lines(),
      };
      const verdict = await checkInvariants(oversold, grants, []);
      expect(verdict.ok).toBe(false);
      expect(verdict.checks.find((c) => c.name === 'pool never oversold')).toMatchObject({
        ok: false,
        detail: expect.stringMatching(/held 1200 \+ committed 0 > capacity 1000/),
      });

      // One oversold sample during the run is enough to fail, even if the last snapshot is fine.
      const sampled = await checkInvariants(real, grants, [{ capacity: 1_000, held: 900, committed: 200 }]);
      expect(sampled.ok).toBe(false);

      const overLimit: SnapshotSource = {
        pool: () => real.pool(),
        lines: async () => (await real.lines()).map((l) => ({ ...l, drawn: 500 })),
      };
      const lineVerdict = await checkInvariants(overLimit, grants, []);
      expect(lineVerdict.checks.find((c) => c.name === 'every line within its limit')?.ok).toBe(false);
    },
  );
});
