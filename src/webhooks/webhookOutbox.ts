/**
 * The webhook outbox is each product's events stream (qa:{p}:events), which
 * the scripts write in the same atomic step as every change (reservation
 * transitions always; line, product and settlement webhook entries when
 * webhooks are on). The drain reads it through a consumer group,
 * `webhooks`: an entry read but not yet delivered stays in the group's
 * pending list, so a crash loses none; it is acknowledged only once
 * delivered (or when it is no webhook event at all). One drain runs per
 * product at a time (src/webhooks/webhookQueue.ts), so one consumer name.
 */
import { redisNowMs } from '../redis/clock.js';
import type { Keys } from '../redis/keys.js';
import { pipelinePerNode, valueOf } from '../redis/perNode.js';
import type { RedisClient } from '../redis/topology.js';

export const WEBHOOK_GROUP = 'webhooks';
/** More than the stream keeps (~100,000): counting what follows a group's start reads at most this. */
const AFTER_LIMIT = 200_000;
const CONSUMER = 'drain';

/** [streamId, fields or null when the entry was trimmed away before it was delivered]. */
export type OutboxEntry = [id: string, fields: string[] | null];

export interface ProductBacklog {
  productId: string;
  /** Entries not yet read by the drain (null: Redis cannot tell, e.g. after trimming). */
  lag: number | null;
  /** Entries read, not yet delivered. */
  pending: number;
  lastDeliveredId: string;
  /** No consumer group yet (no drain has run for the product). */
  missing: boolean;
}

const isError = (err: unknown, code: string) => err instanceof Error && err.message.startsWith(code);

export function createWebhookOutbox(redis: RedisClient, keys: Keys) {
  let since: string | undefined;

  /** When webhooks were first turned on, fixed once for every instance (SET NX). */
  async function startId(): Promise<string> {
    if (!since) {
      await redis.set(keys.webhooksSince(), String(await redisNowMs(redis)), 'NX');
      since = `${(await redis.get(keys.webhooksSince())) ?? '0'}-0`;
    }
    return since;
  }

  /** How many entries the stream ever held up to `id` (so the group's `lag` counts only what follows). */
  async function entriesUpTo(key: string, id: string): Promise<number> {
    // One snapshot (MULTI on one key's slot): entries added since, and those still kept after `id`.
    const replies = ((await redis
      .multi()
      .xinfo('STREAM', key)
      .xrange(key, `(${id}`, '+', 'COUNT', AFTER_LIMIT)
      .exec()) ?? []) as [Error | null, unknown][];
    const [infoErr, info] = replies[0] ?? [null, null];
    const after = replies[1]?.[1] ?? [];
    if (infoErr || !info) return 0; // no stream yet
    return Math.max(0, Number(pairs(info as unknown[])['entries-added']) - (after as unknown[]).length);
  }

  async function ensureGroup(productId: string): Promise<void> {
    const key = keys.events(productId);
    const start = await startId();
    try {
      // Entries after webhooks were turned on, also those written before this product's first drain.
      // ENTRIESREAD: without it Redis counts the history before `start` in the group's lag for good.
      await redis.xgroup('CREATE', key, WEBHOOK_GROUP, start, 'MKSTREAM', 'ENTRIESREAD', await entriesUpTo(key, start));
    } catch (err) {
      if (!isError(err, 'BUSYGROUP')) throw err;
    }
  }

  async function readGroup(productId: string, count: number, from: '0' | '>'): Promise<OutboxEntry[]> {
    const answer = (await redis.xreadgroup(
      'GROUP',
      WEBHOOK_GROUP,
      CONSUMER,
      'COUNT',
      count,
      'STREAMS',
      keys.events(productId),
      from,
    )) as [string, OutboxEntry[]][] | null;
    return answer?.[0]?.[1] ?? [];
  }

  return {
    startId,
    ensureGroup,
    /**
     * The next entries to deliver, in stream order: first those read before
     * and not delivered (a failed or killed drain), then new ones.
     */
    async next(productId: string, count: number): Promise<OutboxEntry[]> {
      try {
        // Pending entries are older than every new one: together they are still in stream order.
        const pending = await readGroup(productId, count, '0');
        return pending.length < count
          ? [...pending, ...(await readGroup(productId, count - pending.length, '>'))]
          : pending;
      } catch (err) {
        if (!isError(err, 'NOGROUP')) throw err;
        await ensureGroup(productId); // Redis lost its data, or the first drain of the product
        return readGroup(productId, count, '>');
      }
    },
    async ack(productId: string, ids: string[]): Promise<void> {
      if (ids.length > 0) await redis.xack(keys.events(productId), WEBHOOK_GROUP, ...ids);
    },
    /** Stored records (JSON) of reservations, for reservation.expired events. */
    async records(productId: string, reservationIds: string[]): Promise<(string | null)[]> {
      return reservationIds.length > 0 ? redis.hmget(keys.records(productId), ...reservationIds) : [];
    },
    /** Each product's backlog: two pipelined reads for the lot (per node on a Cluster). */
    async backlog(productIds: string[]): Promise<ProductBacklog[]> {
      // XINFO answers an error for a stream that does not exist: ask only about those that do.
      const exists = await pipelinePerNode(
        redis,
        productIds,
        (p) => keys.events(p),
        (pipeline, p) => pipeline.exists(keys.events(p)),
      );
      const present = productIds.filter((_, i) => valueOf(exists[i]?.[0]) === 1);
      const answers = await pipelinePerNode(
        redis,
        present,
        (p) => keys.events(p),
        (pipeline, p) => pipeline.xinfo('GROUPS', keys.events(p)),
      );
      const groupsOf = new Map(present.map((p, i) => [p, valueOf(answers[i]?.[0]) as unknown[][]]));
      return productIds.map((productId) => {
        const group = (groupsOf.get(productId) ?? []).map(pairs).find((g) => g.name === WEBHOOK_GROUP);
        if (!group) return { productId, lag: null, pending: 0, lastDeliveredId: '0-0', missing: true };
        return {
          productId,
          lag: group.lag === null || group.lag === undefined ? null : Number(group.lag),
          pending: Number(group.pending),
          lastDeliveredId: String(group['last-delivered-id']),
          missing: false,
        };
      });
    },
    /** Stream id of each product's oldest undelivered entry, if any (pipelined). */
    async oldestUndelivered(backlogs: ProductBacklog[]): Promise<string[]> {
      const asked = backlogs.filter((b) => !b.missing && (b.pending > 0 || (b.lag ?? 1) > 0));
      const answers = await pipelinePerNode(
        redis,
        asked,
        (b) => keys.events(b.productId),
        (pipeline, b) => {
          if (b.pending > 0) pipeline.xpending(keys.events(b.productId), WEBHOOK_GROUP);
          else pipeline.xrange(keys.events(b.productId), `(${b.lastDeliveredId}`, '+', 'COUNT', 1);
        },
      );
      const ids: string[] = [];
      asked.forEach((b, i) => {
        const value = valueOf(answers[i]?.[0]);
        const id = b.pending > 0 ? (value as [number, string | null])[1] : (value as OutboxEntry[])[0]?.[0];
        if (id) ids.push(id);
      });
      return ids;
    },
  };
}

/** XINFO's flat [name, value, ...] as an object. */
function pairs(flat: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}

export type WebhookOutbox = ReturnType<typeof createWebhookOutbox>;

/** The ms part of a stream id. */
export const streamIdMs = (id: string): number => Number(id.split('-')[0]);
