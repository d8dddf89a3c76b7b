/**
 * The load test's verdict, from the service's own snapshots: the pool was
 * never oversold (every snapshot sampled during the run, and the last), no
 * line went over its limit, and the counters equal what the load test was
 * granted (holds it still has, amounts it committed). The snapshots come
 * through a SnapshotSource, so the check is the same code whatever reads them.
 */
import type { QuotaClient } from '@quota-allocator/client';

export interface PoolCounters {
  capacity: number;
  held: number;
  committed: number;
}

export interface LineCounters {
  customerId: string;
  limit: number;
  held: number;
  drawn: number;
}

export interface SnapshotSource {
  pool(): Promise<PoolCounters>;
  lines(): Promise<LineCounters[]>;
}

/** What the load test itself booked from the answers it got. */
export interface Grants {
  /** Held now by the load test (holds granted, not yet released or committed). */
  held: number;
  /** Committed by the load test. */
  committed: number;
  /** Of that, reversed since by the deployment's ledger (a rejected settlement returns the quota). */
  reversed?: number;
  /** Counters before the run (0 for a product the load test created). */
  baseline: { held: number; committed: number };
  /** Whether only this run's customers hold anything in the product (true for a product it created). */
  ownsProduct: boolean;
}

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface InvariantReport {
  ok: boolean;
  checks: Check[];
}

export async function checkInvariants(
  source: SnapshotSource,
  grants: Grants,
  samples: PoolCounters[],
): Promise<InvariantReport> {
  const pool = await source.pool();
  const lines = await source.lines();
  const checks: Check[] = [];

  const all = [...samples, pool];
  const oversold = all.filter((s) => s.held + s.committed > s.capacity || s.held < 0 || s.committed < 0);
  checks.push({
    name: 'pool never oversold',
    ok: oversold.length === 0,
    detail:
      oversold.length === 0
        ? `held + committed <= capacity in all ${all.length} snapshots (peak ` +
          `${Math.max(...all.map((s) => s.held + s.committed))} of ${pool.capacity})`
        : `${oversold.length} of ${all.length} snapshots oversold, e.g. held ${oversold[0]!.held} ` +
          `+ committed ${oversold[0]!.committed} > capacity ${oversold[0]!.capacity}`,
  });

  const over = lines.filter((l) => l.held + l.drawn > l.limit || l.held < 0 || l.drawn < 0);
  checks.push({
    name: 'every line within its limit',
    ok: over.length === 0,
    detail:
      over.length === 0
        ? `${lines.length} lines: held + drawn <= limit`
        : `${over.length} lines over their limit, e.g. ${over[0]!.customerId}: held ` +
          `${over[0]!.held} + drawn ${over[0]!.drawn} > limit ${over[0]!.limit}`,
  });

  const heldDelta = pool.held - grants.baseline.held;
  const committedDelta = pool.committed - grants.baseline.committed;
  const reversed = grants.reversed ?? 0;
  checks.push({
    name: 'pool counters equal the grants',
    ok: heldDelta === grants.held && committedDelta === grants.committed - reversed,
    detail:
      `held ${heldDelta} (granted and still held: ${grants.held}), committed ${committedDelta} (committed by the ` +
      `run: ${grants.committed}${reversed ? `, reversed by the ledger since: ${reversed}` : ''})`,
  });

  if (grants.ownsProduct) {
    const lineHeld = lines.reduce((sum, l) => sum + l.held, 0);
    const lineDrawn = lines.reduce((sum, l) => sum + l.drawn, 0);
    checks.push({
      name: 'lines add up to the pool',
      ok: lineHeld === pool.held && lineDrawn === pool.committed,
      detail: `lines: held ${lineHeld}, drawn ${lineDrawn}; pool: held ${pool.held}, committed ${pool.committed}`,
    });
  }
  return { ok: checks.every((c) => c.ok), checks };
}

/** Snapshots read through the published API (GET of the product and of each line). */
export function apiSnapshotSource(client: QuotaClient, productId: string, customerIds: string[]): SnapshotSource {
  return {
    async pool() {
      const answer = await client.getProduct(productId);
      if (!answer.ok) throw new Error(`cannot read ${productId}: ${answer.problem.code}`);
      const { capacity, held, committed } = answer.value;
      return { capacity, held, committed };
    },
    async lines() {
      const lines: LineCounters[] = [];
      // A few at a time: enough to be quick, few enough not to load the deployment.
      for (let i = 0; i < customerIds.length; i += 20) {
        const answers = await Promise.all(customerIds.slice(i, i + 20).map((c) => client.getLine(productId, c)));
        for (const answer of answers) {
          if (!answer.ok) throw new Error(`cannot read a line of ${productId}: ${answer.problem.code}`);
          const { customerId, limit, held, drawn } = answer.value;
          lines.push({ customerId, limit, held, drawn });
        }
      }
      return lines;
    },
  };
}
