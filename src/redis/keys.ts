/**
 * The one place Redis key names are built. Every key of a product carries the
 * product in a hash tag, so each script touches a single slot and the same
 * code runs on one Redis or a Redis Cluster. Scripts never build a key: they
 * get every key they touch in KEYS (src/engine/scriptCatalogue.ts), so
 * reservation records and lines, which expiry finds at run time, are fields
 * of one hash per product (records, lines) rather than a key each.
 */
import type { ReservationStatus } from '../reservationStatus.js';

export type IdempotentOperation = 'reserve' | 'repay';

export function createKeys(prefix: string) {
  const product = (productId: string) => `${prefix}:{${productId}}:`;
  return {
    prefix,
    pool: (productId: string) => `${product(productId)}pool`,
    /** Reservation ids in one state (lua/includes/status.lua); `held` is scored by expiresAt. */
    status: (productId: string, status: ReservationStatus) => `${product(productId)}status:${status}`,
    /** Capped stream of every state transition of the product's reservations. */
    events: (productId: string) => `${product(productId)}events`,
    /** The invariant audit's running settled sums, checkpoint and line cursor (lua/audit-product-11.lua). */
    audit: (productId: string) => `${product(productId)}audit`,
    /** The service's own ledger (used when no SETTLEMENT_URL is configured). */
    internalLedger: (productId: string) => `${product(productId)}ledger`,
    /** Hash: customerId -> the line as JSON (lua/includes/lines.lua). */
    lines: (productId: string) => `${product(productId)}lines`,
    /** Hash: reservationId -> the reservation record as JSON (lua/includes/records.lua). */
    records: (productId: string) => `${product(productId)}res`,
    /** Zset, every score 0: `<customerId>:<createdAt, 13 digits>:<reservationId>` per record (lua/reserve-8.lua). */
    bycustomer: (productId: string) => `${product(productId)}bycustomer`,
    /** Hash: the audit's exact pool comparison in progress (lua/audit-product-11.lua). */
    auditPass: (productId: string) => `${product(productId)}auditpass`,
    idempotency: (productId: string, operation: IdempotentOperation, key: string) =>
      `${product(productId)}idem:${operation}:${key}`,
    /**
     * Sharded products (src/engine/shards.ts): transfers this sub-pool gave that are not yet credited
     * (lua/shard-give-7.lua).
     */
    xferPending: (productId: string) => `${product(productId)}xfer:pending`,
    /**
     * Sharded products: the key ids (`<productId>~<suffix>`) of every sub-pool but 0 (the background jobs' extra work
     * list).
     */
    subPoolIndex: () => `${prefix}:subpools`,
    /** Rate-limit windows (not quota state): per API key (a hash of it), per customer of a product. */
    rateLimitKey: (keyId: string) => `${prefix}:rl:key:${keyId}`,
    rateLimitCustomer: (productId: string, customerId: string) => `${product(productId)}rl:${customerId}`,
    /** Every product id ever configured: the sweeper's work list (its own slot; not quota state). */
    productIndex: () => `${prefix}:products`,
    /**
     * When webhooks were first turned on (ms): a product's webhook consumer group starts there
     * (src/webhooks/webhookOutbox.ts).
     */
    webhooksSince: () => `${prefix}:webhooks:since`,
    /** BullMQ prefix; the hash tag keeps each queue's keys on one slot. */
    queuePrefix: () => `{${prefix}-q}`,
  };
}

export type Keys = ReturnType<typeof createKeys>;
