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
  at: string;
  from: string | null;
  to: string;
  amount: number;
  reason: string | null;
}

export function createQueries(redis: RedisClient, keys: Keys) {
  return {
    /** Reservations in one state, oldest transition first; `offset` pages through. */
    async listReservations(productId: string, status: ReservationStatus, offset: number, limit: number) {
      const ids = await redis.zrange(keys.status(productId, status), offset, offset + limit - 1);
      const items: Reservation[] = [];
      for (const record of await readRecords(redis, keys, productId, ids)) {
        if (record?.status) items.push(decodeReservation(record));
      }
      return { items, nextOffset: ids.length === limit ? offset + limit : null };
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
            at: new Date(Number(f.at)).toISOString(),
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
