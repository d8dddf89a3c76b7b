/**
 * Webhook events as the contract puts them: `{ id, type, occurredAt,
 * productId, data }`, made from entries of a product's events stream
 * (lua/includes/webhooks.lua writes them in the same atomic step as the
 * change). The id is the product and the stream entry id, so every delivery
 * of one event carries the same id and a consumer dedupes by it.
 */
import { decodeLine, decodePool, decodeReservation } from '../engine/decode.js';
import { subPoolOf, withShardList } from '../engine/shards.js';
import type { PoolSnapshot } from '../engine/types.js';
import { isoTime, lineJson, poolJson, reservationJson } from '../wireFormat.js';

export const WEBHOOK_EVENT_TYPES = [
  'reservation.settled',
  'reservation.reversed',
  'reservation.settlement_unknown',
  'reservation.resolved',
  'reservation.expired',
  'line.status_changed',
  'line.limit_changed',
  'product.status_changed',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export interface WebhookEvent {
  id: string;
  type: WebhookEventType;
  occurredAt: string;
  productId: string;
  data: unknown;
}

/** A stream entry the drain has to deliver, with what orders it. */
export interface PendingEvent {
  streamId: string;
  /** Events of one subject (a reservation, a line, the product) are delivered in stream order. */
  subject: string;
  event: WebhookEvent;
}

type Raw = Record<string, unknown>;

/** Stream entry fields [f1, v1, f2, v2, ...] as an object. */
export function fieldsOf(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

export const eventId = (productId: string, streamId: string): string => `${productId}:${streamId}`;

/** The reservation id of an entry that is a `reservation.expired` event (a transition to expired), else undefined. */
export function expiredReservationOf(fields: Record<string, string>): string | undefined {
  return fields.webhook === undefined && fields.to === 'expired' ? fields.reservationId : undefined;
}

/**
 * Whether an entry is a `product.*` event of a product's own stream (sub-pool 0's, for a sharded product; a
 * sub-pool i >= 1's are no events): for a sharded product its `data` is made from the product's snapshot
 * (productEventData).
 */
export const isProductEvent = (keyId: string, fields: Record<string, string>): boolean =>
  !subPoolOf(keyId) && fields.webhook?.startsWith('product.') === true;

/**
 * A sharded product's `product.*` data: the script on sub-pool 0 cannot read the other sub-pools (other slots),
 * so its record holds the config the change wrote (status, pauseReason, resumeAt ...) and sub-pool 0's counters
 * only. The data is the product's snapshot as the API answers it (`product`, read when the event is delivered):
 * capacity, the totals and the `shards` list from it; every config field from the record, so the status is the
 * one the change made; availableToAllTiers is the total available less the recorded priority reserve.
 */
export function productEventData(recorded: PoolSnapshot, product: PoolSnapshot): PoolSnapshot {
  const { capacity, held, committed, settled, available, shards, inTransit, withheld } = product;
  return {
    ...recorded,
    capacity,
    held,
    committed,
    settled,
    available,
    availableToAllTiers: Math.max(0, available - (recorded.priorityReserve?.amount ?? 0)),
    shards,
    inTransit,
    withheld,
  };
}

/**
 * The event an entry stands for, or null for a transition no webhook
 * describes (held, committed, released, ...; settlement outcomes have entries
 * of their own, written with the record). `expiredRecord` is the stored
 * record JSON of an expired reservation (it no longer changes), if still kept. `product`: a sharded
 * product's snapshot read for this delivery, for its `product.*` entries; without it (an unsharded product, or
 * one that could not be read) a `product.*` entry's data is the record alone.
 */
export function eventOf(
  keyId: string,
  streamId: string,
  fields: Record<string, string>,
  expiredRecord?: string | null,
  product?: PoolSnapshot,
): PendingEvent | null {
  // A sharded product's sub-pool i >= 1 has its own stream (key id `<productId>~<suffix>`): its events are the
  // product's.
  const productId = subPoolOf(keyId)?.productId ?? keyId;
  const base = { id: eventId(keyId, streamId), occurredAt: isoTime(Number(fields.at)), productId };
  // a sub-pool's allotment, not the product's config
  if (productId !== keyId && fields.webhook?.startsWith('product.')) return null;
  const expiredId = expiredReservationOf(fields);
  if (expiredId !== undefined) {
    const data = expiredRecord
      ? reservationJson(decodeReservation(JSON.parse(expiredRecord) as Raw))
      : // The record is deleted 7 days after it ended: what the transition itself says.
        { reservationId: expiredId, productId, status: 'expired', amount: Number(fields.amount) };
    return { streamId, subject: `reservation:${expiredId}`, event: { ...base, type: 'reservation.expired', data } };
  }
  const type = fields.webhook as WebhookEventType | undefined;
  if (type === undefined || !WEBHOOK_EVENT_TYPES.includes(type)) return null;
  const raw = JSON.parse(fields.data ?? '{}') as Raw;
  if (type.startsWith('reservation.')) {
    const data = reservationJson(decodeReservation(raw));
    return { streamId, subject: `reservation:${data.reservationId}`, event: { ...base, type, data } };
  }
  if (type.startsWith('line.')) {
    const customerId = String(raw.customerId);
    const data = {
      customerId,
      before: lineJson(decodeLine(productId, raw.before as Raw)),
      after: lineJson(decodeLine(productId, raw.after as Raw)),
    };
    return { streamId, subject: `line:${customerId}`, event: { ...base, type, data } };
  }
  const recorded = decodePool(productId, raw);
  // Unsharded: the recorded counters are the product's, as of the change, and its one sub-pool is listed from them.
  const data = poolJson(product ? productEventData(recorded, product) : withShardList(recorded));
  return { streamId, subject: 'product', event: { ...base, type, data } };
}
