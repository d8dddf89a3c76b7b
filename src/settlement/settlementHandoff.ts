/**
 * The API's hand-off of committed reservations to the settlement queue.
 *
 * The commit script makes a commit durable and writes its outbox entry in the
 * same atomic step, so the outbox relay would settle it even if this hand-off
 * never happened; the hand-off only shortens the way to the ledger. The
 * commit's answer therefore does not wait for it (issue 11: the wait cost a
 * second Redis round trip on every commit). Commits answered in the same turn
 * of the event loop are queued together, one `addBulk` (one round trip) for
 * the lot. While the queue is slow or down, at most `maxPending` reservations
 * wait here or on the wire; beyond that they are skipped and left to the
 * relay, so a Redis outage cannot grow this process's memory.
 */
import type { Logger } from '../logger.js';

export interface HandoffJob {
  productId: string;
  reservationId: string;
}

export type HandoffResult = 'queued' | 'failed' | 'skipped';

export interface SettlementHandoffOptions {
  /** Adds the jobs to the settlement queue (job id = reservation id, so a duplicate is a no-op). */
  addBulk(jobs: HandoffJob[]): Promise<unknown>;
  logger: Logger;
  /** Counts each reservation handed off, by what became of it. */
  count(result: HandoffResult, n: number): void;
  /** Reservations waiting or being added at most; more are left to the outbox relay. */
  maxPending: number;
}

export interface SettlementHandoff {
  /** Queues the reservation's settlement soon; returns at once and never throws. */
  handOff(productId: string, reservationId: string): void;
  /** Sends what is waiting and resolves once every add sent so far has finished (graceful shutdown). */
  drain(): Promise<void>;
}

export function createSettlementHandoff(options: SettlementHandoffOptions): SettlementHandoff {
  const { logger, count, maxPending } = options;
  let batch = new Map<string, HandoffJob>();
  let sending = 0;
  const inFlight = new Set<Promise<void>>();

  const flush = () => {
    if (batch.size === 0) return;
    const jobs = [...batch.values()];
    batch = new Map();
    sending += jobs.length;
    const added: Promise<void> = options.addBulk(jobs).then(
      () => count('queued', jobs.length),
      (err: unknown) => {
        count('failed', jobs.length);
        logger.warn(
          { err, reservations: jobs.length, first: jobs[0] },
          'settlement enqueue failed; the outbox relay will pick these up',
        );
      },
    );
    inFlight.add(added);
    void added.finally(() => {
      sending -= jobs.length;
      inFlight.delete(added);
    });
  };

  return {
    handOff(productId, reservationId) {
      if (batch.has(reservationId)) return;
      if (batch.size + sending >= maxPending) return count('skipped', 1);
      batch.set(reservationId, { productId, reservationId });
      // After this turn's other answers (I/O callbacks run before setImmediate's): one add for all of them.
      if (batch.size === 1) setImmediate(flush);
    },
    async drain() {
      flush();
      await Promise.all([...inFlight]);
    },
  };
}
