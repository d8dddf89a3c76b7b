/**
 * The continuous invariant audit (CONTRACT.md invariant 3): a scheduled job,
 * one instance at a time, that recomputes every product's counters from its
 * reservation records and compares (lua/audit-product-11.lua). Exact, not
 * sampled, at any number of live records, in script calls of bounded work:
 *
 * - the pool: settled records (terminal, append-only in status:settled) are
 *   folded into a running sum once each; with few live records (held,
 *   committed, settlement_unknown: at most liveLimit) they are read in one
 *   call; with more, a pass compares the counters as they were at the
 *   instant it started, walking the live sets a chunk per call and
 *   correcting for what moved meanwhile from the events stream. A pass that
 *   lost events to the stream's cap is aborted (counted) and starts again;
 * - lines: each call checks a window of customers, each line exactly against
 *   all its records read through the per-customer index in that call.
 *
 * One run makes at most maxCallsPerProduct catch-up calls and maxPassCalls
 * pass calls per product; a pass not finished in a run goes on in the next.
 *
 * Results: the quota_audit_violations{product} gauge, the time of each
 * product's last completed pool comparison
 * (quota_audit_last_exact_comparison_timestamp_seconds, alerted when old),
 * aborted passes, and per product with a difference one error log line.
 */
import type { QuotaEngine } from '../engine/quotaEngine.js';
import {
  DEFAULT_PASS_OPTIONS,
  type AuditStep,
  type AuditStepOptions,
  type LineDifference,
  type PoolCheck,
  type StatusMismatch,
} from '../engine/auditStep.js';
import { createScheduledJob } from '../jobs/scheduledJob.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Keys } from '../redis/keys.js';
import type { BullConnections, RedisClient } from '../redis/topology.js';
import { forEachProduct } from '../redis/productIndex.js';

export const AUDIT_JOB = 'invariant-audit';

export interface AuditLimits extends Required<AuditStepOptions> {
  /** Catch-up calls (settled records) per product per run at most (catching up takes several runs beyond this). */
  maxCallsPerProduct: number;
  /** Pool-pass calls per product per run at most (a longer pass goes on in the next run). */
  maxPassCalls: number;
}

/**
 * Measured on a shared 2-core VM with Redis 7.0 (bench/audit-cost.mjs,
 * bench/audit-pass.ts): a settled record folded in, a live record walked or
 * a line record read each cost about 3-10 µs of Redis time, an event folded
 * about 2-5 µs. So a call stays near or under ~15 ms: a catch-up call folds
 * 1,000 settled records; a pass call folds up to 2,000 events and walks
 * 1,000 live records; the line window reads about 1,000 records. 100,000
 * live holds take a pass of ~110 calls.
 */
export const DEFAULT_AUDIT_LIMITS: Readonly<AuditLimits> = Object.freeze({
  settledBatch: 1_000,
  liveLimit: 1_000,
  lineWindow: 1_000,
  ...DEFAULT_PASS_OPTIONS,
  maxCallsPerProduct: 100,
  maxPassCalls: 1_000,
});

export interface InvariantAuditDeps {
  bullmq: BullConnections;
  redis: RedisClient;
  keys: Keys;
  /** `shards`: sharded products' transfers are audited too (both sides; credits without debits repaired). */
  engine: Pick<QuotaEngine, 'auditProduct'> & Partial<Pick<QuotaEngine, 'shards'>>;
  logger: Logger;
  metrics: Pick<Metrics, 'audit'>;
  intervalMs: number;
  limits?: Partial<AuditLimits>;
}

export type ProductAuditOutcome =
  | 'consistent' // compared; counters equal the records
  | 'violations' // compared (or records checked) and something differs
  | 'catching_up' // settled records still being folded in; not compared this run
  | 'comparing' // a pool pass is under way; it goes on next run
  | 'not_found' // listed in the product index, no pool
  | 'failed'; // the script call threw (Redis unreachable...)

export interface PoolDifference extends PoolCheck {
  difference: number;
}

export interface ProductAudit {
  productId: string;
  outcome: ProductAuditOutcome;
  /**
   * What the gauge shows: differing pool fields (last comparison) + line differences (held over one rotation) + status
   * mismatches.
   */
  violations: number;
  /** Pool fields that differ (this run's comparison). */
  pool: PoolDifference[];
  /** Lines that differ, found in this run's windows. */
  lines: LineDifference[];
  linesChecked: number;
  /** Customers whose records are too many to read in one bounded call. */
  linesUnchecked: number;
  mismatches: StatusMismatch[];
  mismatchCount: number;
  calls: number;
  /** Settled records folded in this run, and in all so far. */
  folded: number;
  settledCount: number;
  /** For catching_up: entries of status:settled. */
  settledTotal?: number;
  /** This run's pool comparison came from a pass: the instant it compared and its calls (over runs). */
  pass?: { startedAt: number; calls: number };
  /** Passes aborted in this run. */
  passesAborted: number;
  /** Last completed pool comparison (ms), null if never. */
  comparedAt: number | null;
  seconds: number;
  longestCallSeconds: number;
  /** The longest call's own time inside Redis (the script's clock), in seconds. */
  longestScriptSeconds: number;
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
  /** Pool differences of the last comparison (carried while catching up or mid-pass). */
  lastPoolDifferences: number;
  previousRotation: Map<string, LineDifference>;
  currentRotation: Map<string, LineDifference>;
  comparedAt: number | null;
  passesAborted: number | null;
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
      linesUnchecked: 0,
      mismatches: [],
      mismatchCount: 0,
      calls: 0,
      folded: 0,
      settledCount: 0,
      passesAborted: 0,
      comparedAt: null,
      seconds: 0,
      longestCallSeconds: 0,
      longestScriptSeconds: 0,
    };
    const mem = memory.get(productId) ?? {
      lastPoolDifferences: 0,
      previousRotation: new Map(),
      currentRotation: new Map(),
      comparedAt: null,
      passesAborted: null,
    };
    let step: AuditStep | undefined;
    let behindCalls = 0;
    let passCalls = 0;
    let compared: Extract<AuditStep, { kind: 'checked' }> | undefined;
    for (;;) {
      const callStarted = process.hrtime.bigint();
      step = await engine.auditProduct(productId, limits);
      audit.longestCallSeconds = Math.max(audit.longestCallSeconds, seconds(callStarted));
      audit.calls++;
      if (step.kind === 'product_not_found') break;
      audit.longestScriptSeconds = Math.max(audit.longestScriptSeconds, step.micros / 1e6);
      audit.folded += step.folded;
      audit.settledCount = step.settledCount;
      audit.comparedAt = step.comparedAt;
      audit.mismatchCount += step.mismatchCount;
      audit.mismatches.push(...step.mismatches.slice(0, 20 - audit.mismatches.length));
      if (mem.passesAborted !== null) audit.passesAborted += Math.max(0, step.passesAborted - mem.passesAborted);
      mem.passesAborted = step.passesAborted;
      if (step.reset) {
        logger.warn(
          { productId },
          `invariant audit: ${productId}: status:settled changed behind the ` +
            `checkpoint (a clock step?); settled sums rebuilt from zero`,
        );
      }
      if (step.kind === 'behind') {
        if (++behindCalls >= limits.maxCallsPerProduct) break;
        continue;
      }
      audit.lines.push(...step.lines);
      audit.linesChecked += step.linesChecked;
      audit.linesUnchecked += step.linesUnchecked;
      for (const d of step.lines) mem.currentRotation.set(`${d.customerId}\n${d.field}`, d);
      if (step.rotationDone) {
        mem.previousRotation = mem.currentRotation;
        mem.currentRotation = new Map();
      }
      if (step.kind === 'checked') {
        compared = step;
        break;
      }
      if (step.kind === 'pass_aborted') {
        logger.warn(
          { productId },
          `invariant audit: ${productId}: pool comparison pass aborted: the events it needed ` +
            `were trimmed from the stream before it read them; a new pass starts`,
        );
      }
      if (++passCalls >= limits.maxPassCalls) break;
    }
    audit.seconds = seconds(started);

    if (!step || step.kind === 'product_not_found') {
      memory.delete(productId);
      return { ...audit, outcome: 'not_found' };
    }
    memory.set(productId, mem);
    mem.comparedAt = audit.comparedAt;

    if (compared) {
      audit.pool = compared.pool
        .filter((c) => c.expected !== c.actual)
        .map((c) => ({ ...c, difference: c.actual - c.expected }));
      if (compared.pass) audit.pass = compared.pass;
      mem.lastPoolDifferences = audit.pool.length;
    } else if (step.kind === 'behind') {
      audit.settledTotal = step.settledTotal;
      logger.info(
        { productId, settledCount: step.settledCount, settledTotal: step.settledTotal, folded: audit.folded },
        `invariant audit: ${productId}: catching up on settled records ` +
          `(${step.settledCount} of ${step.settledTotal} folded in); compared once caught up`,
      );
    } else {
      logger.info(
        { productId, calls: passCalls },
        `invariant audit: ${productId}: pool comparison pass under way; it goes on next run`,
      );
    }
    // Not compared this run: what the last comparison found still stands.
    const heldLines = new Set([...mem.previousRotation.keys(), ...mem.currentRotation.keys()]);
    audit.violations = mem.lastPoolDifferences + heldLines.size + audit.mismatchCount;
    if (audit.linesUnchecked > 0) {
      logger.warn(
        { productId, linesUnchecked: audit.linesUnchecked },
        `invariant audit: ${productId}: ${audit.linesUnchecked} customer(s) have ` +
          `too many records to check their line in one bounded call`,
      );
    }
    const differs = audit.pool.length > 0 || audit.lines.length > 0 || audit.mismatchCount > 0;
    audit.outcome = differs
      ? 'violations'
      : compared
        ? 'consistent'
        : step.kind === 'behind'
          ? 'catching_up'
          : 'comparing';
    if (differs) logViolations(audit);
    return audit;
  }

  function logViolations(a: ProductAudit) {
    const signed = (n: number) => (n > 0 ? `+${n}` : String(n));
    const parts = [
      ...a.pool.map((d) => `pool.${d.field} expected ${d.expected} actual ${d.actual} (${signed(d.difference)})`),
      ...a.lines
        .slice(0, 20)
        .map(
          (d) =>
            `line ${d.customerId} ${d.field} expected ${d.expected} actual ` +
            `${d.actual} (${signed(d.actual - d.expected)})`,
        ),
    ];
    if (a.lines.length > 20) parts.push(`and ${a.lines.length - 20} more line differences`);
    if (a.mismatchCount > 0) parts.push(`${a.mismatchCount} records whose status disagrees with their status set`);
    logger.error(
      {
        productId: a.productId,
        pool: a.pool,
        lines: a.lines.slice(0, 100),
        lineDifferences: a.lines.length,
        mismatches: a.mismatches,
        mismatchCount: a.mismatchCount,
        pass: a.pass,
      },
      `invariant audit: product ${a.productId} counters differ from its reservation records: ${parts.join('; ')}`,
    );
  }

  /**
   * A sharded product's transfers (src/engine/shardedEngine.ts auditTransfers): what the check found
   * counts as violations of this run (logged), and each credit without its debit is undone at once.
   * Sub-pools (`<productId>~<suffix>` key ids) and unsharded products have none.
   */
  async function auditTransfers(productId: string): Promise<number> {
    if (!engine.shards || productId.includes('~')) return 0;
    const t = await engine.shards.auditTransfers(productId, { repair: true });
    if (t.found.length === 0) return 0;
    logger.error(
      { productId, transfers: t.found, repaired: t.repaired, remaining: t.violations },
      `invariant audit: product ${productId} sub-pool transfers do not balance: ${t.found.join('; ')}` +
        (t.repaired > 0 ? `; ${t.repaired} credit(s) without debit undone` : ''),
    );
    return t.found.length;
  }

  /** Audits every product once; sets the gauges; returns what it found. */
  async function auditOnce(): Promise<AuditReport> {
    const started = process.hrtime.bigint();
    const products: ProductAudit[] = [];
    const seen = new Set<string>();
    await forEachProduct(redis, keys, async (productId) => {
      seen.add(productId);
      try {
        const audit = await auditProduct(productId);
        const transferViolations = await auditTransfers(productId);
        audit.violations += transferViolations;
        if (transferViolations > 0 && audit.outcome !== 'not_found') audit.outcome = 'violations';
        products.push(audit);
      } catch (err) {
        logger.warn({ err, productId }, `invariant audit: ${productId}: audit call failed; the next run retries`);
        const mem = memory.get(productId);
        products.push({
          productId,
          outcome: 'failed',
          violations: mem?.lastPoolDifferences ?? 0,
          pool: [],
          lines: [],
          linesChecked: 0,
          linesUnchecked: 0,
          mismatches: [],
          mismatchCount: 0,
          calls: 0,
          folded: 0,
          settledCount: 0,
          passesAborted: 0,
          comparedAt: mem?.comparedAt ?? null,
          seconds: 0,
          longestCallSeconds: 0,
          longestScriptSeconds: 0,
        });
      }
    });
    for (const productId of memory.keys()) if (!seen.has(productId)) memory.delete(productId);
    const byProduct = new Map<string, { violations: number; comparedAt: number | null; passesAborted: number }>();
    for (const p of products) {
      if (p.outcome !== 'not_found')
        byProduct.set(p.productId, {
          violations: p.violations,
          comparedAt: p.comparedAt,
          passesAborted: p.passesAborted,
        });
    }
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
