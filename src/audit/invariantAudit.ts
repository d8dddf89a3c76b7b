/**
 * The continuous invariant audit (CONTRACT.md invariant 3): a scheduled job,
 * one instance at a time, that recomputes every product's counters from its
 * reservation records and compares (lua/audit-product-8.lua). Incremental,
 * not sampled:
 *
 * - the pool is compared exactly, at one instant, on every run: settled
 *   records (terminal, append-only in status:settled) are folded into running
 *   sums once each, and the live records (held, committed,
 *   settlement_unknown) are read in full;
 * - lines are compared exactly too, a rotating window of them per run, so
 *   each line is checked once every ceil(customers / lineWindow) runs.
 *
 * Cost stays bounded however many records a product has: one script call
 * reads at most settledBatch + liveLimit + ~lineWindow records and lines,
 * and one run makes at most maxCallsPerProduct calls per product. A product
 * catching up on settled records (the first run over an existing store)
 * is compared when caught up; one whose live sets exceed liveLimit is not
 * compared that run (logged as such).
 *
 * Results: the quota_audit_violations{product} gauge and, per product with a
 * difference, one error log line naming the product and each difference.
 */
import type { QuotaEngine } from '../engine/quotaEngine.js';
import { createScheduledJob } from '../jobs/scheduledJob.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Keys } from '../redis/keys.js';
import type { BullConnections, RedisClient } from '../redis/topology.js';
import { forEachProduct } from '../redis/productIndex.js';
import type { AuditStep, AuditStepOptions, LineDifference, PoolCheck, StatusMismatch } from './auditStep.js';

export const AUDIT_JOB = 'invariant-audit';

export interface AuditLimits extends AuditStepOptions {
  /** Script calls per product per run at most (catching up takes several runs beyond this). */
  maxCallsPerProduct: number;
}

/**
 * Chosen from bench/audit-cost.mjs (1M settled records, 100k customers; a
 * shared 2-core VM, Redis 7.0): one settled record folded in, one live record
 * or one line compared each cost about 5-15 µs of Redis time. So a catch-up
 * call (N = 1,000) holds Redis about 10 ms; a comparison call reads at most
 * N + L + W = 1,000 + 2,000 + 1,000 records and lines (a few tens of ms at
 * worst, well under the API connection's 1.5 s command timeout); a run folds
 * at most 100 x 1,000 settled records per product.
 */
export const DEFAULT_AUDIT_LIMITS: Readonly<AuditLimits> = Object.freeze({
  settledBatch: 1_000,
  liveLimit: 2_000,
  lineWindow: 1_000,
  maxCallsPerProduct: 100,
});

export interface InvariantAuditDeps {
  bullmq: BullConnections;
  redis: RedisClient;
  keys: Keys;
  engine: Pick<QuotaEngine, 'auditProduct'>;
  logger: Logger;
  metrics: Pick<Metrics, 'audit'>;
  intervalMs: number;
  limits?: Partial<AuditLimits>;
}

export type ProductAuditOutcome =
  | 'consistent' // compared; counters equal the records
  | 'violations' // compared (or records checked) and something differs
  | 'catching_up' // settled records still being folded in; not compared this run
  | 'too_busy' // live sets over liveLimit; not compared this run
  | 'not_found' // listed in the product index, no pool
  | 'failed'; // the script call threw (Redis unreachable...)

export interface PoolDifference extends PoolCheck {
  difference: number;
}

export interface ProductAudit {
  productId: string;
  outcome: ProductAuditOutcome;
  /** What the gauge shows: differing pool fields + line differences (held over one rotation) + status mismatches. */
  violations: number;
  /** Pool fields that differ (this run's comparison). */
  pool: PoolDifference[];
  /** Lines that differ, found in this run's window. */
  lines: LineDifference[];
  linesChecked: number;
  mismatches: StatusMismatch[];
  mismatchCount: number;
  calls: number;
  /** Settled records folded in this run, and in all so far. */
  folded: number;
  settledCount: number;
  /** For catching_up: entries of status:settled; for too_busy: live record counts. */
  settledTotal?: number;
  live?: { held: number; committed: number; settlement_unknown: number };
  seconds: number;
  longestCallSeconds: number;
}

export interface AuditReport {
  products: ProductAudit[];
  /** Sum of every product's violations. */
  violations: number;
  seconds: number;
}

/**
 * Line differences are found a window at a time. So that the gauge does not
 * drop a line's difference as soon as the window moves on, a product's line
 * differences count until a whole rotation has gone by without them.
 */
interface ProductMemory {
  /** Violations of the last compared run (carried while catching up or too busy). */
  lastViolations: number;
  previousRotation: Map<string, LineDifference>;
  currentRotation: Map<string, LineDifference>;
}

export function createInvariantAudit(deps: InvariantAuditDeps) {
  const { redis, keys, engine, logger, metrics } = deps;
  const limits: AuditLimits = { ...DEFAULT_AUDIT_LIMITS, ...deps.limits };
  const memory = new Map<string, ProductMemory>();

  async function auditProduct(productId: string): Promise<ProductAudit> {
    const started = process.hrtime.bigint();
    const audit: ProductAudit = {
      productId,
      outcome: 'consistent',
      violations: 0,
      pool: [],
      lines: [],
      linesChecked: 0,
      mismatches: [],
      mismatchCount: 0,
      calls: 0,
      folded: 0,
      settledCount: 0,
      seconds: 0,
      longestCallSeconds: 0,
    };
    let step: AuditStep | undefined;
    while (audit.calls < limits.maxCallsPerProduct) {
      const callStarted = process.hrtime.bigint();
      step = await engine.auditProduct(productId, limits);
      audit.longestCallSeconds = Math.max(audit.longestCallSeconds, seconds(callStarted));
      audit.calls++;
      if (step.kind === 'product_not_found') break;
      audit.folded += step.folded;
      audit.settledCount = step.settledCount;
      audit.mismatchCount += step.mismatchCount;
      audit.mismatches.push(...step.mismatches.slice(0, 20 - audit.mismatches.length));
      if (step.reset) {
        logger.warn({ productId }, `invariant audit: ${productId}: status:settled changed behind the checkpoint (a clock step?); settled sums rebuilt from zero`);
      }
      if (step.kind !== 'behind') break;
    }
    audit.seconds = seconds(started);

    const mem = memory.get(productId) ?? { lastViolations: 0, previousRotation: new Map(), currentRotation: new Map() };
    if (!step || step.kind === 'product_not_found') {
      memory.delete(productId);
      return { ...audit, outcome: 'not_found' };
    }
    memory.set(productId, mem);

    if (step.kind === 'checked') {
      audit.pool = step.pool.filter((c) => c.expected !== c.actual).map((c) => ({ ...c, difference: c.actual - c.expected }));
      audit.lines = step.lines;
      audit.linesChecked = step.linesChecked;
      for (const d of step.lines) mem.currentRotation.set(`${d.customerId}\n${d.field}`, d);
      if (step.rotationDone) {
        mem.previousRotation = mem.currentRotation;
        mem.currentRotation = new Map();
      }
      const heldLines = new Set([...mem.previousRotation.keys(), ...mem.currentRotation.keys()]);
      mem.lastViolations = audit.pool.length + heldLines.size;
      audit.violations = mem.lastViolations + audit.mismatchCount;
    } else {
      // Not compared this run: what the last comparison found still stands.
      audit.violations = mem.lastViolations + audit.mismatchCount;
      if (step.kind === 'behind') {
        audit.settledTotal = step.settledTotal;
        logger.info(
          { productId, settledCount: step.settledCount, settledTotal: step.settledTotal, folded: audit.folded },
          `invariant audit: ${productId}: catching up on settled records (${step.settledCount} of ${step.settledTotal} folded in); compared once caught up`,
        );
      } else {
        audit.live = step.live;
        const live = step.live.held + step.live.committed + step.live.settlement_unknown;
        logger.warn(
          { productId, live: step.live, liveLimit: step.liveLimit },
          `invariant audit: ${productId}: exact comparison skipped this run: ${live} live records (held ${step.live.held}, committed ${step.live.committed}, settlement_unknown ${step.live.settlement_unknown}) exceed the limit of ${step.liveLimit}`,
        );
      }
    }
    const differs = audit.pool.length > 0 || audit.lines.length > 0 || audit.mismatchCount > 0;
    audit.outcome = differs ? 'violations' : step.kind === 'checked' ? 'consistent' : step.kind === 'behind' ? 'catching_up' : 'too_busy';
    if (differs) logViolations(audit);
    return audit;
  }

  function logViolations(a: ProductAudit) {
    const signed = (n: number) => (n > 0 ? `+${n}` : String(n));
    const parts = [
      ...a.pool.map((d) => `pool.${d.field} expected ${d.expected} actual ${d.actual} (${signed(d.difference)})`),
      ...a.lines.slice(0, 20).map((d) => `line ${d.customerId} ${d.field} expected ${d.expected} actual ${d.actual} (${signed(d.actual - d.expected)})`),
    ];
    if (a.lines.length > 20) parts.push(`and ${a.lines.length - 20} more line differences`);
    if (a.mismatchCount > 0) parts.push(`${a.mismatchCount} records whose status disagrees with their status set`);
    logger.error(
      { productId: a.productId, pool: a.pool, lines: a.lines.slice(0, 100), lineDifferences: a.lines.length, mismatches: a.mismatches, mismatchCount: a.mismatchCount },
      `invariant audit: product ${a.productId} counters differ from its reservation records: ${parts.join('; ')}`,
    );
  }

  /** Audits every product once; sets the gauge; returns what it found. */
  async function auditOnce(): Promise<AuditReport> {
    const started = process.hrtime.bigint();
    const products: ProductAudit[] = [];
    const seen = new Set<string>();
    await forEachProduct(redis, keys, async (productId) => {
      seen.add(productId);
      try {
        products.push(await auditProduct(productId));
      } catch (err) {
        logger.warn({ err, productId }, `invariant audit: ${productId}: audit call failed; the next run retries`);
        const carried = memory.get(productId)?.lastViolations ?? 0;
        products.push({
          productId, outcome: 'failed', violations: carried, pool: [], lines: [], linesChecked: 0, mismatches: [],
          mismatchCount: 0, calls: 0, folded: 0, settledCount: 0, seconds: 0, longestCallSeconds: 0,
        });
      }
    });
    for (const productId of memory.keys()) if (!seen.has(productId)) memory.delete(productId);
    const byProduct = new Map<string, number>();
    for (const p of products) if (p.outcome !== 'not_found') byProduct.set(p.productId, p.violations);
    metrics.audit(byProduct);
    return { products, violations: products.reduce((sum, p) => sum + p.violations, 0), seconds: seconds(started) };
  }

  // Made at start(), so an audit used only through auditOnce() opens no queue connection.
  let job: ReturnType<typeof createScheduledJob> | undefined;
  return {
    auditOnce,
    limits,
    async start() {
      job = createScheduledJob({
        name: AUDIT_JOB,
        bullmq: deps.bullmq,
        prefix: keys.queuePrefix(),
        everyMs: deps.intervalMs,
        logger,
        run: async () => {
          const report = await auditOnce();
          return { products: report.products.length, violations: report.violations, seconds: report.seconds };
        },
      });
      await job.start();
    },
    async stop() {
      await job?.stop();
    },
  };
}

function seconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

export type InvariantAudit = ReturnType<typeof createInvariantAudit>;
