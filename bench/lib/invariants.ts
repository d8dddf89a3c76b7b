/**
 * The invariants checked after every scenario, from outside the service
 * (Redis read directly):
 *
 *   pool-never-oversold   held + committed <= capacity at every sampled
 *                         instant and at the end; no counter negative
 *   lines-within-limit    held + drawn <= limit for every line
 *   counters-equal-grants each pool's and line's counters equal what the
 *                         answers granted (and committed, where the scenario
 *                         commits)
 *   audit-clean           the counters equal what the reservation records
 *                         add up to, and each status index holds as many ids
 *                         as there are records in that status
 *   answers-as-expected   every answer was a 201 matching its request or an
 *                         expected refusal, and none stayed unknown
 *
 * Each check lists its first few failures; any failure fails the run.
 */
import type { Keys } from '../../src/redis/keys.js';
import type { RedisClient } from '../../src/redis/topology.js';
import { lineBooks } from '../../test/support/books.js';
import { auditRecords, readLines, readPools, statusIndexSizes, type RecordAudit } from './redisState.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface ExpectedCounters {
  held: number;
  committed?: number;
  lineHeld: Map<string, number>;
  lineDrawn?: Map<string, number>;
}

const MAX_LISTED = 5;

class Failures {
  list: string[] = [];
  count = 0;
  add(s: string) {
    this.count++;
    if (this.list.length < MAX_LISTED) this.list.push(s);
  }
  check(name: string, okDetail: string): Check {
    return this.count === 0
      ? { name, ok: true, detail: okDetail }
      : {
          name,
          ok: false,
          detail: `${this.count} failure(s): ${this.list.join('; ')}${this.count > this.list.length ? '; …' : ''}`,
        };
  }
}

export interface ProductCheckInput {
  redis: RedisClient;
  keys: Keys;
  productIds: string[];
  /** Per product; products missing here are not compared with answers. */
  expected: Map<string, ExpectedCounters>;
  /** What the pool sampler saw over capacity during the load. */
  sampledOvers: string[];
  samples: number;
  /** Problems with the answers themselves (from the grant book). */
  unexpectedAnswers: string[];
}

export interface ProductCheckResult {
  checks: Check[];
  audits: Map<string, RecordAudit>;
}

export async function checkProducts(input: ProductCheckInput): Promise<ProductCheckResult> {
  const { redis, keys, productIds, expected } = input;
  const pools = await readPools(redis, keys, productIds);
  const oversold = new Failures();
  const lines = new Failures();
  const counters = new Failures();
  const audit = new Failures();
  const audits = new Map<string, RecordAudit>();
  let lineCount = 0;
  let recordCount = 0;
  const allLines = await readLines(redis, keys, productIds);
  const allAudits = await auditRecords(redis, keys, productIds, true);

  for (const o of input.sampledOvers) oversold.add(`sampled during the load: ${o}`);
  for (const productId of productIds) {
    const pool = pools.get(productId)!;
    if (
      pool.held + pool.committed > pool.capacity ||
      pool.held < 0 ||
      pool.committed < 0 ||
      pool.settled < 0 ||
      pool.settled > pool.committed
    ) {
      oversold.add(
        `${productId}: held ${pool.held} + committed ${pool.committed} ` +
          `(settled ${pool.settled}) vs capacity ${pool.capacity}`,
      );
    }

    const productLines = allLines.get(productId)!;
    lineCount += productLines.size;
    for (const [c, l] of productLines) {
      if (l.held + l.drawn > l.limit || l.held < 0 || l.drawn < 0 || l.settling < 0 || l.settling > l.drawn) {
        lines.add(`${productId}/${c}: held ${l.held} + drawn ${l.drawn} (settling ${l.settling}) vs limit ${l.limit}`);
      }
    }

    const e = expected.get(productId);
    if (e) {
      if (pool.held !== e.held) counters.add(`${productId}: pool held ${pool.held}, answers granted ${e.held}`);
      if (e.committed !== undefined && pool.committed !== e.committed)
        counters.add(`${productId}: pool committed ${pool.committed}, answers committed ${e.committed}`);
      for (const [c, l] of productLines) {
        const heldWanted = e.lineHeld.get(c) ?? 0;
        if (l.held !== heldWanted)
          counters.add(`${productId}/${c}: line held ${l.held}, answers granted ${heldWanted}`);
        if (e.lineDrawn) {
          const drawnWanted = e.lineDrawn.get(c) ?? 0;
          if (l.drawn !== drawnWanted)
            counters.add(`${productId}/${c}: line drawn ${l.drawn}, answers committed ${drawnWanted}`);
        }
      }
      for (const c of e.lineHeld.keys())
        if (!productLines.has(c)) counters.add(`${productId}/${c}: granted, but the line is gone`);
    }

    const a = allAudits.get(productId)!;
    audits.set(productId, a);
    recordCount += a.records;
    if (a.held !== pool.held) audit.add(`${productId}: pool held ${pool.held}, records say ${a.held}`);
    if (a.committed !== pool.committed)
      audit.add(`${productId}: pool committed ${pool.committed}, records say ${a.committed}`);
    if (a.settled !== pool.settled) audit.add(`${productId}: pool settled ${pool.settled}, records say ${a.settled}`);
    for (const [c, l] of productLines) {
      const recorded = lineBooks(a, c); // no repayments in the bench: drawn is every committed amount
      if (recorded.held !== l.held) audit.add(`${productId}/${c}: line held ${l.held}, records say ${recorded.held}`);
      if (recorded.committed !== l.drawn)
        audit.add(`${productId}/${c}: line drawn ${l.drawn}, records say ${recorded.committed}`);
    }
    const index = await statusIndexSizes(redis, keys, productId);
    for (const [status, size] of Object.entries(index)) {
      if ((a.byStatus[status] ?? 0) !== size)
        audit.add(
          `${productId}: status:${status} index has ${size} ids, records in that status: ${a.byStatus[status] ?? 0}`,
        );
    }
  }

  const answers = new Failures();
  for (const u of input.unexpectedAnswers) answers.add(u);

  const n = productIds.length;
  return {
    audits,
    checks: [
      oversold.check(
        'pool-never-oversold',
        `${n} pool(s); ${input.samples} samples during the load and the end state within capacity`,
      ),
      lines.check('lines-within-limit', `${lineCount} lines within their limits`),
      counters.check(
        'counters-equal-grants',
        expected.size > 0 ? `pool and line counters equal what the answers granted` : 'not compared',
      ),
      audit.check(
        'audit-clean',
        `${recordCount} reservation records add up to every pool and line counter; status indexes agree`,
      ),
      answers.check('answers-as-expected', 'every answer a matching 201 or an expected refusal; none left unknown'),
    ],
  };
}
