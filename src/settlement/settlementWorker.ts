/**
 * Delivers committed reservations to the ledger. Delivery is at least once;
 * the effect is exactly once, because every outcome is recorded by a
 * state-checked script (a duplicate or re-driven job finds the reservation no
 * longer committed and does nothing). An unknown outcome is retried with
 * backoff; before giving up, the worker asks the ledger and reverses only
 * what the ledger confirms it never took. Still unknown: settlement_unknown,
 * for an operator to resolve.
 */
import type { Job, Queue } from 'bullmq';
import { startWatchedWorker, type WatchedWorker } from '../jobs/watchedWorker.js';
import type { QuotaEngine } from '../engine/quotaEngine.js';
import type { Reservation, SettlementOutcome } from '../engine/types.js';
import type { Logger } from '../logger.js';
import { isoTime } from '../wireFormat.js';
import type { Metrics } from '../metrics.js';
import type { BullConnections } from '../redis/topology.js';
import type { Keys } from '../redis/keys.js';
import type { LedgerClient, SettlementInstruction } from './ledgerClient.js';
import type { SettlementJobData } from './settlementQueue.js';

export interface SettlementWorkerOptions {
  bullmq: BullConnections;
  /** The settlement queue, watched so a worker that stops taking jobs is replaced (src/jobs/watchedWorker.ts). */
  queue: Queue<SettlementJobData>;
  keys: Keys;
  engine: Pick<QuotaEngine, 'getReservation' | 'recordSettlement'>;
  ledger: LedgerClient;
  logger: Logger;
  metrics: Metrics;
  concurrency: number;
  /** How long a job's lock lasts; a killed worker's job is picked up again after it. */
  lockDurationMs: number;
}

export function instructionFor(r: Reservation): SettlementInstruction {
  return {
    reservationId: r.reservationId,
    productId: r.productId,
    customerId: r.customerId,
    amount: r.committedAmount,
    committedAt: isoTime(r.committedAt ?? r.createdAt),
    metadata: r.metadata,
  };
}

export function createSettlementWorker(options: SettlementWorkerOptions) {
  const { engine, ledger, logger, metrics } = options;
  let worker: WatchedWorker | undefined;

  async function record(job: Job<SettlementJobData>, outcome: SettlementOutcome, reason: string) {
    const { productId, reservationId } = job.data;
    const result = await engine.recordSettlement(productId, reservationId, outcome, reason);
    const changed = result.ok && result.value.changed;
    metrics.settlement(outcome, changed);
    if (result.ok && changed && outcome === 'settled' && result.value.reservation.committedAt !== null) {
      metrics.settled((result.now - result.value.reservation.committedAt) / 1000);
    }
    const log = outcome === 'settled' ? logger.info.bind(logger) : logger.warn.bind(logger);
    log(
      { productId, reservationId, outcome, changed, reason: reason || undefined, attempt: job.attemptsMade + 1 },
      `settlement ${outcome}`,
    );
    return { outcome, changed };
  }

  async function process(job: Job<SettlementJobData>) {
    const { productId, reservationId } = job.data;
    const current = await engine.getReservation(productId, reservationId);
    if (!current.ok) return { skipped: current.code };
    if (current.value.status !== 'committed') return { skipped: current.value.status };

    const delivery = await ledger.deliver(instructionFor(current.value));
    metrics.settlementAttempt(delivery.kind);
    if (delivery.kind === 'settled') return record(job, 'settled', 'ledger accepted it');
    if (delivery.kind === 'rejected') return record(job, 'reversed', delivery.reason);

    await engine.recordSettlement(productId, reservationId, 'attempt', delivery.reason);
    const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    if (!lastAttempt) throw new Error(delivery.reason); // BullMQ retries after the backoff

    const lookup = await ledger.lookup(productId, reservationId);
    if (lookup.kind === 'settled') return record(job, 'settled', 'ledger confirms it received it');
    if (lookup.kind === 'absent')
      return record(job, 'reversed', `ledger confirms it never received it (last error: ${delivery.reason})`);
    return record(job, 'unknown', `${delivery.reason}; ${lookup.reason}`);
  }

  return {
    process,
    start() {
      worker = startWatchedWorker({
        queue: options.queue,
        process,
        connection: options.bullmq.worker,
        prefix: options.keys.queuePrefix(),
        concurrency: options.concurrency,
        lockMs: options.lockDurationMs,
        maxStalledCount: 10,
        onWorker: (w) => {
          w.on('error', (err) => logger.warn({ err }, 'settlement worker error'));
          w.on('failed', (job, err) =>
            logger.warn(
              { err: err.message, reservationId: job?.id, attempt: job?.attemptsMade },
              'settlement attempt failed',
            ),
          );
        },
        logger,
      });
    },
    async stop() {
      await worker?.close();
    },
  };
}
