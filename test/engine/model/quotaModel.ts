/**
 * A plain, in-memory model of ONE product pool, its credit lines and its
 * reservations, written from /work/shared/CONTRACT.md (not from the Lua).
 * The property test (test/engine/property.test.ts) runs the same operations against
 * the real engine and this model and compares every counter and every answer.
 *
 * Time: the model has no clock. Every method takes `now` (the Redis server's
 * clock, ms, as the engine's Outcome reports it) and first expires every hold
 * whose expiresAt <= now (a hold is expired when now >= expiresAt).
 */
import type { LineStatus, ProductStatus, RefusalCode, ReservationStatus } from '../../../src/engine/types.js';

export interface ModelPriorityReserve {
  tiers: string[];
  amount: number;
}

export interface ModelPoolConfig {
  capacity: number;
  minAmount: number;
  maxAmount: number | null;
  holdTtlSeconds: number;
  opensAt: number | null;
  closesAt: number | null;
  status: ProductStatus;
  pauseReason: string | null;
  resumeAt: number | null;
  priorityReserve: ModelPriorityReserve | null;
}

export interface ModelPool extends ModelPoolConfig {
  held: number;
  committed: number;
  settled: number;
}

export interface ModelLineConfig {
  customerId: string;
  limit: number;
  status: LineStatus;
  statusReason: string | null;
  tier: string | null;
}

export interface ModelLine extends ModelLineConfig {
  held: number;
  drawn: number;
  settling: number;
}

export interface ModelReservation {
  reservationId: string;
  customerId: string;
  amount: number;
  status: ReservationStatus;
  /** Redis time of the reserve that granted it (ms). */
  createdAt: number;
  expiresAt: number;
  committedAmount: number;
  metadata: Record<string, unknown> | null;
}

export interface PoolView {
  capacity: number;
  held: number;
  committed: number;
  settled: number;
  available: number;
  availableToAllTiers: number;
  /** The status in force: a pause whose resumeAt has passed is open. */
  status: ProductStatus;
}

export interface LineView {
  customerId: string;
  limit: number;
  status: LineStatus;
  tier: string | null;
  held: number;
  drawn: number;
  settling: number;
  available: number;
  drawable: number;
  blockers: RefusalCode[];
}

/** What the model expects an operation to answer. */
export type ModelAnswer<T> =
  | { ok: true; value: T; replayed: boolean }
  | {
      ok: false;
      code: RefusalCode;
      replayed: boolean;
      drawable?: number;
      /**
       * Reserve refusals: when to retry (Retry-After): opensAt on PRODUCT_NOT_OPEN, resumeAt on PRODUCT_PAUSED, else
       * null.
       */
      retryAt?: number | null;
      repayable?: number;
      reservation?: ModelReservation;
    };

export interface ReserveInput {
  customerId: string;
  /** The fresh id the caller passes; used only if the hold is granted. */
  reservationId: string;
  amount: number;
  ttlSeconds?: number | undefined;
  metadata?: Record<string, unknown> | undefined;
  idempotencyKey: string;
  fingerprint: string;
}

export interface RepayInput {
  customerId: string;
  amount: number;
  idempotencyKey: string;
  fingerprint: string;
}

export type SettlementResult = { reservation: ModelReservation; changed: boolean };

interface StoredAnswer<T> {
  fingerprint: string;
  answer: ModelAnswer<T>;
}

/** States reached by a commit (the reservation was committed at some point). */
const COMMITTED_ISH: ReadonlySet<ReservationStatus> = new Set([
  'committed',
  'settled',
  'settlement_unknown',
  'reversed',
]);

const LINE_STATUS_CODE: Record<LineStatus, RefusalCode | null> = {
  active: null,
  pending_activation: 'ACCOUNT_PENDING_ACTIVATION',
  frozen: 'ACCOUNT_FROZEN',
  closed: 'ACCOUNT_CLOSED',
};

export const POOL_DEFAULTS: ModelPoolConfig = {
  capacity: 0,
  minAmount: 1,
  maxAmount: null,
  holdTtlSeconds: 300,
  opensAt: null,
  closesAt: null,
  status: 'open',
  pauseReason: null,
  resumeAt: null,
  priorityReserve: null,
};

const copy = <T>(v: T): T => structuredClone(v);

export class QuotaModel {
  pool: ModelPool | null = null;
  readonly lines = new Map<string, ModelLine>();
  readonly reservations = new Map<string, ModelReservation>();
  /** Reservation ids in the order they were granted. */
  readonly reservationOrder: string[] = [];
  private readonly reserveAnswers = new Map<string, StoredAnswer<ModelReservation>>();
  private readonly repayAnswers = new Map<string, StoredAnswer<LineView>>();
  /** Sum of successful (non-replayed) repayments per customer: for the conservation audit. */
  readonly repaid = new Map<string, number>();
  /** The latest Redis time the model has seen. */
  lastNow = 0;

  // ---- time ---------------------------------------------------------------

  /** Expires every live hold whose expiresAt <= now: its amount goes back to pool and line. */
  advance(now: number): void {
    if (now > this.lastNow) this.lastNow = now;
    for (const res of this.reservations.values()) {
      if (res.status === 'held' && res.expiresAt <= now) this.endHold(res, 'expired');
    }
  }

  private endHold(res: ModelReservation, status: 'expired' | 'released'): void {
    const pool = this.requirePool();
    const line = this.requireLine(res.customerId);
    res.status = status;
    pool.held -= res.amount;
    line.held -= res.amount;
  }

  /**
   * Whether an answer for this reserve idempotency key is stored (a repeat is then a replay or IDEMPOTENCY_KEY_REUSED).
   */
  reserveAnswerStored(key: string): boolean {
    return this.reserveAnswers.has(key);
  }

  /**
   * Sharded products: a stored refusal's drawable is what the engine answered (read from several
   * sub-pools, one after another; the property test checks it against this model within what fell
   * due meanwhile), so its replays answer that.
   */
  amendStoredDrawable(key: string, drawable: number): void {
    const stored = this.reserveAnswers.get(key);
    if (stored && !stored.answer.ok) stored.answer = { ...stored.answer, drawable };
  }

  repayAnswerStored(key: string): boolean {
    return this.repayAnswers.has(key);
  }

  // ---- config -------------------------------------------------------------

  /** PUT (fields not given take their defaults) or PATCH (only given fields change). Counters kept. */
  upsertPool(
    config: Partial<ModelPoolConfig>,
    mode: 'put' | 'patch',
    now: number,
  ): { created: boolean } | { code: RefusalCode } {
    this.advance(now);
    if (mode === 'patch' && !this.pool) return { code: 'PRODUCT_NOT_FOUND' };
    const created = !this.pool;
    const base: ModelPoolConfig = mode === 'patch' && this.pool ? this.pool : POOL_DEFAULTS;
    // Setting status starts the pause description afresh: pauseReason and resumeAt are what the patch gives.
    const fresh = config.status !== undefined ? { pauseReason: null, resumeAt: null } : {};
    const merged: ModelPoolConfig = { ...pickConfig(base), ...fresh, ...copy(config) };
    this.pool = {
      ...merged,
      held: this.pool?.held ?? 0,
      committed: this.pool?.committed ?? 0,
      settled: this.pool?.settled ?? 0,
    };
    return { created };
  }

  /** Create or replace a line's config; counters are kept. */
  upsertLine(config: ModelLineConfig, now: number): ModelAnswer<LineView> {
    this.advance(now);
    if (!this.pool) return { ok: false, code: 'PRODUCT_NOT_FOUND', replayed: false };
    const old = this.lines.get(config.customerId);
    this.lines.set(config.customerId, {
      ...copy(config),
      held: old?.held ?? 0,
      drawn: old?.drawn ?? 0,
      settling: old?.settling ?? 0,
    });
    return { ok: true, value: this.lineView(config.customerId, now)!, replayed: false };
  }

  // ---- views --------------------------------------------------------------

  poolView(now: number): PoolView {
    this.advance(now);
    const p = this.requirePool();
    const available = Math.max(0, p.capacity - p.held - p.committed);
    const reserve = p.priorityReserve?.amount ?? 0;
    return {
      capacity: p.capacity,
      held: p.held,
      committed: p.committed,
      settled: p.settled,
      available,
      availableToAllTiers: Math.max(0, available - reserve),
      status: p.status === 'paused' && p.resumeAt !== null && now >= p.resumeAt ? 'open' : p.status,
    };
  }

  lineView(customerId: string, now: number): LineView | null {
    this.advance(now);
    const line = this.lines.get(customerId);
    if (!line) return null;
    const pool = this.requirePool();
    const blockers = this.blockersFor(line, pool.minAmount, now);
    return {
      customerId,
      limit: line.limit,
      status: line.status,
      tier: line.tier,
      held: line.held,
      drawn: line.drawn,
      settling: line.settling,
      available: lineAvailable(line),
      drawable: blockers.length > 0 ? 0 : this.largestAcceptable(line),
      blockers,
    };
  }

  /** Every code that would reject a reserve of `amount` by this line now, in the contract's order. */
  blockersFor(line: ModelLine, amount: number, now: number): RefusalCode[] {
    const pool = this.requirePool();
    const codes: RefusalCode[] = [];
    if (pool.status === 'closed' || (pool.closesAt !== null && now >= pool.closesAt)) codes.push('PRODUCT_CLOSED');
    if (pool.status === 'paused' && !(pool.resumeAt !== null && now >= pool.resumeAt)) codes.push('PRODUCT_PAUSED');
    if (pool.opensAt !== null && now < pool.opensAt) codes.push('PRODUCT_NOT_OPEN');
    const statusCode = LINE_STATUS_CODE[line.status];
    if (statusCode) codes.push(statusCode);
    if (amount < pool.minAmount || (pool.maxAmount !== null && amount > pool.maxAmount))
      codes.push('AMOUNT_OUT_OF_RANGE');
    if (line.held + line.drawn + amount > line.limit) codes.push('CUSTOMER_LIMIT_EXCEEDED');
    if (amount > this.poolAvailableTo(line)) codes.push('POOL_EXHAUSTED');
    return codes;
  }

  /** What of the pool this line's tier may take: all of `available` for listed tiers, else availableToAllTiers. */
  poolAvailableTo(line: ModelLine): number {
    const p = this.requirePool();
    const available = Math.max(0, p.capacity - p.held - p.committed);
    const reserve = p.priorityReserve;
    if (!reserve || reserve.amount <= 0) return available;
    if (line.tier !== null && reserve.tiers.includes(line.tier)) return available;
    return Math.max(0, available - reserve.amount);
  }

  /** The largest amount that passes range, line and pool checks (status checks aside). */
  private largestAcceptable(line: ModelLine): number {
    const pool = this.requirePool();
    let largest = Math.min(lineAvailable(line), this.poolAvailableTo(line));
    if (pool.maxAmount !== null) largest = Math.min(largest, pool.maxAmount);
    return largest >= pool.minAmount ? largest : 0;
  }

  // ---- reserve ------------------------------------------------------------

  reserve(req: ReserveInput, now: number): ModelAnswer<ModelReservation> | { code: 'TTL_OUT_OF_RANGE' } {
    this.advance(now);
    // 400 comes before a stored idempotent answer: ttlSeconds must be 1..holdTtlSeconds.
    if (
      this.pool &&
      req.ttlSeconds !== undefined &&
      (req.ttlSeconds < 1 || req.ttlSeconds > this.pool.holdTtlSeconds)
    ) {
      return { code: 'TTL_OUT_OF_RANGE' };
    }
    const stored = this.reserveAnswers.get(req.idempotencyKey);
    if (stored) {
      if (stored.fingerprint !== req.fingerprint) return { ok: false, code: 'IDEMPOTENCY_KEY_REUSED', replayed: false };
      return { ...copy(stored.answer), replayed: true };
    }
    if (!this.pool) return { ok: false, code: 'PRODUCT_NOT_FOUND', replayed: false };
    const line = this.lines.get(req.customerId);
    if (!line) return { ok: false, code: 'NO_CREDIT_LINE', replayed: false };

    const codes = this.blockersFor(line, req.amount, now);
    let answer: ModelAnswer<ModelReservation>;
    if (codes.length > 0) {
      const code = codes[0]!;
      const retryAt =
        code === 'PRODUCT_NOT_OPEN' ? this.pool.opensAt : code === 'PRODUCT_PAUSED' ? this.pool.resumeAt : null;
      answer = { ok: false, code, replayed: false, drawable: this.lineView(req.customerId, now)!.drawable, retryAt };
    } else {
      const ttl = req.ttlSeconds ?? this.pool.holdTtlSeconds;
      const res: ModelReservation = {
        reservationId: req.reservationId,
        customerId: req.customerId,
        amount: req.amount,
        status: 'held',
        createdAt: now,
        expiresAt: now + ttl * 1000,
        committedAmount: 0,
        metadata: req.metadata ? copy(req.metadata) : null,
      };
      this.reservations.set(res.reservationId, res);
      this.reservationOrder.push(res.reservationId);
      this.pool.held += req.amount;
      line.held += req.amount;
      answer = { ok: true, value: copy(res), replayed: false };
    }
    this.reserveAnswers.set(req.idempotencyKey, { fingerprint: req.fingerprint, answer: copy(answer) });
    return answer;
  }

  // ---- commit / release ---------------------------------------------------

  commit(reservationId: string, amount: number | undefined, now: number): ModelAnswer<ModelReservation> {
    this.advance(now);
    if (!this.pool) return { ok: false, code: 'PRODUCT_NOT_FOUND', replayed: false };
    const res = this.reservations.get(reservationId);
    if (!res) return { ok: false, code: 'RESERVATION_NOT_FOUND', replayed: false };
    const refuse = (code: RefusalCode): ModelAnswer<ModelReservation> => ({
      ok: false,
      code,
      replayed: false,
      reservation: copy(res),
    });
    if (res.status === 'expired') return refuse('RESERVATION_EXPIRED');
    if (res.status === 'released') return refuse('RESERVATION_RELEASED');
    if (COMMITTED_ISH.has(res.status)) {
      if (amount === undefined || amount === res.committedAmount)
        return { ok: true, value: copy(res), replayed: false };
      return refuse('RESERVATION_ALREADY_COMMITTED');
    }
    // A live hold. Only a frozen or closed line blocks a commit; product status and window do not.
    const line = this.requireLine(res.customerId);
    if (line.status === 'frozen') return refuse('ACCOUNT_FROZEN');
    if (line.status === 'closed') return refuse('ACCOUNT_CLOSED');
    const committed = amount ?? res.amount;
    if (committed > res.amount) return refuse('COMMIT_EXCEEDS_HOLD');
    // The whole hold ends; `committed` becomes a draw, the rest is released at once.
    this.pool.held -= res.amount;
    line.held -= res.amount;
    this.pool.committed += committed;
    line.drawn += committed;
    line.settling += committed;
    res.status = 'committed';
    res.committedAmount = committed;
    return { ok: true, value: copy(res), replayed: false };
  }

  release(reservationId: string, now: number): ModelAnswer<ModelReservation> {
    this.advance(now);
    if (!this.pool) return { ok: false, code: 'PRODUCT_NOT_FOUND', replayed: false };
    const res = this.reservations.get(reservationId);
    if (!res) return { ok: false, code: 'RESERVATION_NOT_FOUND', replayed: false };
    if (COMMITTED_ISH.has(res.status)) {
      return { ok: false, code: 'RESERVATION_ALREADY_COMMITTED', replayed: false, reservation: copy(res) };
    }
    if (res.status === 'held') this.endHold(res, 'released');
    // released stays released; expired answers 200 with status expired.
    return { ok: true, value: copy(res), replayed: false };
  }

  // ---- repayment ----------------------------------------------------------

  repay(req: RepayInput, now: number): ModelAnswer<LineView> {
    this.advance(now);
    const stored = this.repayAnswers.get(req.idempotencyKey);
    if (stored) {
      if (stored.fingerprint !== req.fingerprint) return { ok: false, code: 'IDEMPOTENCY_KEY_REUSED', replayed: false };
      return { ...copy(stored.answer), replayed: true };
    }
    if (!this.pool) return { ok: false, code: 'PRODUCT_NOT_FOUND', replayed: false };
    const line = this.lines.get(req.customerId);
    if (!line) return { ok: false, code: 'NO_CREDIT_LINE', replayed: false };
    const repayable = line.drawn - line.settling;
    let answer: ModelAnswer<LineView>;
    if (req.amount > repayable) {
      answer = { ok: false, code: 'REPAYMENT_EXCEEDS_DRAWN', replayed: false, repayable };
    } else {
      line.drawn -= req.amount;
      this.repaid.set(req.customerId, (this.repaid.get(req.customerId) ?? 0) + req.amount);
      answer = { ok: true, value: this.lineView(req.customerId, now)!, replayed: false };
    }
    this.repayAnswers.set(req.idempotencyKey, { fingerprint: req.fingerprint, answer: copy(answer) });
    return answer;
  }

  // ---- settlement ---------------------------------------------------------

  /**
   * Settlement outcome (state-checked: a duplicate changes nothing):
   *   committed | settlement_unknown --settled-->  settled   (pool.settled += c; line.settling -= c)
   *   committed | settlement_unknown --reversed--> reversed  (pool.committed -= c; line.drawn -= c; line.settling -= c)
   *   committed                      --unknown-->  settlement_unknown
   * Already in the target state: OK, changed = false. Anything else: RESERVATION_STATE_CONFLICT.
   */
  recordSettlement(
    reservationId: string,
    outcome: 'settled' | 'reversed' | 'unknown',
    now: number,
  ): ModelAnswer<SettlementResult> {
    this.advance(now);
    if (!this.pool) return { ok: false, code: 'PRODUCT_NOT_FOUND', replayed: false };
    const res = this.reservations.get(reservationId);
    if (!res) return { ok: false, code: 'RESERVATION_NOT_FOUND', replayed: false };
    const target: ReservationStatus = outcome === 'unknown' ? 'settlement_unknown' : outcome;
    if (res.status === target) return { ok: true, value: { reservation: copy(res), changed: false }, replayed: false };
    const from: ReservationStatus[] = outcome === 'unknown' ? ['committed'] : ['committed', 'settlement_unknown'];
    if (!from.includes(res.status)) {
      return { ok: false, code: 'RESERVATION_STATE_CONFLICT', replayed: false, reservation: copy(res) };
    }
    const line = this.requireLine(res.customerId);
    const c = res.committedAmount;
    if (outcome === 'settled') {
      this.pool.settled += c;
      line.settling -= c;
    } else if (outcome === 'reversed') {
      this.pool.committed -= c;
      line.drawn -= c;
      line.settling -= c;
    }
    res.status = target;
    return { ok: true, value: { reservation: copy(res), changed: true }, replayed: false };
  }

  // ---- helpers ------------------------------------------------------------

  requirePool(): ModelPool {
    if (!this.pool) throw new Error('model: no pool');
    return this.pool;
  }

  requireLine(customerId: string): ModelLine {
    const line = this.lines.get(customerId);
    if (!line) throw new Error(`model: no line for ${customerId}`);
    return line;
  }
}

function lineAvailable(line: ModelLine): number {
  return Math.max(0, line.limit - line.held - line.drawn);
}

function pickConfig(c: ModelPoolConfig): ModelPoolConfig {
  return {
    capacity: c.capacity,
    minAmount: c.minAmount,
    maxAmount: c.maxAmount,
    holdTtlSeconds: c.holdTtlSeconds,
    opensAt: c.opensAt,
    closesAt: c.closesAt,
    status: c.status,
    pauseReason: c.pauseReason,
    resumeAt: c.resumeAt,
    priorityReserve: c.priorityReserve ? copy(c.priorityReserve) : null,
  };
}
