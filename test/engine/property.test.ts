/**
 * Model-based property test: random operation sequences run against the real
 * engine (real Lua on the run's private redis-server) and against
 * test/engine/model/quotaModel.ts (written from CONTRACT.md). After EVERY step the
 * operation's answer and every counter of the pool and of every line are
 * compared; each run ends with a conservation audit over the reservation
 * hashes.
 *
 * Time is the Redis server's: each engine Outcome carries `now`, and the
 * model expires due holds at that `now` before applying the operation. Waits
 * are real sleeps (no fake timers), rare, and only taken when they let a hold
 * expire.
 *
 * Operations are plain data (fast-check prints and shrinks them); what depends
 * on the state (which reservation, how much is repayable, "now") is resolved
 * from the model when the step runs. A failure reports fast-check's seed, path
 * and counterexample (the op list), a ready-made replay command, the
 * disagreeing fields, and the executed steps (resolved ids, amounts, answers).
 *
 * Replay a failure: PROPERTY_SEED=<seed> PROPERTY_PATH=<path> npx vitest run test/engine/property.test.ts
 * Other knobs:
 *   PROPERTY_RUNS            runs (default 60, each 54-64 generated operations)
 *   PROPERTY_NO_SHRINK=1     report the first failure as found
 *   PROPERTY_TIME_LIMIT_MS   bound on the whole check incl. shrinking (default 120000)
 *   PROPERTY_STATS=1         print how often each operation got each answer (coverage)
 *   PROPERTY_DEBUG_LOG=1     print every run's executed steps
 */
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  LineSnapshot,
  LineStatus,
  Outcome,
  PoolConfig,
  PoolSnapshot,
  Reservation,
} from '../../src/engine/types.js';
import {
  QuotaModel,
  type LineView,
  type ModelAnswer,
  type ModelPoolConfig,
  type ModelReservation,
  type PoolView,
} from './model/quotaModel.js';
import { readAllRecords, readLine } from '../../src/redis/storedRecords.js';
import { reservationIdFor, shardOfCustomer } from '../../src/engine/shards.js';
import { booksOf, lineBooks } from '../support/books.js';
import { createEngineContext, uniqueId, type EngineContext } from '../support/engineContext.js';

// ---------------------------------------------------------------------------
// Operations (plain data: fast-check prints and shrinks them). Anything that
// depends on the state (which reservation, how much is repayable, "now") is
// resolved when the step runs, from the model.
// ---------------------------------------------------------------------------

const CUSTOMERS = ['c0', 'c1', 'c2', 'c3', 'c4'] as const; // c4 has no line until a `line` op creates one
const TIERS = [null, 'gold', 'silver'] as const;
type Tier = (typeof TIERS)[number];
type When = 'none' | 'past' | 'future';

type Op =
  | {
      t: 'reserve';
      c: number;
      /** Pick (by c) among the customers the model says can draw now, if any. */
      preferDrawable: boolean;
      amount: number;
      /** Size the amount from the line's drawable as the model sees it: exactly it, one more, a share of it. */
      size: 'abs' | 'drawable' | 'drawable+1' | 'pct';
      pct: number;
      ttl: number | null;
      meta: boolean;
      /** Reuse an earlier idempotency key (picked from the most recent ones) with the same or this op's body. */
      reuse: { pick: number; sameBody: boolean } | null;
    }
  | {
      t: 'commit';
      pick: number;
      preferHeld: boolean;
      mode: 'full' | 'exact' | 'partial' | 'over' | 'same' | 'other';
      pct: number;
      bogus: boolean;
    }
  | { t: 'release'; pick: number; preferHeld: boolean; bogus: boolean }
  | {
      t: 'repay';
      c: number;
      preferRepayable: boolean;
      mode: 'all' | 'part' | 'over' | 'raw';
      pct: number;
      amount: number;
      reuse: { pick: number; sameBody: boolean } | null;
      /** Use a key a reserve used: keys are scoped to an operation, so it is a fresh key for repayments. */
      reserveKey: boolean;
    }
  | { t: 'settle'; pick: number; preferCommitted: boolean; outcome: 'settled' | 'reversed' | 'unknown' }
  /**
   * preferHolder: pick (by c) among the customers holding a live hold, if any (so commits meet frozen/closed lines).
   */
  | { t: 'line'; c: number; preferHolder: boolean; limit: number; status: LineStatus; tier: Tier }
  | { t: 'capacity'; mode: 'abs' | 'usage'; value: number }
  | { t: 'status'; to: 'open' | 'paused' | 'closed'; resume: When }
  | { t: 'window'; opens: When; closes: When }
  | { t: 'priority'; reserve: { tiers: string[]; amount: number } | null }
  | { t: 'range'; min: number; max: number | null }
  | { t: 'holdTtl'; seconds: number }
  /** PUT: replace the whole config (unlisted fields back to defaults); counters are kept. */
  | { t: 'put'; capacity: number; min: number; max: number | null; holdTtl: number }
  /** Sleep `ms`, or (aim) until just past the soonest hold's expiry; skipped when no hold would fall due. */
  | { t: 'wait'; ms: number; aim: boolean; jitter: number }
  /**
   * Sharded runs only (invisible to the model): a rebalancer step, or move pct% of a sub-pool's free
   * quota to another, or (crash) only the giving step, leaving it in transit for the next borrower.
   */
  | { t: 'shardMove'; from: number; to: number; pct: number; crash: boolean; rebalance: boolean };

interface InitialState {
  capacity: number;
  minAmount: number;
  maxAmount: number | null;
  holdTtlSeconds: number;
  priority: { tiers: string[]; amount: number } | null;
  lines: { limit: number; status: LineStatus; tier: Tier }[];
  /** A run near the top of the number range: capacity 2^53-1, c0's limit 2^53-1, c1's 2^52. */
  huge: boolean;
}

/** Amounts, limits and capacities go up to 2^53-1 (the contract's largest amount). */
const HUGE = Number.MAX_SAFE_INTEGER;
const pickArb = fc.oneof({ weight: 5, arbitrary: fc.nat({ max: 3 }) }, { weight: 1, arbitrary: fc.nat({ max: 200 }) });
const customerArb = fc.oneof({ weight: 10, arbitrary: fc.nat({ max: 3 }) }, { weight: 1, arbitrary: fc.constant(4) });
const amountArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 60 }) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 500 }) },
  { weight: 2, arbitrary: fc.constantFrom(1, 4, 5, 19, 20, 50, 51, 400, 401) },
  { weight: 1, arbitrary: fc.integer({ min: 500, max: 6000 }) },
  { weight: 1, arbitrary: fc.constantFrom(HUGE, HUGE - 1, 2 ** 52) },
);
const limitArb = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(0, 50, 100, 300, 600, 1000, 5000) },
  { weight: 12, arbitrary: fc.integer({ min: 0, max: 2000 }) },
  { weight: 1, arbitrary: fc.constantFrom(HUGE, 2 ** 52) },
);
const capacityArb = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(0, 100, 500, 1000, 3000) },
  { weight: 10, arbitrary: fc.integer({ min: 0, max: 4000 }) },
  { weight: 1, arbitrary: fc.constantFrom(HUGE, 2 ** 52) },
);
const lineStatusArb = fc.oneof(
  { weight: 12, arbitrary: fc.constant<LineStatus>('active') },
  { weight: 1, arbitrary: fc.constant<LineStatus>('pending_activation') },
  { weight: 2, arbitrary: fc.constant<LineStatus>('frozen') },
  { weight: 1, arbitrary: fc.constant<LineStatus>('closed') },
);
const tierArb = fc.constantFrom(...TIERS);
const priorityArb = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  {
    weight: 2,
    arbitrary: fc.record({
      tiers: fc.constantFrom<string[][]>(['gold'], ['gold', 'silver'], ['silver']),
      amount: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 4000 })),
    }),
  },
);
const whenArb = fc.constantFrom<When>('none', 'none', 'none', 'past', 'future');
const reuseArb = fc.oneof(
  { weight: 8, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.record({ pick: pickArb, sameBody: fc.boolean() }) },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 34,
    arbitrary: fc.record({
      t: fc.constant('reserve' as const),
      c: customerArb,
      preferDrawable: fc.oneof(
        { weight: 3, arbitrary: fc.constant(true) },
        { weight: 2, arbitrary: fc.constant(false) },
      ),
      amount: amountArb,
      size: fc.constantFrom('abs', 'abs', 'abs', 'drawable', 'drawable+1', 'pct', 'pct'),
      pct: fc.integer({ min: 1, max: 100 }),
      ttl: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 3, arbitrary: fc.constantFrom(1, 1, 2, 3) }),
      meta: fc.boolean(),
      reuse: reuseArb,
    }),
  },
  {
    weight: 14,
    arbitrary: fc.record({
      t: fc.constant('commit' as const),
      pick: pickArb,
      preferHeld: fc.boolean(),
      mode: fc.constantFrom('full', 'exact', 'partial', 'partial', 'over', 'same', 'other'),
      pct: fc.integer({ min: 1, max: 99 }),
      bogus: fc.oneof({ weight: 20, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    }),
  },
  {
    weight: 7,
    arbitrary: fc.record({
      t: fc.constant('release' as const),
      pick: pickArb,
      preferHeld: fc.boolean(),
      bogus: fc.oneof({ weight: 20, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('repay' as const),
      c: customerArb,
      preferRepayable: fc.oneof(
        { weight: 3, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
      mode: fc.constantFrom('all', 'all', 'part', 'part', 'over', 'raw'),
      pct: fc.integer({ min: 1, max: 99 }),
      amount: amountArb,
      reuse: reuseArb,
      reserveKey: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      t: fc.constant('settle' as const),
      pick: pickArb,
      preferCommitted: fc.oneof(
        { weight: 4, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
      outcome: fc.constantFrom('settled', 'settled', 'reversed', 'unknown'),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      t: fc.constant('line' as const),
      c: fc.nat({ max: 4 }),
      preferHolder: fc.boolean(),
      limit: limitArb,
      status: lineStatusArb,
      tier: tierArb,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('capacity' as const),
      mode: fc.constantFrom('abs', 'usage'),
      value: fc.oneof(
        { weight: 12, arbitrary: fc.integer({ min: -150, max: 3000 }) },
        { weight: 1, arbitrary: fc.constant(HUGE) },
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('status' as const),
      to: fc.constantFrom('open', 'open', 'open', 'open', 'open', 'paused', 'closed'),
      resume: whenArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('window' as const), opens: whenArb, closes: whenArb }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('priority' as const), reserve: priorityArb }) },
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('shardMove' as const),
      from: fc.nat({ max: 3 }),
      to: fc.nat({ max: 3 }),
      pct: fc.constantFrom(10, 50, 100),
      crash: fc.boolean(),
      rebalance: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('range' as const),
      min: fc.constantFrom(1, 5, 20),
      max: fc.constantFrom(null, 50, 400),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('holdTtl' as const), seconds: fc.constantFrom(2, 3, 300) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('put' as const),
      capacity: capacityArb,
      min: fc.constantFrom(1, 1, 5, 20),
      max: fc.constantFrom(null, null, 50, 400),
      holdTtl: fc.constantFrom(2, 3, 300),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('wait' as const),
      ms: fc.integer({ min: 300, max: 1200 }),
      aim: fc.boolean(),
      jitter: fc.oneof(fc.integer({ min: -2, max: 3 }), fc.integer({ min: 0, max: 40 })),
    }),
  },
);

const initArb: fc.Arbitrary<InitialState> = fc.record({
  capacity: capacityArb,
  minAmount: fc.constantFrom(1, 1, 5, 20),
  maxAmount: fc.constantFrom(null, null, 50, 400),
  holdTtlSeconds: fc.constantFrom(2, 3, 300),
  priority: priorityArb,
  lines: fc.array(fc.record({ limit: limitArb, status: lineStatusArb, tier: tierArb }), { minLength: 4, maxLength: 4 }),
  huge: fc.oneof({ weight: 7, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

const inputArb = fc.record({ init: initArb, ops: fc.array(opArb, { minLength: 54, maxLength: 64 }) });
/** Sharded runs: 2 to 4 sub-pools; the same operations, plus moves and interrupted moves between sub-pools. */
const shardedInputArb = fc.record({
  init: initArb,
  ops: fc.array(opArb, { minLength: 54, maxLength: 64 }),
  shards: fc.integer({ min: 2, max: 4 }),
});

// ---------------------------------------------------------------------------
// Comparison helpers
// ---------------------------------------------------------------------------

class Mismatch extends Error {}

const HOUR = 3_600_000;

/** The canonical request body as a JSON value (what the HTTP layer fingerprints). */
const fingerprintOf = (body: Record<string, unknown>) =>
  JSON.stringify(
    Object.fromEntries(
      Object.entries(body)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => a.localeCompare(b)),
    ),
  );

interface ReserveBody {
  customerId: string;
  amount: number;
  ttlSeconds?: number | undefined;
  metadata?: Record<string, unknown> | undefined;
}
interface RepayBody {
  customerId: string;
  amount: number;
}

/** Everything of an outcome except when it was answered and whether it was a replay. */
const body = (o: Outcome<unknown>) =>
  o.ok ? { ok: true, value: o.value } : { ok: false, code: o.code, context: o.context };

let totalSteps = 0;
let totalRuns = 0;
/** Sharded answers read while a hold fell due (compared within what fell due, see Run.slack). */
let totalStraddled = 0;
let totalWaits = 0;
let totalSleepMs = 0;
/** How often each operation answered each code (coverage, printed at the end). */
const stats = new Map<string, number>();
const count = (label: string) => stats.set(label, (stats.get(label) ?? 0) + 1);

/** A copy of the model (its maps and records), to evaluate a step at another instant. */
function cloneModel(m: QuotaModel): QuotaModel {
  return Object.assign(Object.create(QuotaModel.prototype) as QuotaModel, structuredClone({ ...m }));
}

class Run {
  readonly productId = uniqueId('p');
  model = new QuotaModel();
  /**
   * Sharded runs: the amount of the holds that fell due while the current answer was being read. A
   * sharded answer is read from several sub-pools one after another (contract: exact for each part,
   * not one atomic snapshot), so a hold falling due between two parts makes the product-wide figures
   * (pool counters, drawable) differ from the model's single instant by at most that amount.
   */
  private slack = 0;
  /** Sharded runs: Redis time when the current step's engine call started. */
  private stepStart = 0;
  readonly log: string[] = [];
  private errors: string[] = [];
  private step = 0;
  private waited = false;
  private resSeq = 0;
  private keySeq = 0;
  private readonly reserveKeys: string[] = [];
  private readonly reserveBodies = new Map<string, ReserveBody>();
  private readonly reserveFirst = new Map<string, Outcome<Reservation>>();
  private readonly repayKeys: string[] = [];
  private readonly repayBodies = new Map<string, RepayBody>();
  private readonly repayFirst = new Map<string, Outcome<LineSnapshot>>();

  constructor(
    private readonly ctx: EngineContext,
    /** Sub-pools of the run's product (1: unsharded). */
    readonly shards = 1,
  ) {}

  /** A sharded product scopes idempotency keys to the customer too (contract): the model sees them so. */
  private modelKey(key: string, customerId: string) {
    return this.shards > 1 ? `${customerId}|${key}` : key;
  }

  private get engine() {
    return this.ctx.engine;
  }

  // ---- checks -------------------------------------------------------------

  private check(what: string, engine: unknown, model: unknown) {
    if (!isDeepStrictEqual(engine, model)) {
      this.errors.push(`${what}: engine=${JSON.stringify(engine)} model=${JSON.stringify(model)}`);
    }
  }

  /** A product-wide figure of a sharded answer: exact, or within `tolerance` when holds fell due while it was read. */
  private near(what: string, engine: number, model: number, tolerance: number) {
    if (this.slack === 0 || tolerance === 0) return this.check(what, engine, model);
    if (Math.abs(engine - model) > tolerance) {
      this.errors.push(
        `${what}: engine=${engine} model=${model} (more than ${tolerance} ` +
          `apart; ${this.slack} fell due while it was read)`,
      );
    }
  }

  /** Redis time (ms), as the scripts read it. */
  private async redisNow(): Promise<number> {
    const [s, us] = (await this.ctx.redis.call('TIME')) as [string, string];
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  }

  /** Sharded runs: what fell due in (from, now]: the model's holds live at `from` due by now (0 for unsharded runs). */
  private async fellDueSince(from: number): Promise<number> {
    if (this.shards === 1) return 0;
    const to = await this.redisNow();
    let amount = 0;
    for (const r of this.model.reservations.values()) {
      if ((r.status === 'held' || r.status === 'expired') && r.expiresAt > from && r.expiresAt <= to)
        amount += r.amount;
    }
    if (amount > 0) totalStraddled++;
    return amount;
  }

  private flush(context: string) {
    if (this.errors.length === 0) return;
    const errors = this.errors;
    this.errors = [];
    throw new Mismatch(
      `model/engine disagree at step ${this.step} (${context}) in product ${this.productId}:\n  ` +
        errors.join('\n  ') +
        `\n--- executed steps ---\n${this.log.join('\n')}`,
    );
  }

  private note(line: string) {
    this.log.push(`#${this.step} ${line}`);
    const answer = / -> (\S+)( \(replayed\))?.*?( status=\S+)?$/.exec(line);
    const outcome = `${answer?.[1] ?? ''}${answer?.[2] ? ' replayed' : ''}${answer?.[3] ?? ''}`;
    count(`${line.split(' ')[0]}${line.startsWith('patch') ? '' : ` ${outcome}`}`);
  }

  private comparePool(label: string, eng: PoolSnapshot, mv: PoolView) {
    // Escrow: the allotments, quota in transit and withheld quota add up to capacity exactly.
    const allotments = (eng.shards ?? []).reduce((s, x) => s + x.allotment, 0);
    this.check(`${label}.shards count`, eng.shards?.length, this.shards);
    // Invariant J, what makes every grant exact, concurrent ones too: for every sub-pool k,
    // free_k + the other sub-pools' positive free <= the product's free (capacity - use, may be negative).
    const shardsList = eng.shards ?? [];
    // (BigInt: sums of amounts near 2^53 are not exact as numbers.)
    const big = BigInt;
    const productFree = big(eng.capacity) - big(eng.held) - big(eng.committed);
    const frees = shardsList.map((x) => big(x.allotment) - big(x.held) - big(x.committed));
    const pos = (f: bigint) => (f > 0n ? f : 0n);
    const positive = frees.reduce((s, f) => s + pos(f), 0n);
    frees.forEach((f, k) => {
      const lhs = f + positive - pos(f);
      if (lhs > productFree) {
        const state = { shards: shardsList, withheld: eng.withheld, inTransit: eng.inTransit, capacity: eng.capacity };
        this.errors.push(
          `${label}: invariant J broken at sub-pool ${k}: ${lhs} > ${productFree}: ${JSON.stringify(state)}`,
        );
      }
    });
    // (Withheld quota after a cut far below use can pass 2^53 in total; exact only below that.)
    if ([allotments, eng.withheld ?? 0, eng.inTransit ?? 0].every((n) => Number.isSafeInteger(n))) {
      this.check(
        `${label}: allotments + in transit + withheld = capacity`,
        allotments + (eng.inTransit ?? 0) + (eng.withheld ?? 0),
        eng.capacity,
      );
    }
    for (const k of ['capacity', 'committed', 'settled'] as const) this.check(`${label}.${k}`, eng[k], mv[k]);
    for (const k of ['held', 'available', 'availableToAllTiers'] as const)
      this.near(`${label}.${k}`, eng[k], mv[k], this.slack);
    const p = this.model.requirePool();
    this.check(`${label}.status`, eng.status, mv.status);
    this.check(`${label}.pauseReason`, eng.pauseReason, p.pauseReason);
    this.check(`${label}.minAmount`, eng.minAmount, p.minAmount);
    this.check(`${label}.maxAmount`, eng.maxAmount, p.maxAmount);
    this.check(`${label}.holdTtlSeconds`, eng.holdTtlSeconds, p.holdTtlSeconds);
    this.check(`${label}.opensAt`, eng.opensAt, p.opensAt);
    this.check(`${label}.closesAt`, eng.closesAt, p.closesAt);
    this.check(`${label}.resumeAt`, eng.resumeAt, p.resumeAt);
    this.check(`${label}.priorityReserve`, eng.priorityReserve, p.priorityReserve);
  }

  private compareLine(label: string, eng: LineSnapshot, mv: LineView) {
    for (const k of ['customerId', 'limit', 'status', 'tier', 'held', 'drawn', 'settling', 'available'] as const) {
      this.check(`${label}.${k}`, eng[k], mv[k]);
    }
    // The line and its own sub-pool are one instant; the other sub-pools are read after it.
    const minAmount = this.model.requirePool().minAmount;
    this.near(`${label}.drawable`, eng.drawable, mv.drawable, this.slack === 0 ? 0 : this.slack + minAmount);
    if (this.slack === 0) this.check(`${label}.blockers`, eng.blockers, mv.blockers);
    else {
      const other = (b: string[]) => b.filter((c) => c !== 'POOL_EXHAUSTED');
      this.check(`${label}.blockers (other than POOL_EXHAUSTED)`, other(eng.blockers), other(mv.blockers));
    }
    const ml = this.model.lines.get(mv.customerId);
    this.check(`${label}.statusReason`, eng.statusReason, ml?.statusReason ?? null);
    this.check(`${label}: blockers empty exactly when drawable > 0`, eng.blockers.length === 0, eng.drawable > 0);
  }

  private compareReservation(label: string, eng: Reservation, m: ModelReservation) {
    this.check(`${label}.reservationId`, eng.reservationId, m.reservationId);
    this.check(`${label}.productId`, eng.productId, this.productId);
    this.check(`${label}.customerId`, eng.customerId, m.customerId);
    this.check(`${label}.amount`, eng.amount, m.amount);
    this.check(`${label}.status`, eng.status, m.status);
    this.check(`${label}.committedAmount`, eng.committedAmount, m.committedAmount);
    this.check(`${label}.createdAt`, eng.createdAt, m.createdAt);
    this.check(`${label}.expiresAt`, eng.expiresAt, m.expiresAt);
    this.check(`${label}.metadata`, eng.metadata, m.metadata);
  }

  private compareAnswer<E, M>(
    label: string,
    eng: Outcome<E>,
    m: ModelAnswer<M>,
    compareValue: (label: string, e: E, m: M) => void,
  ) {
    const engCode = eng.ok ? 'OK' : eng.code;
    const modelCode = m.ok ? 'OK' : m.code;
    this.check(`${label} code`, engCode, modelCode);
    this.check(`${label} replayed`, eng.replayed, m.replayed);
    if (eng.ok && m.ok) compareValue(`${label} value`, eng.value, m.value);
    if (!eng.ok && !m.ok && eng.code === m.code) {
      if (m.drawable !== undefined && eng.context.drawable !== undefined) {
        const minAmount = this.model.requirePool().minAmount;
        this.near(
          `${label} context.drawable`,
          eng.context.drawable,
          m.drawable,
          this.slack === 0 ? 0 : this.slack + minAmount,
        );
      } else if (m.drawable !== undefined) this.check(`${label} context.drawable`, eng.context.drawable, m.drawable);
      if (m.retryAt !== undefined) this.check(`${label} context.retryAt`, eng.context.retryAt ?? null, m.retryAt);
      if (m.repayable !== undefined) this.check(`${label} context.repayable`, eng.context.repayable, m.repayable);
      if (m.reservation && eng.context.reservation)
        this.compareReservation(`${label} context.reservation`, eng.context.reservation, m.reservation);
    }
  }

  private describe(o: Outcome<unknown>) {
    return `${o.ok ? 'OK' : o.code}${o.replayed ? ' (replayed)' : ''} @${o.now}`;
  }

  // ---- reads after every step ---------------------------------------------

  private async compareAll(context: string) {
    const from = this.shards > 1 ? await this.redisNow() : 0;
    const reads = await Promise.all([
      this.engine.readPool(this.productId).then((o) => ({ kind: 'pool' as const, customerId: '', o })),
      ...CUSTOMERS.map((c) =>
        this.engine.readLine(this.productId, c).then((o) => ({ kind: 'line' as const, customerId: c, o })),
      ),
    ]);
    // One connection: Redis ran them in order; sort by `now` anyway so the model's clock only moves forward.
    reads.sort((a, b) => a.o.now - b.o.now);
    this.slack = await this.fellDueSince(from);
    for (const r of reads) {
      if (r.kind === 'pool') {
        const mv = this.model.poolView(r.o.now);
        if (!r.o.ok) this.errors.push(`readPool: ${r.o.code}`);
        else this.comparePool('pool', r.o.value as PoolSnapshot, mv);
      } else {
        const mv = this.model.lineView(r.customerId, r.o.now);
        if (mv === null) this.check(`readLine(${r.customerId}) code`, r.o.ok ? 'OK' : r.o.code, 'NO_CREDIT_LINE');
        else if (!r.o.ok) this.check(`readLine(${r.customerId}) code`, r.o.code, 'OK');
        else this.compareLine(`line ${r.customerId}`, r.o.value as LineSnapshot, mv);
      }
    }
    this.flush(context);
    this.slack = 0;
  }

  // ---- setup --------------------------------------------------------------

  async setup(init: InitialState) {
    const config: Partial<ModelPoolConfig> = {
      capacity: init.huge ? HUGE : init.capacity,
      minAmount: init.minAmount,
      maxAmount: init.maxAmount,
      holdTtlSeconds: init.holdTtlSeconds,
      priorityReserve: init.priority,
      ...(this.shards > 1 ? { shards: this.shards } : {}),
    };
    await this.patchPool(config, 'put', `put product ${JSON.stringify(config)}`);
    for (let i = 0; i < init.lines.length; i++) {
      const l = init.lines[i]!;
      const limit = init.huge && i === 0 ? HUGE : init.huge && i === 1 ? 2 ** 52 : l.limit;
      await this.upsertLine(CUSTOMERS[i]!, limit, l.status, l.tier);
    }
    await this.compareAll('setup');
  }

  private async patchPool(config: Partial<PoolConfig> & { shards?: number }, mode: 'put' | 'patch', what: string) {
    const o = await this.engine.upsertProduct(this.productId, config, mode);
    this.slack = await this.fellDueSince(this.stepStart);
    const m = this.model.upsertPool(config, mode, o.now);
    this.note(`${what} -> ${this.describe(o)}`);
    if ('code' in m) this.check(`upsertProduct code`, o.ok ? 'OK' : o.code, m.code);
    else if (!o.ok) this.check('upsertProduct code', o.code, 'OK');
    else {
      this.check('upsertProduct created', o.value.created, m.created);
      this.comparePool('upsertProduct pool', o.value.pool, this.model.poolView(o.now));
    }
  }

  private async upsertLine(customerId: string, limit: number, status: LineStatus, tier: Tier) {
    const cfg = { customerId, limit, status, statusReason: status === 'active' ? null : `reason-${status}`, tier };
    const o = await this.engine.upsertLines(this.productId, [cfg]);
    this.slack = await this.fellDueSince(this.stepStart);
    const m = this.model.upsertLine(cfg, o.now);
    this.note(`line ${customerId} limit=${limit} status=${status} tier=${tier} -> ${this.describe(o)}`);
    this.compareAnswer('upsertLines', o, m, (label, e, mv) => this.compareLine(`${label}.line`, e.line, mv));
  }

  // ---- steps --------------------------------------------------------------

  private pickReservation(pick: number, filter?: (r: ModelReservation) => boolean): ModelReservation | null {
    const all = this.model.reservationOrder.map((id) => this.model.reservations.get(id)!);
    const preferred = filter ? all.filter(filter) : all;
    const list = preferred.length > 0 ? preferred : all;
    if (list.length === 0) return null;
    return list[list.length - 1 - (pick % list.length)]!;
  }

  async run(op: Op): Promise<boolean> {
    this.step++;
    this.slack = 0;
    if (this.shards > 1) this.stepStart = await this.redisNow();
    switch (op.t) {
      case 'reserve':
        await this.reserve(op);
        break;
      case 'commit': {
        const res = op.bogus
          ? null
          : this.pickReservation(op.pick, op.preferHeld ? (r) => r.status === 'held' : undefined);
        const id = res?.reservationId ?? 'r-missing';
        let amount: number | undefined;
        if (res) {
          const committed = res.committedAmount || res.amount;
          amount = {
            full: undefined,
            exact: res.amount,
            partial: Math.max(1, Math.floor((res.amount * op.pct) / 100)),
            over: res.amount + 1 + op.pct,
            same: committed,
            other: committed > 1 ? committed - 1 : committed + 1,
          }[op.mode];
        }
        const before = res ? `${res.status} ${res.amount}` : '-';
        const o = await this.engine.commit(this.productId, id, amount);
        const m = this.model.commit(id, amount, o.now);
        this.note(`commit ${id} amount=${amount ?? '(all)'} [was ${before}] -> ${this.describe(o)}`);
        this.compareAnswer('commit', o, m, (l, e, mv) => this.compareReservation(l, e, mv));
        break;
      }
      case 'release': {
        const res = op.bogus
          ? null
          : this.pickReservation(op.pick, op.preferHeld ? (r) => r.status === 'held' : undefined);
        const id = res?.reservationId ?? 'r-missing';
        const before = res?.status ?? '-';
        const o = await this.engine.release(this.productId, id);
        const m = this.model.release(id, o.now);
        this.note(`release ${id} [was ${before}] -> ${this.describe(o)}${o.ok ? ` status=${o.value.status}` : ''}`);
        this.compareAnswer('release', o, m, (l, e, mv) => this.compareReservation(l, e, mv));
        break;
      }
      case 'repay':
        await this.repay(op);
        break;
      case 'settle': {
        const res = this.pickReservation(
          op.pick,
          op.preferCommitted ? (r) => r.status === 'committed' || r.status === 'settlement_unknown' : undefined,
        );
        const id = res?.reservationId ?? 'r-missing';
        const before = res?.status ?? '-';
        const o = await this.engine.recordSettlement(
          this.productId,
          id,
          op.outcome,
          op.outcome === 'settled' ? '' : 'test',
        );
        const m = this.model.recordSettlement(id, op.outcome, o.now);
        this.note(`recordSettlement ${id} ${op.outcome} [was ${before}] -> ${this.describe(o)}`);
        this.compareAnswer('recordSettlement', o, m, (l, e, mv) => {
          this.compareReservation(`${l}.reservation`, e.reservation, mv.reservation);
          this.check(`${l}.changed`, e.changed, mv.changed);
        });
        break;
      }
      case 'line': {
        const holders = CUSTOMERS.filter((c) =>
          [...this.model.reservations.values()].some((r) => r.customerId === c && r.status === 'held'),
        );
        const customerId = op.preferHolder && holders.length > 0 ? holders[op.c % holders.length]! : CUSTOMERS[op.c]!;
        await this.upsertLine(customerId, op.limit, op.status, op.tier);
        break;
      }
      case 'capacity': {
        const p = this.model.requirePool();
        // At most 2^53-1, as the API takes it (the model's sums above that would not be exact numbers).
        // Below use too, sharded runs included (each sub-pool then withholds quota, returned as uses drain).
        const capacity = Math.min(
          HUGE,
          op.mode === 'abs' ? Math.max(0, op.value) : Math.max(0, p.held + p.committed + (op.value % 150)),
        );
        await this.patchPool(
          { capacity },
          'patch',
          `patch capacity=${capacity} (held+committed was ${p.held + p.committed})`,
        );
        break;
      }
      case 'status': {
        const now = this.model.lastNow;
        const at = (w: When) => (w === 'none' ? null : w === 'past' ? now - HOUR : now + HOUR);
        const patch: Partial<PoolConfig> =
          op.to === 'paused'
            ? // With no resumeAt given, the patch clears any earlier one (a past one would reopen the pool at once).
              op.resume === 'none'
              ? { status: 'paused' }
              : { status: 'paused', pauseReason: 'maintenance', resumeAt: at(op.resume) }
            : op.to === 'open'
              ? { status: 'open' }
              : { status: 'closed' };
        await this.patchPool(patch, 'patch', `patch ${JSON.stringify(patch)}`);
        break;
      }
      case 'window': {
        const now = this.model.lastNow;
        // opensAt in {none, now-2h, now+1h}, closesAt in {none, now-1h, now+2h}; "opens in the future,
        // closed in the past" is inconsistent (INVALID_CONFIG), so closesAt is dropped then.
        const opensAt = op.opens === 'none' ? null : op.opens === 'past' ? now - 2 * HOUR : now + HOUR;
        let closesAt = op.closes === 'none' ? null : op.closes === 'past' ? now - HOUR : now + 2 * HOUR;
        if (opensAt !== null && closesAt !== null && closesAt <= opensAt) closesAt = null;
        await this.patchPool(
          { opensAt, closesAt },
          'patch',
          `patch opensAt=${op.opens} closesAt=${closesAt === null ? 'none' : op.closes}`,
        );
        break;
      }
      case 'priority':
        await this.patchPool(
          { priorityReserve: op.reserve },
          'patch',
          `patch priorityReserve=${JSON.stringify(op.reserve)}`,
        );
        break;
      case 'range':
        await this.patchPool(
          { minAmount: op.min, maxAmount: op.max },
          'patch',
          `patch minAmount=${op.min} maxAmount=${op.max}`,
        );
        break;
      case 'put': {
        const config = { capacity: op.capacity, minAmount: op.min, maxAmount: op.max, holdTtlSeconds: op.holdTtl };
        await this.patchPool(config, 'put', `put product ${JSON.stringify(config)}`);
        break;
      }
      case 'holdTtl':
        await this.patchPool({ holdTtlSeconds: op.seconds }, 'patch', `patch holdTtlSeconds=${op.seconds}`);
        break;
      case 'shardMove': {
        if (this.shards === 1) {
          this.step--;
          return false;
        }
        if (op.rebalance) {
          // The rebalancer's step: completes what is in transit, evens out the sub-pools' free quota.
          this.note(`shardRebalance: moved ${await this.engine.shards.rebalance(this.productId)}`);
          break;
        }
        const tags = await this.engine.shards.tagsOf(this.productId);
        const from = op.from % this.shards;
        const to = op.to % this.shards;
        const pools = await this.engine.shards.readSubPools(this.productId, tags);
        const free = pools ? Math.max(0, pools[from]!.capacity - pools[from]!.held - pools[from]!.committed) : 0;
        const amount = Math.floor((free * op.pct) / 100);
        if (from === to || amount === 0) {
          this.step--;
          return false;
        }
        if (op.crash) {
          // The giving step alone: the process "dies" before crediting; the quota is in transit.
          const keys = ['pool', 'res', 'lines', 'events', 'status:held', 'status:expired', 'xfer:pending'].map(
            (k) => `${this.ctx.keys.prefix}:{${tags[from]}}:${k}`,
          );
          await this.ctx.redis.call(
            'FCALL',
            this.engine.library.functionName('shard-give'),
            7,
            ...keys,
            '',
            amount,
            String(to),
            'priority',
            100,
          );
        } else {
          await this.engine.shards.move(this.productId, tags, from, to, amount, 'priority', 'rebalance');
        }
        this.note(`shardMove ${from}->${to} ${amount}${op.crash ? ' (crash after the giving step)' : ''}`);
        break;
      }
      case 'wait': {
        // Only worth its time when a live hold falls due during the sleep (as far as the model can tell).
        const held = [...this.model.reservations.values()].filter((r) => r.status === 'held');
        const soonest = Math.min(...held.map((r) => r.expiresAt)) - this.model.lastNow;
        // Aimed: just past the soonest expiry, 300..1200 ms. At most one wait a run (keeps the test fast).
        // Sharded runs aim well past the expiry: a line's drawable is read from several sub-pools, one after
        // another (contract: exact per part, not one atomic snapshot), so a hold falling due between those
        // reads would make it differ from the model's single instant.
        const aimed = this.shards > 1 ? soonest + 60 + Math.abs(op.jitter) : soonest + op.jitter;
        const sleep = op.aim ? Math.min(1200, Math.max(300, aimed)) : op.ms;
        const due = held.filter((r) => r.expiresAt <= this.model.lastNow + sleep + 3).length;
        if (due === 0 || this.waited) {
          this.step--;
          return false;
        }
        await new Promise((resolve) => setTimeout(resolve, sleep));
        this.waited = true;
        totalWaits++;
        totalSleepMs += sleep;
        this.note(`wait ${sleep} ms (about ${due} hold(s) fall due)`);
        break;
      }
    }
    this.flush(JSON.stringify(op));
    await this.compareAll(JSON.stringify(op));
    return true;
  }

  private async reserve(op: Extract<Op, { t: 'reserve' }>) {
    let key: string;
    let req: ReserveBody;
    const drawableOf = (c: string) => this.model.lineView(c, this.model.lastNow)?.drawable ?? 0;
    const candidates = CUSTOMERS.filter((c) => drawableOf(c) > 0);
    const customerId =
      op.preferDrawable && candidates.length > 0 ? candidates[op.c % candidates.length]! : CUSTOMERS[op.c]!;
    const drawable = drawableOf(customerId);
    const amount =
      op.size === 'abs' || drawable === 0
        ? op.amount
        : { drawable, 'drawable+1': drawable + 1, pct: Math.max(1, Math.floor((drawable * op.pct) / 100)) }[op.size];
    const own: ReserveBody = {
      customerId,
      amount,
      ttlSeconds: op.ttl ?? undefined,
      metadata: op.meta ? { channel: 'app', n: amount } : undefined,
    };
    if (op.reuse && this.reserveKeys.length > 0) {
      key = this.reserveKeys[this.reserveKeys.length - 1 - (op.reuse.pick % this.reserveKeys.length)]!;
      req = op.reuse.sameBody ? this.reserveBodies.get(key)! : own;
    } else {
      key = `k${++this.keySeq}`;
      req = own;
      this.reserveKeys.push(key);
      this.reserveBodies.set(key, req);
    }
    const baseId = `r${++this.resSeq}`;
    // A sharded product's reservation ids carry the customer's sub-pool (src/engine/shards.ts).
    const reservationId = reservationIdFor(baseId, shardOfCustomer(req.customerId, this.shards));
    const fingerprint = fingerprintOf({ ...req });
    const o = await this.engine.reserve({
      productId: this.productId,
      reservationId: baseId,
      idempotencyKey: key,
      fingerprint,
      ...req,
    });
    this.slack = await this.fellDueSince(this.stepStart);
    const mkey = this.modelKey(key, req.customerId);
    const hadStored = this.model.reserveAnswerStored(mkey);
    const input = { reservationId, idempotencyKey: mkey, fingerprint, ...req };
    const before = this.slack > 0 ? cloneModel(this.model) : null;
    let m = this.model.reserve(input, o.now);
    if (before && !o.ok && o.code === 'POOL_EXHAUSTED' && 'ok' in m && m.ok && !m.replayed) {
      // A hold in another sub-pool fell due after the borrow round proved the product short: the
      // refusal is the product's state when the call started (the model then, moved on to the answer's now).
      const then = before.reserve(input, this.stepStart);
      if ('ok' in then && !then.ok && then.code === 'POOL_EXHAUSTED') {
        before.advance(o.now);
        this.model = before;
        m = then;
      }
    }
    // A refusal's drawable (within the slack, checked below) is stored with it: replays answer the engine's.
    if (this.slack > 0 && !o.ok && !o.replayed && o.context.drawable !== undefined)
      this.model.amendStoredDrawable(mkey, o.context.drawable);
    this.note(
      `reserve ${req.customerId} amount=${req.amount} ttl=${req.ttlSeconds ?? '-'} ` +
        `meta=${req.metadata ? 'y' : 'n'} ` +
        `key=${key}${op.reuse ? (op.reuse.sameBody ? ' (reused, same body)' : ' (reused, own body)') : ''} ` +
        `rid=${reservationId} -> ${this.describe(o)}`,
    );
    if (!('ok' in m)) {
      this.check('reserve code', o.ok ? 'OK' : o.code, m.code);
      return;
    }
    this.compareAnswer('reserve', o, m, (l, e, mv) => this.compareReservation(l, e, mv));
    if (o.ok && m.ok && !m.replayed) {
      const ttl = req.ttlSeconds ?? this.model.requirePool().holdTtlSeconds;
      this.check('reserve expiresAt - now', o.value.expiresAt - o.now, ttl * 1000);
    }
    if (m.replayed) {
      const first = this.reserveFirst.get(mkey);
      if (first) this.check(`reserve replay of ${key}: the first answer's body`, body(o), body(first));
    } else if (!hadStored && this.model.reserveAnswerStored(mkey) && !o.replayed) {
      this.reserveFirst.set(mkey, o);
    }
  }

  private async repay(op: Extract<Op, { t: 'repay' }>) {
    const repayableOf = (c: string) => {
      const l = this.model.lines.get(c);
      return l ? l.drawn - l.settling : 0;
    };
    const candidates = CUSTOMERS.filter((c) => repayableOf(c) > 0);
    const customerId =
      op.preferRepayable && candidates.length > 0 ? candidates[op.c % candidates.length]! : CUSTOMERS[op.c]!;
    const line = this.model.lines.get(customerId);
    const repayable = line ? line.drawn - line.settling : 0;
    const amount = Math.max(
      1,
      { all: repayable, part: Math.floor((repayable * op.pct) / 100), over: repayable + 1, raw: op.amount }[op.mode],
    );
    let key: string;
    let req: RepayBody;
    if (op.reuse && this.repayKeys.length > 0) {
      key = this.repayKeys[this.repayKeys.length - 1 - (op.reuse.pick % this.repayKeys.length)]!;
      req = op.reuse.sameBody ? this.repayBodies.get(key)! : { customerId, amount };
    } else {
      const reserveKey = this.reserveKeys.find((k) => !this.repayBodies.has(k));
      key = op.reserveKey && reserveKey ? reserveKey : `k${++this.keySeq}`;
      req = { customerId, amount };
      this.repayKeys.push(key);
      this.repayBodies.set(key, req);
    }
    const fingerprint = fingerprintOf({ ...req });
    const o = await this.engine.repay({ productId: this.productId, idempotencyKey: key, fingerprint, ...req });
    this.slack = await this.fellDueSince(this.stepStart);
    const mkey = this.modelKey(key, req.customerId);
    const hadStored = this.model.repayAnswerStored(mkey);
    const m = this.model.repay({ idempotencyKey: mkey, fingerprint, ...req }, o.now);
    this.note(
      `repay ${req.customerId} amount=${req.amount} ` +
        `key=${key}${op.reuse ? ' (reused)' : ''} [repayable ${repayable}] -> ${this.describe(o)}`,
    );
    this.compareAnswer('repay', o, m, (l, e, mv) => {
      // A replay answers the first body, not today's state: compared below against the first answer.
      if (!m.replayed) this.compareLine(`${l}.line`, e, mv);
    });
    if (m.replayed) {
      const first = this.repayFirst.get(mkey);
      if (first) this.check(`repay replay of ${key}: the first answer's body`, body(o), body(first));
    } else if (!hadStored && this.model.repayAnswerStored(mkey) && !o.replayed) {
      this.repayFirst.set(mkey, o);
    }
  }

  // ---- conservation audit -------------------------------------------------

  async audit() {
    this.step++;
    // Reclaim every due hold first (and move the model to the same instant): afterwards the raw
    // reservation statuses must equal the model's one for one.
    const read = await this.engine.readPool(this.productId);
    this.model.advance(read.now);
    const redis = this.ctx.redis;
    // A sharded product: every sub-pool's records and counters, each customer's line in its sub-pool.
    const tags = await this.engine.shards.tagsOf(this.productId);
    this.check('audit: sub-pools', tags.length, this.shards);
    // Transfers on both sides (each pair's debits = credits + in transit; allotments + T + W = capacity).
    const transfers = await this.engine.shards.auditTransfers(this.productId);
    const exactSums = [this.model.requirePool().capacity].every((n) => n < 2 ** 50);
    if (exactSums) this.check('audit: transfer violations', transfers.violations, []);
    const records = (await Promise.all(tags.map((tag) => readAllRecords(redis, this.ctx.keys, tag)))).flat();
    const rawPool: Record<string, string> = { held: '0', committed: '0', settled: '0' };
    for (const tag of tags) {
      const h = await redis.hgetall(this.ctx.keys.pool(tag));
      for (const f of ['held', 'committed', 'settled'] as const) {
        this.check(`audit: sub-pool ${tag}.${f} never negative`, Number(h[f]) >= 0, true);
        rawPool[f] = String(Number(rawPool[f]) + Number(h[f]));
      }
    }
    const rawLines = new Map<string, Record<string, string>>();
    for (const c of CUSTOMERS) {
      const h = await readLine(redis, this.ctx.keys, tags[shardOfCustomer(c, tags.length)]!, c);
      if (h) rawLines.set(c, h);
    }

    const books = booksOf(records);
    for (const r of records) {
      const m = this.model.reservations.get(r.reservationId!);
      if (!m) this.errors.push(`audit: reservation ${r.reservationId} is not in the model`);
      else {
        this.check(`audit ${r.reservationId}.status`, r.status, m.status);
        this.check(`audit ${r.reservationId}.amount`, Number(r.amount), m.amount);
        this.check(`audit ${r.reservationId}.committedAmount`, Number(r.committedAmount), m.committedAmount);
      }
    }
    this.check('audit: reservation records', records.length, this.model.reservations.size);
    this.check('audit: pool.held = sum of held', Number(rawPool.held), books.held);
    this.check(
      'audit: pool.committed = sum of committed amounts not reversed',
      Number(rawPool.committed),
      books.committed,
    );
    this.check('audit: pool.settled = sum of settled amounts', Number(rawPool.settled), books.settled);
    for (const [c, raw] of rawLines) {
      const s = lineBooks(books, c);
      const drawn = Number(raw.drawn);
      const settling = Number(raw.settling);
      this.check(`audit: line ${c}.held = sum of its held`, Number(raw.held), s.held);
      this.check(
        `audit: line ${c}.drawn + repaid = sum of its committed amounts`,
        drawn + (this.model.repaid.get(c) ?? 0),
        s.committed,
      );
      if (raw.repaid !== undefined)
        this.check(`audit: line ${c}.repaid`, Number(raw.repaid), this.model.repaid.get(c) ?? 0);
      this.check(`audit: line ${c}.settling = sum of its unsettled committed amounts`, settling, s.settling);
      this.check(
        `audit: line ${c} counters never negative`,
        [Number(raw.held), drawn, settling].every((n) => n >= 0),
        true,
      );
      this.check(`audit: line ${c} settling <= drawn`, settling <= drawn, true);
    }
    for (const c of books.lines.keys())
      if (!rawLines.has(c)) this.errors.push(`audit: reservations of ${c}, who has no line`);
    this.check(
      'audit: pool counters never negative',
      [rawPool.held, rawPool.committed, rawPool.settled].every((v) => Number(v) >= 0),
      true,
    );
    this.note(
      `audit: ${records.length} reservations, pool held=${rawPool.held} ` +
        `committed=${rawPool.committed} settled=${rawPool.settled}`,
    );
    this.flush('conservation audit');
  }
}

// ---------------------------------------------------------------------------

let ctx: EngineContext;
beforeAll(async () => {
  ctx = await createEngineContext();
  // Cached up front so EVALSHA never falls back to EVAL (which could reorder concurrent reads).
  await ctx.engine.loadScripts();
});
afterAll(() => ctx.close());

describe('engine against the contract model', () => {
  it('random operation sequences agree with the model after every step', async () => {
    const started = Date.now();
    const seed = process.env.PROPERTY_SEED !== undefined ? Number(process.env.PROPERTY_SEED) : undefined;
    const path = process.env.PROPERTY_PATH;
    const numRuns = Number(process.env.PROPERTY_RUNS ?? 60);

    const property = fc.asyncProperty(inputArb, async ({ init, ops }) => {
      const run = new Run(ctx);
      await run.setup(init);
      let steps = 0;
      for (const op of ops) if (await run.run(op)) steps++;
      await run.audit();
      if (process.env.PROPERTY_DEBUG_LOG) console.log(run.log.join('\n'));
      totalSteps += steps;
      totalRuns++;
    });

    const details = await fc.check(property, {
      numRuns,
      ...(seed !== undefined ? { seed } : {}),
      ...(path !== undefined ? { path } : {}),
      endOnFailure: process.env.PROPERTY_NO_SHRINK === '1',
      // Bounds the whole check, shrinking included (each shrink attempt replays a sequence against
      // Redis): past it, the smallest failing sequence found so far is reported.
      interruptAfterTimeLimit: Number(process.env.PROPERTY_TIME_LIMIT_MS ?? 120_000),
      markInterruptAsFailure: false,
    });
    if (details.failed) {
      const replay =
        `PROPERTY_SEED=${details.seed} ` +
        `PROPERTY_PATH="${details.counterexamplePath}" npx vitest run ` +
        `test/engine/property.test.ts`;
      const cause =
        details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
      throw new Error(
        `${fc.defaultReportMessage(details)}\n\nReplay the (shrunk) failure with:\n  ${replay}\n\nThe ` +
          `failure, with the executed steps of the smallest failing sequence:\n${cause}`,
      );
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
      `property: ${totalRuns} runs, ${totalSteps} operations (each followed by 6 reads), ` +
        `${totalWaits} waits (${(totalSleepMs / 1000).toFixed(1)} s asleep), ${seconds} s`,
    );
    if (process.env.PROPERTY_STATS === '1') {
      console.log(
        [...stats]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => `${k}: ${v}`)
          .join('\n'),
      );
    }
    expect(totalSteps).toBeGreaterThan(0);
  }, 600_000);
});

describe('sharded products against the same model', () => {
  it(
    'random sequences on 2 to 4 sub-pools (moves, interrupted moves, ' +
      'capacity changes, expiries) agree with the unsharded model',
    async () => {
      const seed = process.env.PROPERTY_SEED !== undefined ? Number(process.env.PROPERTY_SEED) : undefined;
      const path = process.env.PROPERTY_PATH;
      const runsBefore = totalRuns;
      const property = fc.asyncProperty(shardedInputArb, async ({ init, ops, shards }) => {
        const run = new Run(ctx, shards);
        await run.setup(init);
        for (const op of ops) await run.run(op);
        await run.audit();
        if (process.env.PROPERTY_DEBUG_LOG) console.log(run.log.join('\n'));
        totalRuns++;
      });
      const details = await fc.check(property, {
        numRuns: Number(process.env.PROPERTY_SHARDED_RUNS ?? 30),
        ...(seed !== undefined ? { seed } : {}),
        ...(path !== undefined ? { path } : {}),
        endOnFailure: process.env.PROPERTY_NO_SHRINK === '1',
        interruptAfterTimeLimit: Number(process.env.PROPERTY_TIME_LIMIT_MS ?? 120_000),
        markInterruptAsFailure: false,
      });
      if (details.failed) {
        const cause =
          details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
        throw new Error(
          `${fc.defaultReportMessage(details)}\n\nReplay: PROPERTY_SEED=${details.seed} ` +
            (`PROPERTY_PATH="${details.counterexamplePath}" npx vitest run ` +
              `test/engine/property.test.ts -t sharded\n\n${cause}`),
        );
      }
      console.log(
        `property (sharded): ${totalRuns - runsBefore} runs; ${totalStraddled} ` +
          `answers read while a hold fell due (compared within its amount)`,
      );
      expect(totalRuns - runsBefore).toBeGreaterThan(0);
    },
    600_000,
  );
});

/**
 * More holds of one product fall due at once than one script call reclaims
 * (the engine's reclaimLimit, 100): the contract returns an expired hold's
 * amount at once, so the first call after the expiry must see all of it (a
 * quota refusal or a read takes a second, larger batch first; see
 * lua/includes/reclaim.lua).
 */
describe('a burst of expiries larger than one call reclaims', () => {
  async function burstOf150(p: string, model: QuotaModel, pool: Partial<PoolConfig> = {}) {
    const put = await ctx.engine.upsertProduct(p, { capacity: 150, ...pool }, 'put');
    model.upsertPool({ capacity: 150, ...pool }, 'put', put.now);
    const cfg = { customerId: 'a', limit: 1000, status: 'active' as const, statusReason: null, tier: null };
    model.upsertLine(cfg, (await ctx.engine.upsertLines(p, [cfg])).now);
    let last = 0;
    for (let i = 0; i < 150; i++) {
      const req = {
        customerId: 'a',
        reservationId: `r${i}`,
        amount: 1,
        ttlSeconds: 1,
        idempotencyKey: `k${i}`,
        fingerprint: `f${i}`,
      };
      const o = await ctx.engine.reserve({ productId: p, ...req });
      expect(model.reserve(req, o.now)).toMatchObject({ ok: true });
      expect(o.ok).toBe(true);
      if (o.ok) last = Math.max(last, o.value.expiresAt);
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, last - model.lastNow) + 100));
  }

  it('the first reserve after 150 holds expired sees all 150 returned', async () => {
    const p = uniqueId('p');
    const model = new QuotaModel();
    await burstOf150(p, model);
    const req = { customerId: 'a', reservationId: 'big', amount: 150, idempotencyKey: 'kbig', fingerprint: 'fbig' };
    const o = await ctx.engine.reserve({ productId: p, ...req });
    expect(model.reserve(req, o.now)).toMatchObject({ ok: true });
    expect({ code: o.ok ? 'OK' : o.code, drawable: o.ok ? undefined : o.context.drawable }).toEqual({
      code: 'OK',
      drawable: undefined,
    });
  });

  it('the first read after 150 holds expired shows all 150 drawable', async () => {
    const p = uniqueId('p');
    await burstOf150(p, new QuotaModel());
    const line = await ctx.engine.readLine(p, 'a');
    expect(line).toMatchObject({ ok: true, value: { held: 0, drawable: 150, blockers: [] } });
    const pool = await ctx.engine.readPool(p);
    expect(pool).toMatchObject({ ok: true, value: { held: 0, available: 150 } });
  });

  it(
    'a refusal for another reason (amount out of range) after ' + '150 holds expired reports all 150 drawable',
    async () => {
      const p = uniqueId('p');
      await burstOf150(p, new QuotaModel(), { maxAmount: 150 });
      const o = await ctx.engine.reserve({
        productId: p,
        customerId: 'a',
        reservationId: 'over',
        amount: 151,
        idempotencyKey: 'kover',
        fingerprint: 'fover',
      });
      expect({ code: o.ok ? 'OK' : o.code, drawable: o.ok ? undefined : o.context.drawable }).toEqual({
        code: 'AMOUNT_OUT_OF_RANGE',
        drawable: 150,
      });
    },
  );

  it('a repayment answer after 150 holds expired shows all 150 drawable', async () => {
    const p = uniqueId('p');
    await burstOf150(p, new QuotaModel());
    const o = await ctx.engine.repay({
      productId: p,
      customerId: 'a',
      amount: 1,
      idempotencyKey: 'krepay',
      fingerprint: 'frepay',
    });
    // Nothing settled to repay: the (stored) refusal carries the line as it is now.
    expect(o.ok ? 'OK' : o.code).toBe('REPAYMENT_EXCEEDS_DRAWN');
    expect(o.ok ? undefined : o.context.line).toMatchObject({ held: 0, drawable: 150 });
  });
});
