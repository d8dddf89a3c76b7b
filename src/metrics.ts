/**
 * One Prometheus registry. Names: quota_ prefix, base units, _total on
 * counters; labels bounded (route template, outcome code), never ids.
 * Counters are created at zero for every known label value, so every series
 * exists from the first scrape.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DECISION_OPERATIONS, type DecisionOperation } from './engine/quotaEngine.js';
import { scriptCodesOf } from './errors/catalogue.js';

/** Each decision's result labels: OK and the codes its script can answer (from the error catalogue). */
const OUTCOMES = Object.fromEntries(DECISION_OPERATIONS.map((op) => [op, ['OK', ...scriptCodesOf(op)]])) as Record<
  DecisionOperation,
  string[]
>;

/** Sources of text in Prometheus format to append to a scrape (BullMQ's own queue metrics). */
export type ExtraMetrics = () => Promise<string>;

const EXTRA_DEADLINE_MS = 1_000;

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** quota_http_request_duration_seconds' bounds (s); the hot-path bench buckets the bare app's latencies alike. */
export const HTTP_DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const extras: ExtraMetrics[] = [];

  const decisions = new Counter({
    name: 'quota_decisions_total',
    help: 'Engine decisions by operation and result code (OK or the refusal code)',
    labelNames: ['operation', 'result'] as const,
    registers: [registry],
  });
  for (const op of DECISION_OPERATIONS) for (const result of OUTCOMES[op]) decisions.inc({ operation: op, result }, 0);

  const replays = new Counter({
    name: 'quota_idempotent_replays_total',
    help: 'Answers replayed from an idempotency record',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  for (const op of ['reserve', 'repay']) replays.inc({ operation: op }, 0);

  const httpDuration = new Histogram({
    name: 'quota_http_request_duration_seconds',
    help: 'HTTP request duration by route template, method and status class',
    labelNames: ['route', 'method', 'status_class'] as const,
    buckets: HTTP_DURATION_BUCKETS,
    registers: [registry],
  });

  const reclaimed = new Counter({
    name: 'quota_expired_holds_reclaimed_total',
    help:
      'Expired holds returned to their pool and line, by the script that returned them ' +
      '(reclaim-expired: the background sweeper; others: lazily inside a call)',
    labelNames: ['script'] as const,
    registers: [registry],
  });
  reclaimed.inc({ script: 'reclaim-expired' }, 0);

  const settlementOutcomes = new Counter({
    name: 'quota_settlement_outcomes_total',
    help: 'Settlement outcomes recorded (changed=false: a duplicate found it already recorded)',
    labelNames: ['outcome', 'changed'] as const,
    registers: [registry],
  });
  for (const outcome of ['settled', 'reversed', 'unknown']) {
    for (const changed of ['true', 'false']) settlementOutcomes.inc({ outcome, changed }, 0);
  }
  const settlementAttempts = new Counter({
    name: 'quota_settlement_attempts_total',
    help: 'Deliveries to the ledger by what the ledger answered',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of ['settled', 'rejected', 'unknown']) settlementAttempts.inc({ result }, 0);
  const relayed = new Counter({
    name: 'quota_settlement_relayed_total',
    help: 'Committed reservations the outbox relay found without a live settlement job',
    registers: [registry],
  });
  relayed.inc(0);
  const fed = new Counter({
    name: 'quota_settlement_feed_total',
    help: 'Committed reservations the settlement feed added to the settlement queue, by result (failed: read again)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of ['queued', 'failed']) fed.inc({ result }, 0);
  // Sharded products (src/engine/shardedEngine.ts): quota moved between sub-pools, reserves that borrowed.
  const shardTransfers = new Counter({
    name: 'quota_shard_transfers_total',
    help: 'Quota transfers credited between sub-pools of sharded products, by why they moved',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of ['borrow', 'rebalance', 'capacity', 'recovery']) shardTransfers.inc({ reason }, 0);
  const shardBorrows = new Counter({
    name: 'quota_shard_borrows_total',
    help: 'Reserves of sharded products that needed quota moved to their sub-pool, by outcome',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  for (const outcome of ['granted', 'refused']) shardBorrows.inc({ outcome }, 0);

  const scriptDuration = new Histogram({
    name: 'quota_script_duration_seconds',
    help: 'Lua script call duration as the service sees it (round trip included), by script',
    labelNames: ['script'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [registry],
  });
  const settlementLatency = new Histogram({
    name: 'quota_settlement_latency_seconds',
    help: 'From commit to settled, for reservations this instance settled',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers: [registry],
  });
  const auditViolations = new Gauge({
    name: 'quota_audit_violations',
    help: 'Counter mismatches the last invariant audit found, by product (0: consistent)',
    labelNames: ['product'] as const,
    registers: [registry],
  });
  const auditRuns = new Counter({
    name: 'quota_audit_runs_total',
    help: 'Invariant audit runs completed by this instance',
    registers: [registry],
  });
  auditRuns.inc(0);
  const auditLastComparison = new Gauge({
    name: 'quota_audit_last_exact_comparison_timestamp_seconds',
    help: "When the invariant audit last completed an exact comparison of the product's pool (Redis clock; 0: never)",
    labelNames: ['product'] as const,
    registers: [registry],
  });
  const auditPassesAborted = new Counter({
    name: 'quota_audit_passes_aborted_total',
    help: 'Pool comparison passes aborted because the events they needed were trimmed from the stream, by product',
    labelNames: ['product'] as const,
    registers: [registry],
  });

  return {
    registry,
    /** The whole scrape: this registry, then the extras (BullMQ's queue metrics). */
    async scrape(): Promise<string> {
      // An extra that cannot answer (Redis hung) is left out rather than hang the scrape.
      const parts = await Promise.all([
        registry.metrics(),
        ...extras.map((extra) => withDeadline(extra(), EXTRA_DEADLINE_MS).catch(() => '')),
      ]);
      // Every part ends with a newline, as strict parsers (promtool, Telegraf) require.
      return parts.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
    },
    addExtra(extra: ExtraMetrics) {
      extras.push(extra);
    },
    script(name: string, seconds: number) {
      scriptDuration.observe({ script: name }, seconds);
    },
    settled(latencySeconds: number) {
      settlementLatency.observe(Math.max(0, latencySeconds));
    },
    audit(byProduct: Map<string, { violations: number; comparedAt: number | null; passesAborted: number }>) {
      auditViolations.reset();
      auditLastComparison.reset();
      for (const [product, p] of byProduct) {
        auditViolations.set({ product }, p.violations);
        auditLastComparison.set({ product }, (p.comparedAt ?? 0) / 1000);
        auditPassesAborted.inc({ product }, p.passesAborted);
      }
      auditRuns.inc();
    },
    settlement(outcome: string, changed: boolean) {
      settlementOutcomes.inc({ outcome, changed: String(changed) });
    },
    settlementAttempt(result: string) {
      settlementAttempts.inc({ result });
    },
    relayed(count: number) {
      relayed.inc(count);
    },
    settlementFeed(result: string, count: number) {
      fed.inc({ result }, count);
    },
    /** The engine's shardEvents (sharded products). */
    shardEvents: {
      onTransfer: (_productId: string, _amount: number, reason: 'borrow' | 'rebalance' | 'capacity' | 'recovery') =>
        shardTransfers.inc({ reason }),
      onBorrow: (_productId: string, outcome: 'granted' | 'refused') => shardBorrows.inc({ outcome }),
    },
    /** The engine's onDecision. */
    decision(operation: DecisionOperation, result: string, replayed: boolean) {
      decisions.inc({ operation, result });
      if (replayed) replays.inc({ operation });
    },
    observeHttp(route: string, method: string, status: number, seconds: number) {
      httpDuration.observe({ route, method, status_class: `${Math.floor(status / 100)}xx` }, seconds);
    },
    holdsExpired(script: string, count: number) {
      reclaimed.inc({ script }, count);
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
