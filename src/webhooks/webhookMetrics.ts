/**
 * Webhook metrics, on the service's one registry: deliveries by outcome,
 * entries lost to the stream's cap, and (read from Redis at scrape time, API
 * roles only, like the settlement gauges) the backlog and its oldest age.
 * Registered with webhooks off too (at zero), so every series always exists.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { MAX_PRODUCTS_REPORTED } from '../stateGauges.js';
import { redisNowMs } from '../redis/clock.js';
import type { Keys } from '../redis/keys.js';
import type { RedisClient } from '../redis/topology.js';
import { streamIdMs, type WebhookOutbox } from './webhookOutbox.js';

export const DELIVERY_OUTCOMES = ['delivered', 'failed', 'error'] as const;

interface Backlog {
  outbox: number;
  inFlight: number;
  oldestAgeSeconds: number;
}

/** Scrapes within this window share one read. */
const SNAPSHOT_TTL_MS = 500;

export function createWebhookMetrics(
  registry: Registry,
  state?: { redis: RedisClient; keys: Keys; outbox: WebhookOutbox },
) {
  const deliveries = new Counter({
    name: 'quota_webhook_deliveries_total',
    help: 'Webhook deliveries by outcome (delivered: 2xx; failed: another status; error: timeout or connection error)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  for (const outcome of DELIVERY_OUTCOMES) deliveries.inc({ outcome }, 0);
  const lost = new Counter({
    name: 'quota_webhook_events_lost_total',
    help: 'Webhook outbox entries trimmed from the events stream (cap ~100,000 per product) before they were delivered',
    registers: [registry],
  });
  lost.inc(0);

  let cached: { at: number; value: Promise<Backlog> } | undefined;
  const snapshot = async (): Promise<Backlog> => {
    if (!state) return { outbox: 0, inFlight: 0, oldestAgeSeconds: 0 }; // webhooks off, or a worker-only process
    if (!cached || Date.now() - cached.at > SNAPSHOT_TTL_MS) {
      cached = { at: Date.now(), value: readBacklog(state) };
      cached.value.catch(() => (cached = undefined));
    }
    return cached.value;
  };
  new Gauge({
    name: 'quota_webhook_backlog',
    help:
      'Events-stream entries not yet delivered as webhooks: stage=outbox not yet read ' +
      'by a drain, stage=in_flight read and not yet delivered (retrying)',
    labelNames: ['stage'] as const,
    registers: [registry],
    async collect() {
      const s = await snapshot().catch(() => undefined);
      this.set({ stage: 'outbox' }, s?.outbox ?? 0);
      this.set({ stage: 'in_flight' }, s?.inFlight ?? 0);
    },
  });
  new Gauge({
    name: 'quota_webhook_oldest_pending_age_seconds',
    help: 'Age of the oldest events-stream entry not yet delivered as a webhook (0: none)',
    registers: [registry],
    async collect() {
      const s = await snapshot().catch(() => undefined);
      this.set(s?.oldestAgeSeconds ?? 0);
    },
  });

  return {
    delivery(outcome: (typeof DELIVERY_OUTCOMES)[number]) {
      deliveries.inc({ outcome });
    },
    lost(count: number) {
      lost.inc(count);
    },
  };
}

export type WebhookMetrics = ReturnType<typeof createWebhookMetrics>;

async function readBacklog({ redis, keys, outbox }: { redis: RedisClient; keys: Keys; outbox: WebhookOutbox }) {
  const productIds = await redis.srandmember(keys.productIndex(), MAX_PRODUCTS_REPORTED);
  const backlogs = await outbox.backlog(productIds);
  const oldest = Math.min(...(await outbox.oldestUndelivered(backlogs)).map(streamIdMs));
  const now = await redisNowMs(redis);
  return {
    outbox: backlogs.reduce((sum, b) => sum + (b.lag ?? 0), 0),
    inFlight: backlogs.reduce((sum, b) => sum + b.pending, 0),
    oldestAgeSeconds: Number.isFinite(oldest) ? Math.max(0, (now - oldest) / 1000) : 0,
  };
}
