/**
 * The shapes the API answers, as the contract (shared/CONTRACT.md) fixes
 * them. Written out here, not imported from the service, because a client
 * may use only the published API.
 */

export type ProductStatus = 'open' | 'paused' | 'closed';
export type LineStatus = 'active' | 'pending_activation' | 'frozen' | 'closed';
export type ReservationStatus =
  'held' | 'committed' | 'released' | 'expired' | 'settled' | 'reversed' | 'settlement_unknown';

export interface PriorityReserve {
  tiers: string[];
  amount: number;
}

/** A product's config as a PUT takes it (times as ISO 8601 strings with a zone). */
export interface ProductConfig {
  capacity: number;
  minAmount?: number;
  maxAmount?: number | null;
  holdTtlSeconds?: number;
  opensAt?: string | null;
  closesAt?: string | null;
  status?: ProductStatus;
  pauseReason?: string | null;
  resumeAt?: string | null;
  priorityReserve?: PriorityReserve | null;
  shards?: number;
}

export type ProductPatch = Partial<ProductConfig>;

export interface ShardSnapshot {
  index: number;
  allotment: number;
  held: number;
  committed: number;
  available: number;
}

/** The pool snapshot (`GET /v1/products/{productId}`). */
export interface Pool {
  productId: string;
  capacity: number;
  minAmount: number;
  maxAmount: number | null;
  holdTtlSeconds: number;
  opensAt: string | null;
  closesAt: string | null;
  status: ProductStatus;
  pauseReason: string | null;
  resumeAt: string | null;
  priorityReserve: PriorityReserve | null;
  held: number;
  committed: number;
  settled: number;
  available: number;
  availableToAllTiers: number;
  /** Present once the service shards products (contract: "Sharded products"). */
  shards?: ShardSnapshot[];
  [field: string]: unknown;
}

export interface LineConfig {
  limit: number;
  status?: LineStatus;
  statusReason?: string | null;
  tier?: string | null;
}

/** One row of a bulk import: a line config with its customer. */
export interface LineRow extends LineConfig {
  customerId: string;
}

/** A blocker explained in the chosen language (contract: "Languages"; sent once the service has it). */
export interface BlockerDetail {
  code: string;
  title: string;
  detail: string;
  retryAt?: string;
}

/** The line snapshot (`GET …/customers/{customerId}`). */
export interface Line {
  productId: string;
  customerId: string;
  limit: number;
  status: LineStatus;
  statusReason: string | null;
  tier: string | null;
  held: number;
  drawn: number;
  settling: number;
  available: number;
  /** The largest amount a reserve would accept right now (0 if none). */
  drawable: number;
  /** The codes that would refuse a reserve of `minAmount` now; empty exactly when `drawable > 0`. */
  blockers: string[];
  blockerDetails?: BlockerDetail[];
  retryAt?: string | null;
  [field: string]: unknown;
}

export interface Reservation {
  reservationId: string;
  productId: string;
  customerId: string;
  amount: number;
  status: ReservationStatus;
  createdAt: string;
  expiresAt: string;
  committedAmount: number;
  metadata: Record<string, unknown> | null;
  attempts: number;
  lastError: string | null;
  [field: string]: unknown;
}

export interface ReservationEvent {
  from: string | null;
  to: string;
  amount: number;
  reason: string | null;
  at: string;
  [field: string]: unknown;
}

export interface Page<T> {
  items: T[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface PageOptions {
  cursor?: string;
  /** 1 to 500 (server default 100). */
  limit?: number;
}

export interface BulkRejection {
  /** The row's line number in the body, counting from 1. */
  line: number;
  code: string;
  detail: string;
}

export interface BulkImportSummary {
  upserted: number;
  rejected: BulkRejection[];
  /** Every rejected row, also those beyond the listed ones (when the service reports it). */
  rejectedCount?: number;
  rejectedTruncated?: boolean;
}

export interface ReserveInput {
  customerId: string;
  amount: number;
  ttlSeconds?: number;
  metadata?: Record<string, unknown>;
}

export interface IdempotencyOptions {
  /**
   * Reused on every retry; generated (crypto.randomUUID) when omitted. Pass
   * back the key a result or error handed out to ask again after an unknown outcome.
   */
  idempotencyKey?: string | undefined;
}

export interface RedriveAnswer {
  reservation: Reservation;
  job: unknown;
}

export interface LedgerPage {
  entries: unknown[];
  nextCursor: string | null;
}
