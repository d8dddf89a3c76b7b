/** Domain types: what the engine answers, independent of HTTP. */
import { SCRIPT_REFUSAL_CODES } from '../errors/catalogue.js';
import type { ReservationStatus } from '../reservationStatus.js';

export const PRODUCT_STATUSES = ['open', 'paused', 'closed'] as const;
export type ProductStatus = (typeof PRODUCT_STATUSES)[number];

export const LINE_STATUSES = ['active', 'pending_activation', 'frozen', 'closed'] as const;
export type LineStatus = (typeof LINE_STATUSES)[number];

/** Defined outside the engine so that src/redis/keys.ts can name the status sets without importing it. */
export type { ReservationStatus };

/**
 * Codes a script may answer instead of OK: the one list, derived from the
 * error catalogue (src/errors/catalogue.ts: its `script` codes plus the two
 * answered as 400). The script catalogue's `codes` and
 * test/unit/script-catalogue.test.ts check every Lua script against it.
 */
export const REFUSAL_CODES = SCRIPT_REFUSAL_CODES;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/**
 * Codes that are not refusals: success (OK, CREATED, UPDATED) and the audit's progress (BEHIND, PASS, PASS_ABORTED).
 */
export const PROGRESS_CODES = ['OK', 'CREATED', 'UPDATED', 'BEHIND', 'PASS', 'PASS_ABORTED'] as const;
export type ScriptCode = RefusalCode | (typeof PROGRESS_CODES)[number];
export const SCRIPT_CODES: readonly ScriptCode[] = [...PROGRESS_CODES, ...REFUSAL_CODES];

export interface PriorityReserve {
  tiers: string[];
  amount: number;
}

/**
 * Times are epoch ms everywhere in the domain (what the scripts answer, on the
 * Redis server's clock); they become ISO 8601 strings only where the service
 * shows them (src/wireFormat.ts).
 */

/** Config fields of a pool as the API takes them. */
export interface PoolConfig {
  capacity: number;
  minAmount: number;
  maxAmount: number | null;
  holdTtlSeconds: number;
  opensAt: number | null;
  closesAt: number | null;
  status: ProductStatus;
  pauseReason: string | null;
  resumeAt: number | null;
  priorityReserve: PriorityReserve | null;
}

export interface PoolSnapshot extends PoolConfig {
  productId: string;
  held: number;
  committed: number;
  settled: number;
  available: number;
  availableToAllTiers: number;
  createdAt: number;
  updatedAt: number;
  /** The sub-pools (contract: "Sharded products"); one entry for an unsharded product. */
  shards?: ShardView[];
  /** Sharded products: quota moved out of one sub-pool and not yet credited to another. */
  inTransit?: number;
  /**
   * Sharded products: allotment held back after capacity was lowered below use (returned once no sub-pool is below its
   * use).
   */
  withheld?: number;
}

/** One sub-pool of a product: its allotment (its share of capacity) and use. */
export interface ShardView {
  index: number;
  allotment: number;
  held: number;
  committed: number;
  available: number;
}

export interface LineConfig {
  customerId: string;
  limit: number;
  status: LineStatus;
  statusReason: string | null;
  tier: string | null;
}

export interface LineSnapshot extends LineConfig {
  productId: string;
  held: number;
  drawn: number;
  settling: number;
  available: number;
  drawable: number;
  blockers: RefusalCode[];
  /** When the first temporary blocker lifts (opensAt / resumeAt), if known. */
  retryAt: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface Reservation {
  reservationId: string;
  productId: string;
  customerId: string;
  amount: number;
  status: ReservationStatus;
  createdAt: number;
  expiresAt: number;
  committedAmount: number;
  committedAt: number | null;
  endedAt: number | null;
  metadata: Record<string, unknown> | null;
  attempts: number;
  lastError: string | null;
  /** When settlement last changed the status (settled, reversed, settlement_unknown). */
  settlementUpdatedAt: number | null;
}

/** Context a refusal carries (what the problem body's detail is made from). */
export interface RefusalContext {
  drawable?: number;
  retryAt?: number;
  line?: LineSnapshot;
  reservation?: Reservation;
  statusReason?: string | null;
  pauseReason?: string | null;
  minAmount?: number;
  maxAmount?: number | null;
  holdTtlSeconds?: number;
  repayable?: number;
  field?: string;
  reason?: string;
}

/**
 * A pool's counters as the metrics scrape reads them (lua/read-pool-counters-3.lua):
 * the snapshot's numbers, computed by the same Lua view, but nothing reclaimed first.
 */
export interface PoolCounters extends Pick<
  PoolSnapshot,
  'capacity' | 'held' | 'committed' | 'settled' | 'available' | 'availableToAllTiers'
> {
  /** Committed reservations awaiting settlement. */
  backlog: number;
  /** When the oldest of them was committed (ms, Redis clock); null: none. */
  oldestCommittedAt: number | null;
  /** Reservations in settlement_unknown. */
  unknown: number;
}

/** A script's answer other than OK: the code and what it is about. */
export interface Refusal {
  ok: false;
  code: RefusalCode;
  context: RefusalContext;
  now: number;
  replayed: boolean;
}

export type Outcome<T> = { ok: true; value: T; now: number; replayed: boolean } | Refusal;

export type SettlementOutcome = 'settled' | 'reversed' | 'unknown';
