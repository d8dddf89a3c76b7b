/**
 * Drains one product's webhook outbox per job, in stream order: a batch of
 * entries is grouped by subject (a reservation, a line, the product), each
 * subject's events are delivered one after the other (so they arrive in the
 * order they happened), different subjects side by side (WEBHOOK_CONCURRENCY).
 * An entry is acknowledged only after its 2xx; after a failure the rest of
 * that subject waits, and the job puts itself back as delayed (backoff on its
 * runs in a row without progress, not on its age, so a long drain through a
 * flaky receiver keeps short pauses): the next run reads the unacknowledged
 * entries first, in order. Delivery is at
 * least once (a 2xx lost with a killed worker is sent again); the event id is
 * the same every time, for the consumer to dedupe.
 */
import { DelayedError, type Job, type Queue } from 'bullmq';
import { startWatchedWorker, type WatchedWorker } from '../jobs/watchedWorker.js';
import type { Logger } from '../logger.js';
import type { Keys } from '../redis/keys.js';
import type { BullConnections } from '../redis/topology.js';
import type { Outcome, PoolSnapshot } from '../engine/types.js';
import { eventOf, expiredReservationOf, fieldsOf, isProductEvent, type PendingEvent } from './webhookEvents.js';
import type { WebhookMetrics } from './webhookMetrics.js';
import type { WebhookOutbox } from './webhookOutbox.js';
import { webhookBackoffMs, type WebhookJobData } from './webhookQueue.js';
import type { WebhookSender } from './webhookSender.js';

const BATCH = 200;

export interface WebhookWorkerOptions {
  bullmq: BullConnections;
  /** The drain queue, watched so a worker that stops taking jobs is replaced (src/jobs/watchedWorker.ts). */
  queue: Queue<WebhookJobData>;
  keys: Keys;
  outbox: WebhookOutbox;
  send: WebhookSender;
  logger: Logger;
  metrics: WebhookMetrics;
  /** Subjects of one product delivered side by side. */
  concurrency: number;
  /** Drains (products) in flight per worker process. */
  products: number;
  backoffMs: number;
  /** A drain's lock; a killed worker's drain comes back (stalled) after it. */
  lockDurationMs: number;
  /**
   * A sharded product's snapshot as the API answers it (engine.readPool), null for an unsharded product: a sharded
   * product's `product.*` events show it (src/webhooks/webhookEvents.ts, productEventData). Without it they show
   * what sub-pool 0 recorded.
   */
  shardedProduct?: (productId: string) => Promise<Outcome<PoolSnapshot> | null>;
}

export function createWebhookWorker(options: WebhookWorkerOptions) {
  const { outbox, send, logger, metrics } = options;
  let worker: WatchedWorker | undefined;

  /** The events of a batch, in order; acknowledges at once what needs no delivery. */
  async function eventsOf(productId: string, entries: [string, string[] | null][]): Promise<PendingEvent[]> {
    const parsed = entries.map(([id, flat]) => ({ id, fields: flat ? fieldsOf(flat) : null }));
    const lost = parsed.filter((e) => e.fields === null).map((e) => e.id);
    if (lost.length > 0) {
      metrics.lost(lost.length);
      logger.error(
        { productId, entries: lost },
        'webhook outbox entries were trimmed from the events stream before delivery',
      );
    }
    const expiredIds = parsed.map((e) => (e.fields ? expiredReservationOf(e.fields) : undefined));
    const records = await outbox.records(
      productId,
      expiredIds.filter((id): id is string => id !== undefined),
    );
    // A sharded product's product.* events: the product read once for the batch, as it is at this delivery.
    const read = parsed.some((e) => e.fields && isProductEvent(productId, e.fields))
      ? await options.shardedProduct?.(productId)
      : null;
    const product = read?.ok ? read.value : undefined;
    if (read && !read.ok) logger.warn({ productId, code: read.code }, 'webhook: product not readable; sub-pool 0 data');
    let r = 0;
    const events: PendingEvent[] = [];
    const skip: string[] = [...lost];
    parsed.forEach((e, i) => {
      if (!e.fields) return;
      const record = expiredIds[i] !== undefined ? records[r++] : undefined;
      const event = eventOf(productId, e.id, e.fields, record, product);
      if (event) events.push(event);
      else skip.push(e.id);
    });
    await outbox.ack(productId, skip);
    return events;
  }

  /** Delivers a subject's events in order; stops at its first failure. */
  async function deliverSubject(
    productId: string,
    events: PendingEvent[],
  ): Promise<{ delivered: number; complete: boolean }> {
    let delivered = 0;
    for (const e of events) {
      const result = await send(e.event);
      metrics.delivery(result.outcome);
      if (result.outcome !== 'delivered') {
        logger.warn(
          { productId, eventId: e.event.id, type: e.event.type, reason: result.reason },
          'webhook delivery failed; retried later',
        );
        return { delivered, complete: false };
      }
      await outbox.ack(productId, [e.streamId]);
      delivered++;
    }
    return { delivered, complete: true };
  }

  /** Delivers until the outbox is empty or a delivery fails; returns what was delivered and whether all went. */
  async function drain(productId: string): Promise<{ delivered: number; complete: boolean }> {
    let delivered = 0; // (outbox.next creates the product's group on its first drain)
    for (;;) {
      const entries = await outbox.next(productId, BATCH);
      if (entries.length === 0) return { delivered, complete: true };
      const events = await eventsOf(productId, entries);
      const bySubject = new Map<string, PendingEvent[]>();
      for (const e of events) bySubject.set(e.subject, [...(bySubject.get(e.subject) ?? []), e]);
      const results = await mapLimited([...bySubject.values()], options.concurrency, (list) =>
        deliverSubject(productId, list),
      );
      delivered += results.reduce((sum, r) => sum + r.delivered, 0);
      if (results.some((r) => !r.complete)) return { delivered, complete: false };
    }
  }

  async function process(job: Job<WebhookJobData>, token?: string) {
    const { productId } = job.data;
    const { delivered, complete } = await drain(productId);
    if (complete) return { delivered };
    const failures = delivered > 0 ? 1 : (job.data.failures ?? 0) + 1;
    await job.updateData({ productId, failures });
    await job.moveToDelayed(Date.now() + webhookBackoffMs(failures, options.backoffMs), token);
    throw new DelayedError(); // not an attempt: the job waits, then drains again
  }

  return {
    process,
    start() {
      worker = startWatchedWorker({
        queue: options.queue,
        process,
        connection: options.bullmq.worker,
        prefix: options.keys.queuePrefix(),
        concurrency: options.products,
        lockMs: options.lockDurationMs,
        maxStalledCount: 10,
        onWorker: (w) => w.on('error', (err) => logger.warn({ err }, 'webhook worker error')),
        logger,
      });
    },
    async stop() {
      await worker?.close();
    },
  };
}

/** Runs `work` over `items` with at most `limit` at once; results in item order. */
async function mapLimited<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  });
  await Promise.all(lanes);
  return results;
}
