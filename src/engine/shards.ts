/**
 * Sharded products (contract: "Sharded products"): one product's quota in N
 * sub-pools, each under its own hash tag, with an exact global cap by
 * demarcation (escrow).
 *
 * - Sub-pool 0 is the product's own tag `{productId}` (an unsharded product is
 *   sub-pool 0 alone: same keys, same one FCALL per operation). Sub-pool i >= 1
 *   is `{productId~<suffix>}`, the suffix picked so its slot falls in another
 *   third of the slot space than its neighbours (3 masters: different nodes).
 *   The tags are recorded at creation in sub-pool 0's pool hash (`shardTags`).
 * - Each sub-pool's pool `capacity` is its allotment; sub-pool 0 also holds the
 *   product's `productCapacity`, `shards` and `shardTags`. Invariant:
 *   sum(allotments) + quota in transit (xfer:pending) == productCapacity.
 * - A customer's line, holds, index entries and idempotency records live in
 *   sub-pool shardOfCustomer(customerId); reservation ids of sub-pool i >= 1
 *   end in `.s<i>`, so commit/release/reads go straight to it.
 * - A transfer is two atomic steps (lua/shard-give-7.lua on the giver, then
 *   lua/shard-take-1.lua on the receiver, in per-pair sequence order); whoever
 *   finds a pending one completes it (completePending).
 * - The priority reserve is the product's: every sub-pool has the product's
 *   `priorityReserve` and keeps the whole amount back from other tiers, as an
 *   unsharded pool does; a grant to another tier in sub-pool k leaves k's free
 *   at least the reserve, and the product's free is at least k's (invariant J),
 *   so the product keeps it. Borrowing moves all of a donor's free if need be,
 *   so a line of another tier is refused only when the product's free less the
 *   reserve cannot cover it.
 */
import calculateSlot from 'cluster-key-slot';
import type { PoolSnapshot } from './types.js';

export const MAX_SHARDS = 64;
const SLOTS = 16_384;

/** Stable FNV-1a of the customer id, modulo the shard count. */
export function shardOfCustomer(customerId: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < customerId.length; i++) {
    h ^= customerId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shards;
}

const SHARD_SUFFIX = /\.s(\d{1,2})$/;

/** The sub-pool a reservation id names (`.s<i>` suffix), 0 when none or out of range. */
export function shardOfReservation(reservationId: string, shards: number): number {
  const m = SHARD_SUFFIX.exec(reservationId);
  const i = m ? Number(m[1]) : 0;
  return i < shards ? i : 0;
}

export const reservationIdFor = (reservationId: string, shard: number): string =>
  shard === 0 ? reservationId : `${reservationId}.s${shard}`;

const thirdOf = (tag: string) => Math.floor((calculateSlot(tag) * 3) / SLOTS);

/**
 * Hash tags of the N sub-pools: tag 0 is the product id; tag i is
 * `<productId>~<i>` or `<productId>~<i>.<j>` for the first j whose slot lies
 * in the third (third of tag 0 + i) mod 3, so consecutive sub-pools sit on
 * different masters of a 3-master cluster with the default slot split.
 * Deterministic from the product id.
 */
export function chooseShardTags(productId: string, shards: number): string[] {
  const tags = [productId];
  const base = thirdOf(productId);
  for (let i = 1; i < shards; i++) {
    const want = (base + i) % 3;
    let tag = `${productId}~${i}`;
    for (let j = 1; j < 256 && thirdOf(tag) !== want; j++) tag = `${productId}~${i}.${j}`;
    tags.push(tag);
  }
  return tags;
}

/** Initial allotments: capacity split evenly, the remainder in sub-pool 0. Sums to capacity exactly. */
export function initialAllotments(capacity: number, shards: number): number[] {
  const each = Math.floor(capacity / shards);
  const out = Array.from({ length: shards }, () => each);
  out[0] = capacity - each * (shards - 1);
  return out;
}

/** Splits a sub-pool key id `<productId>~<suffix>` (the background jobs' work list) into product and tag. */
export function subPoolOf(id: string): { productId: string; tag: string } | null {
  const at = id.indexOf('~');
  return at < 0 ? null : { productId: id.slice(0, at), tag: id };
}

/** Every pool snapshot lists its sub-pools (the contract); an unsharded product is sub-pool 0 alone. */
export function withShardList(pool: PoolSnapshot): PoolSnapshot {
  if (pool.shards) return pool;
  const available = Math.max(0, pool.capacity - pool.held - pool.committed);
  return {
    ...pool,
    shards: [{ index: 0, allotment: pool.capacity, held: pool.held, committed: pool.committed, available }],
  };
}
