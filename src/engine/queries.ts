/**
 * Read-only admin queries over the records the scripts keep: reservations
 * by status, a reservation's audit trail, the internal ledger. Plain reads
 * (no decision depends on them), so they need no script.
 */
import type { RedisClient } from '../redis/topology.js';
import type { Keys } from '../redis/keys.js';
import { readRecord, readRecords } from '../redis/storedRecords.js';
import { decodeReservation } from './decode.js';
import type { Reservation, ReservationStatus } from './types.js';

export interface ReservationEvent {
  id: string;
  /** Epoch ms. */
  at: number;
  from: string | null;
  to: string;
  amount: number;
  reason: string | null;
}

export function createQueries(redis: RedisClient, keys: Keys) {
  return {
    /**
     * Reservations in one state, oldest transition first. Paged by `cursor`
     * (the last entry's score and id: stable while entries come and go, a
     * score never changes while an id is in the set).
     */
    async listReservations(
      productId: string,
      status: ReservationStatus,
      page: { cursor?: string | undefined; limit: number },
    ) {
      const key = keys.status(productId, status);
      const { limit } = page;
      let entries: [string, string][]; // [id, score], one more than the page to know whether another follows
      const after = page.cursor === undefined ? undefined : decodeStatusCursor(page.cursor);
      if (after) {
        // The rest of the cursor's tie group (same score, ids after it: the set's own order), then higher scores.
        const ties = (await redis.zrangebyscore(key, after.score, after.score))
          .filter((id) => id > after.id)
          .slice(0, limit + 1);
        entries = ties.map((id) => [id, after.score]);
        if (entries.length < limit + 1) {
          entries.push(
            ...pairs(
              await redis.zrangebyscore(
                key,
                `(${after.score}`,
                '+inf',
                'WITHSCORES',
                'LIMIT',
                0,
                limit + 1 - entries.length,
              ),
            ),
          );
        }
      } else {
        entries = pairs(await redis.zrange(key, 0, limit, 'WITHSCORES'));
      }
      const pageEntries = entries.slice(0, limit);
      const items: Reservation[] = [];
      for (const record of await readRecords(
        redis,
        keys,
        productId,
        pageEntries.map(([id]) => id),
      )) {
        if (record?.status) items.push(decodeReservation(record));
      }
      const last = pageEntries.at(-1);
      const more = entries.length > limit && last !== undefined;
      return { items, nextCursor: more ? encodeCursor(`${last[1]}:${last[0]}`) : null };
    },

    /** Every product of the index, by id, a page at a time (cursor: the last id of the previous page). */
    async productIdsPage(cursor: string | undefined, limit: number) {
      const after = cursor === undefined ? '' : decodeCursor(cursor);
      const ids = (await redis.smembers(keys.productIndex())).filter((id) => id > after).sort();
      const page = ids.slice(0, limit);
      return { productIds: page, nextCursor: ids.length > limit ? encodeCursor(page.at(-1)!) : null };
    },

    /**
     * One customer's reservations in a product, newest first, every state,
     * through the per-customer index (lua/includes/bycustomer.lua); null when
     * the product does not exist.
     */
    async customerReservations(productId: string, customerId: string, cursor: string | undefined, limit: number) {
      if ((await redis.exists(keys.pool(productId))) === 0) return null;
      const after = cursor === undefined ? undefined : decodeCursor(cursor);
      if (after !== undefined && !after.startsWith(`${customerId}:`)) throw new BadCursor();
      const members = await redis.zrevrangebylex(
        keys.bycustomer(productId),
        after === undefined ? `(${customerId};` : `(${after}`,
        `[${customerId}:`,
        'LIMIT',
        0,
        limit + 1,
      );
      const page = members.slice(0, limit);
      const skip = customerId.length + 15; // '<customerId>:<13-digit createdAt>:'
      const items: Reservation[] = [];
      for (const record of await readRecords(
        redis,
        keys,
        productId,
        page.map((m) => m.slice(skip)),
      )) {
        if (record?.status) items.push(decodeReservation(record));
      }
      return { items, nextCursor: members.length > limit ? encodeCursor(page.at(-1)!) : null };
    },

    /** Every recorded transition of one reservation (null: no such reservation). */
    async reservationEvents(productId: string, reservationId: string): Promise<ReservationEvent[] | null> {
      const eventIds = (await readRecord(redis, keys, productId, reservationId))?.eventIds;
      if (eventIds === undefined) return null;
      const pipeline = redis.pipeline();
      for (const id of eventIds.split(',')) pipeline.xrange(keys.events(productId), id, id);
      const events: ReservationEvent[] = [];
      for (const [err, entries] of (await pipeline.exec()) ?? []) {
        for (const [id, flat] of err ? [] : (entries as [string, string[]][])) {
          const f: Record<string, string> = {};
          for (let i = 0; i < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
          events.push({
            id,
            at: Number(f.at),
            from: f.from || null,
            to: f.to ?? '',
            amount: Number(f.amount),
            reason: f.reason || null,
          });
        }
      }
      return events;
    },

    /** The service's own ledger records (used without SETTLEMENT_URL), a page at a time. */
    async internalLedger(productId: string, cursor: string, count: number) {
      const [next, flat] = await redis.hscan(keys.internalLedger(productId), cursor, 'COUNT', count);
      const entries: unknown[] = [];
      for (let i = 1; i < flat.length; i += 2) entries.push(JSON.parse(flat[i]!));
      return { entries, nextCursor: next === '0' ? null : next };
    },
  };
}

export type Queries = ReturnType<typeof createQueries>;

/** A cursor that is not one this listing gave out (the route answers 400). */
export class BadCursor extends Error {
  constructor() {
    super('query.cursor: not a cursor of this listing');
  }
}

const encodeCursor = (value: string) => Buffer.from(value, 'utf8').toString('base64url');

function decodeCursor(cursor: string): string {
  const value = Buffer.from(cursor, 'base64url').toString('utf8');
  if (value === '' || encodeCursor(value) !== cursor) throw new BadCursor();
  return value;
}

function decodeStatusCursor(cursor: string): { score: string; id: string } {
  const m = /^(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?):(.+)$/.exec(decodeCursor(cursor));
  if (!m) throw new BadCursor();
  return { score: m[1]!, id: m[2]! };
}

/** [member, score, member, score...] -> [[member, score]...] */
function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}
