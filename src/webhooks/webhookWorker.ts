/**
 * Drains one product's webhook outbox per job, in stream order: a batch of
 * entries is grouped by subject (a reservation, a line, the product), each
 * subject's events are delivered one after the other (so they arrive in the
 * order they happened), different subjects side by side (WEBHOOK_CONCURRENCY).
 * An entry is acknowledged only after its 2xx; after a failure the rest of
 * that subject waits, and the job throws so BullMQ retries it after a backoff:
 * the retry reads the unacknowledged entries first, in order. Delivery is at
 * least once (a 2xx lost with a killed worker is sent again); the event id is
 * the same every time, for the consumer to dedupe.
 */
import { Worker, type Job } from 'bullmq';
import type { Logger } from '../logger.js';
import { workerConnectionOptions } from '../redis/connection.js';
import type { Keys } from '../redis/keys.js';
import { eventOf, expiredReservationOf, fieldsOf, type PendingEvent } from './webhookEvents.js';
import type { WebhookMetrics } from './webhookMetrics.js';
import type { WebhookOutbox } from './webhookOutbox.js';
import { WEBHOOK_QUEUE, webhookBackoffMs, type WebhookJobData } from './webhookQueue.js';
import type { WebhookSender } from './webhookSender.js';

const BATCH = 200;

export interface WebhookWorkerOptions {
  redisUrl: string;
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
}

export function createWebhookWorker(options: WebhookWorkerOptions) {
  const { outbox, send, logger, metrics } = options;
  let worker: Worker<WebhookJobData> | undefined;

  /** The events of a batch, in order; acknowledges at once what needs no delivery. */
  async function eventsOf(productId: string, entries: [string, string[] | null][]): Promise<PendingEvent[]> {
    const parsed = entries.map(([id, flat]) => ({ id, fields: flat ? fieldsOf(flat) : null }));
    const lost = parsed.filter((e) => e.fields === null).map((e) => e.id);
    if (lost.length > 0) {
      metrics.lost(lost.length);
      logger.error({ productId, entries: lost }, 'webhook outbox entries were trimmed from the events stream before delivery');
    }
    const expiredIds = parsed.map((e) => (e.fields ? expiredReservationOf(e.fields) : undefined));
    const records = await outbox.records(productId, expiredIds.filter((id): id is string => id !== undefined));
    let r = 0;
    const events: PendingEvent[] = [];
    const skip: string[] = [...lost];
    parsed.forEach((e, i) => {
      if (!e.fields) return;
      const record = expiredIds[i] !== undefined ? records[r++] : undefined;
      const event = eventOf(productId, e.id, e.fields, record);
      if (event) events.push(event);
      else skip.push(e.id);
    });
    await outbox.ack(productId, skip);
    return events;
  }

  /** Delivers a subject's events in order; stops at its first failure. Returns whether all went. */
  async function deliverSubject(productId: string, events: PendingEvent[]): Promise<boolean> {
    for (const e of events) {
      const result = await send(e.event);
      metrics.delivery(result.outcome);
      if (result.outcome !== 'delivered') {
        logger.warn({ productId, eventId: e.event.id, type: e.event.type, reason: result.reason }, 'webhook delivery failed; retried later');
        return false;
      }
      await outbox.ack(productId, [e.streamId]);
    }
    return true;
  }

  async function process(job: Job<WebhookJobData>) {
    const { productId } = job.data;
    await outbox.ensureGroup(productId);
    let delivered = 0;
    for (;;) {
      const entries = await outbox.next(productId, BATCH);
      if (entries.length === 0) return { delivered };
      const events = await eventsOf(productId, entries);
      const bySubject = new Map<string, PendingEvent[]>();
      for (const e of events) bySubject.set(e.subject, [...(bySubject.get(e.subject) ?? []), e]);
      const results = await mapLimited([...bySubject.values()], options.concurrency, (list) => deliverSubject(productId, list));
      const failed = results.filter((ok) => !ok).length;
      if (failed > 0) throw new Error(`${failed} webhook subject(s) of product ${productId} not delivered`);
      delivered += events.length;
    }
  }

  return {
    process,
    start() {
      worker = new Worker<WebhookJobData>(WEBHOOK_QUEUE, process, {
        connection: workerConnectionOptions(options.redisUrl),
        prefix: options.keys.queuePrefix(),
        concurrency: options.products,
        settings: { backoffStrategy: (attemptsMade: number) => webhookBackoffMs(attemptsMade, options.backoffMs) },
      });
      worker.on('error', (err) => logger.warn({ err }, 'webhook worker error'));
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
