/**
 * The script catalogue: for each Lua script (lua/<name>-<keys>.lua, run as a
 * function of the Functions library) its keys (by role, in KEYS order), its
 * argument encoder, its reply decoder and the codes it may answer. The engine
 * only looks entries up; test/unit/script-catalogue.test.ts checks every entry
 * against its Lua header and body.
 */
import type { IdempotentOperation, Keys } from '../redis/keys.js';
import { decodeAuditStep, DEFAULT_PASS_OPTIONS, type AuditStep, type AuditStepOptions } from './auditStep.js';
import { decodeLine, decodePool, decodeRefusalContext, decodeReservation } from './decode.js';
import type {
  LineConfig,
  LineSnapshot,
  Outcome,
  PoolConfig,
  PoolCounters,
  PoolSnapshot,
  RefusalCode,
  Reservation,
  ReservationStatus,
  ScriptCode,
  SettlementOutcome,
} from './types.js';

/** What a key is to a script; the Lua header names KEYS[i] by role (`status:<s>` is bound as `k.<s>`). */
export type KeyRole =
  | 'pool'
  | 'records'
  | 'lines'
  | 'events'
  | 'audit'
  | 'auditPass'
  | 'bycustomer'
  | 'idempotency'
  | 'internalLedger'
  | 'xferPending'
  | `status:${ReservationStatus}`;

export type Arg = string | number;
type Payload = Record<string, unknown>;

/** A script's answer: {code, nowMs, replayed, payloadJson, holdsExpired} decoded once. */
export interface ScriptReply {
  code: ScriptCode;
  now: number;
  replayed: boolean;
  payload: Payload;
  holdsExpired: number;
}

/** Engine settings the argument encoders need. */
export interface ScriptSettings {
  reclaimLimit: number;
  /** Stored 2xx answers (24 h). */
  idempotencyTtlSeconds: number;
  /** Stored refusals (IDEMPOTENCY_REFUSAL_TTL_SECONDS). */
  idempotencyRefusalTtlSeconds: number;
  /** WEBHOOK_URL set: the scripts that record webhook events do so (lua/includes/webhooks.lua). */
  webhooks?: boolean;
}

/** The webhooks flag as the scripts take it. */
const webhooksFlag = (s: ScriptSettings): string => (s.webhooks ? '1' : '');

export interface ScriptEntry<Req extends { productId: string }, Res> {
  /** lua/<name>-<keys.length>.lua */
  name: string;
  keys: readonly KeyRole[];
  /** The idempotency record's operation and key (for the `idempotency` role). */
  idempotency?: (req: Req) => { operation: IdempotentOperation; key: string };
  args: (req: Req, settings: ScriptSettings) => Arg[];
  codes: readonly ScriptCode[];
  decode: (reply: ScriptReply, req: Req) => Res;
}

/** KEYS for one call, in the entry's order. */
export function keysFor<Req extends { productId: string }>(
  entry: ScriptEntry<Req, unknown>,
  req: Req,
  keys: Keys,
): string[] {
  return entry.keys.map((role) => {
    // A sharded product's sub-pool i >= 1 lives under its own hash tag (src/engine/shards.ts).
    const p = (req as { tag?: string }).tag ?? req.productId;
    if (role.startsWith('status:')) return keys.status(p, role.slice('status:'.length) as ReservationStatus);
    switch (role) {
      case 'pool':
        return keys.pool(p);
      case 'records':
        return keys.records(p);
      case 'lines':
        return keys.lines(p);
      case 'events':
        return keys.events(p);
      case 'audit':
        return keys.audit(p);
      case 'auditPass':
        return keys.auditPass(p);
      case 'bycustomer':
        return keys.bycustomer(p);
      case 'internalLedger':
        return keys.internalLedger(p);
      case 'xferPending':
        return keys.xferPending(p);
      case 'idempotency': {
        if (!entry.idempotency) throw new Error(`${entry.name}: the idempotency key role needs entry.idempotency`);
        const { operation, key } = entry.idempotency(req);
        return keys.idempotency(p, operation, key);
      }
    }
    throw new Error(`${entry.name}: unknown key role ${role}`);
  });
}

const entry = <Req extends { productId: string }, Res>(e: ScriptEntry<Req, Res>) => e;

/** Ok codes -> value; any other code is a refusal with its context. */
function outcome<T>(okCodes: readonly ScriptCode[], value: (p: Payload, r: ScriptReply) => T) {
  return (r: ScriptReply, req: { productId: string }): Outcome<T> =>
    okCodes.includes(r.code)
      ? { ok: true, value: value(r.payload, r), now: r.now, replayed: r.replayed }
      : {
          ok: false,
          code: r.code as RefusalCode,
          context: decodeRefusalContext(req.productId, r.payload),
          now: r.now,
          replayed: r.replayed,
        };
}

const reservationOf = (p: Payload) => decodeReservation(p.reservation as Payload);

/** The keys every script that may expire a hold needs (includes/expiry.lua). */
const RECLAIM_KEYS = ['pool', 'records', 'lines', 'events', 'status:held', 'status:expired'] as const;

// ---- requests ------------------------------------------------------------

export interface ProductRequest {
  productId: string;
  /** The sub-pool's hash tag for a sharded product (default: productId, sub-pool 0). */
  tag?: string;
}
export interface UpsertPoolRequest extends ProductRequest {
  mode: 'put' | 'patch';
  config: Partial<PoolConfig>;
}
export interface UpsertLinesRequest extends ProductRequest {
  lines: LineConfig[];
}
export interface LineRequest extends ProductRequest {
  customerId: string;
}
export interface ReserveRequest extends ProductRequest {
  customerId: string;
  reservationId: string;
  amount: number;
  ttlSeconds?: number | undefined;
  metadata?: Record<string, unknown> | undefined;
  idempotencyKey: string;
  fingerprint: string;
  /**
   * Sharded product's first try: do not store a refusal (the engine borrows and retries, or stores it with
   * `borrowable`).
   */
  deferRefusals?: boolean;
  /** Sharded product: what other sub-pools could lend this line, counted in a refusal's drawable only. */
  borrowable?: number;
  /** Sharded product: the idempotency record is the customer's (`idem:reserve:<customerId>:<key>`). */
  customerScoped?: boolean;
}
export interface ReservationRequest extends ProductRequest {
  reservationId: string;
}
export interface CommitRequest extends ReservationRequest {
  amount?: number | undefined;
}
export interface RepayRequest extends ProductRequest {
  customerId: string;
  amount: number;
  idempotencyKey: string;
  fingerprint: string;
  /** Sharded product: the idempotency record is the customer's. */
  customerScoped?: boolean;
  /** Sharded product: what other sub-pools could lend this line, counted in the answer's drawable. */
  borrowable?: number;
}
export interface SettlementRequest extends ReservationRequest {
  outcome: SettlementOutcome | 'attempt';
  reason: string;
  requiredStatus: 'settlement_unknown' | '';
}
export interface ReclaimRequest extends ProductRequest {
  limit: number;
}
export interface IndexRecordsRequest extends ProductRequest {
  reservationIds: string[];
}
export interface LedgerEntryRequest extends ReservationRequest {
  /** The entry as stored (JSON). */
  entry: string;
}
export interface AuditRequest extends ProductRequest {
  options: AuditStepOptions;
}
export interface ShardGiveRequest extends ProductRequest {
  amount: number;
  to: string;
  mode: 'all' | 'priority' | 'force' | 'withheld';
}
export interface ShardTakeRequest extends ProductRequest {
  seq: string;
  amount: number | '';
  from: string;
}

/** A sharded product scopes an Idempotency-Key to the customer too (contract): `<customerId>:<key>`. */
const scopedKey = (r: { customerId: string; idempotencyKey: string; customerScoped?: boolean }) =>
  r.customerScoped ? `${r.customerId}:${r.idempotencyKey}` : r.idempotencyKey;

// ---- encoders --------------------------------------------------------------

const POOL_FIELD_ENCODERS: { [K in keyof PoolConfig]: (v: PoolConfig[K]) => [string, string][] } = {
  capacity: (v) => [['capacity', String(v)]],
  minAmount: (v) => [['minAmount', String(v)]],
  maxAmount: (v) => [['maxAmount', v === null ? '' : String(v)]],
  holdTtlSeconds: (v) => [['holdTtlSeconds', String(v)]],
  opensAt: (v) => [['opensAt', v === null ? '' : String(v)]],
  closesAt: (v) => [['closesAt', v === null ? '' : String(v)]],
  status: (v) => [['status', v]],
  pauseReason: (v) => [['pauseReason', v ?? '']],
  resumeAt: (v) => [['resumeAt', v === null ? '' : String(v)]],
  priorityReserve: (v) => [
    ['reserveTiers', v ? v.tiers.join(',') : ''],
    ['reserveAmount', v ? String(v.amount) : '0'],
  ],
};

const encodePoolConfig = (config: Partial<PoolConfig>): string[] =>
  (Object.keys(config) as (keyof PoolConfig)[])
    .flatMap((k) => (POOL_FIELD_ENCODERS[k] as (v: unknown) => [string, string][])(config[k]))
    .flat();

// ---- the catalogue -----------------------------------------------------------

export const SCRIPTS = {
  upsertPool: entry({
    name: 'upsert-pool',
    keys: RECLAIM_KEYS,
    args: (r: UpsertPoolRequest, s) => [r.mode, s.reclaimLimit, webhooksFlag(s), ...encodePoolConfig(r.config)],
    codes: ['CREATED', 'UPDATED', 'PRODUCT_NOT_FOUND', 'INVALID_CONFIG'],
    decode: (r, req) =>
      outcome(['CREATED', 'UPDATED'], (p) => ({
        created: r.code === 'CREATED',
        pool: decodePool(req.productId, p.pool as Payload),
      }))(r, req),
  }),

  readPool: entry({
    name: 'read-pool',
    keys: RECLAIM_KEYS,
    args: (_r: ProductRequest, s) => [s.reclaimLimit],
    codes: ['OK', 'PRODUCT_NOT_FOUND'],
    decode: (r, req): Outcome<PoolSnapshot> =>
      outcome(['OK'], (p) => decodePool(req.productId, p.pool as Payload))(r, req),
  }),

  readPoolCounters: entry({
    name: 'read-pool-counters',
    keys: ['pool', 'status:committed', 'status:settlement_unknown'],
    args: (_r: ProductRequest) => [],
    codes: ['OK', 'PRODUCT_NOT_FOUND'],
    decode: (r, req): Outcome<PoolCounters> =>
      outcome(['OK'], (p) => ({
        capacity: Number(p.capacity),
        held: Number(p.held),
        committed: Number(p.committed),
        settled: Number(p.settled),
        available: Number(p.available),
        availableToAllTiers: Number(p.availableToAllTiers),
        backlog: Number(p.backlog),
        oldestCommittedAt: p.oldestCommittedAt === undefined ? null : Number(p.oldestCommittedAt),
        unknown: Number(p.unknown),
      }))(r, req),
  }),

  upsertLines: entry({
    name: 'upsert-lines',
    keys: RECLAIM_KEYS,
    args: (r: UpsertLinesRequest, s) => [
      s.reclaimLimit,
      webhooksFlag(s),
      ...r.lines.flatMap((l) => [l.customerId, String(l.limit), l.status, l.statusReason ?? '', l.tier ?? '']),
    ],
    codes: ['OK', 'PRODUCT_NOT_FOUND'],
    decode: (r, req) =>
      outcome(['OK'], (p) => ({
        created: Number(p.created),
        updated: Number(p.updated),
        line: decodeLine(req.productId, p.line as Payload),
      }))(r, req),
  }),

  readLine: entry({
    name: 'read-line',
    keys: RECLAIM_KEYS,
    args: (r: LineRequest, s) => [r.customerId, s.reclaimLimit],
    codes: ['OK', 'PRODUCT_NOT_FOUND', 'NO_CREDIT_LINE'],
    decode: (r, req): Outcome<{ line: LineSnapshot; pool: PoolSnapshot }> =>
      outcome(['OK'], (p) => ({
        line: decodeLine(req.productId, p.line as Payload),
        pool: decodePool(req.productId, p.pool as Payload),
      }))(r, req),
  }),

  reserve: entry({
    name: 'reserve',
    keys: [...RECLAIM_KEYS, 'idempotency', 'bycustomer'],
    idempotency: (r: ReserveRequest) => ({ operation: 'reserve', key: scopedKey(r) }),
    args: (r: ReserveRequest, s) => [
      r.productId,
      r.customerId,
      r.reservationId,
      r.amount,
      r.ttlSeconds ?? '',
      r.metadata ? JSON.stringify(r.metadata) : '',
      r.fingerprint,
      s.idempotencyTtlSeconds,
      s.reclaimLimit,
      r.idempotencyKey,
      s.idempotencyRefusalTtlSeconds,
      r.deferRefusals ? '1' : '',
      r.borrowable ?? '',
    ],
    codes: [
      'OK',
      'TTL_OUT_OF_RANGE',
      'IDEMPOTENCY_KEY_REUSED',
      'PRODUCT_NOT_FOUND',
      'NO_CREDIT_LINE',
      'PRODUCT_CLOSED',
      'PRODUCT_PAUSED',
      'PRODUCT_NOT_OPEN',
      'ACCOUNT_PENDING_ACTIVATION',
      'ACCOUNT_FROZEN',
      'ACCOUNT_CLOSED',
      'AMOUNT_OUT_OF_RANGE',
      'CUSTOMER_LIMIT_EXCEEDED',
      'POOL_EXHAUSTED',
    ],
    decode: (r, req): Outcome<Reservation> => outcome(['OK'], reservationOf)(r, req),
  }),

  commit: entry({
    name: 'commit',
    keys: [...RECLAIM_KEYS, 'status:committed'],
    args: (r: CommitRequest) => [r.reservationId, r.amount ?? ''],
    codes: [
      'OK',
      'PRODUCT_NOT_FOUND',
      'RESERVATION_NOT_FOUND',
      'RESERVATION_EXPIRED',
      'RESERVATION_RELEASED',
      'RESERVATION_ALREADY_COMMITTED',
      'ACCOUNT_FROZEN',
      'ACCOUNT_CLOSED',
      'COMMIT_EXCEEDS_HOLD',
    ],
    decode: (r, req): Outcome<Reservation> => outcome(['OK'], reservationOf)(r, req),
  }),

  release: entry({
    name: 'release',
    keys: [...RECLAIM_KEYS, 'status:released'],
    args: (r: ReservationRequest) => [r.reservationId],
    codes: ['OK', 'PRODUCT_NOT_FOUND', 'RESERVATION_NOT_FOUND', 'RESERVATION_ALREADY_COMMITTED'],
    decode: (r, req): Outcome<Reservation> => outcome(['OK'], reservationOf)(r, req),
  }),

  getReservation: entry({
    name: 'get-reservation',
    keys: RECLAIM_KEYS,
    args: (r: ReservationRequest) => [r.reservationId],
    codes: ['OK', 'PRODUCT_NOT_FOUND', 'RESERVATION_NOT_FOUND'],
    decode: (r, req): Outcome<Reservation> => outcome(['OK'], reservationOf)(r, req),
  }),

  repay: entry({
    name: 'repay',
    keys: [...RECLAIM_KEYS, 'idempotency'],
    idempotency: (r: RepayRequest) => ({ operation: 'repay', key: scopedKey(r) }),
    args: (r: RepayRequest, s) => [
      r.customerId,
      r.amount,
      r.fingerprint,
      s.idempotencyTtlSeconds,
      s.reclaimLimit,
      s.idempotencyRefusalTtlSeconds,
      r.borrowable ?? '',
    ],
    codes: ['OK', 'REPAYMENT_EXCEEDS_DRAWN', 'IDEMPOTENCY_KEY_REUSED', 'PRODUCT_NOT_FOUND', 'NO_CREDIT_LINE'],
    decode: (r, req): Outcome<LineSnapshot> =>
      outcome(['OK'], (p) => decodeLine(req.productId, p.line as Payload))(r, req),
  }),

  recordSettlement: entry({
    name: 'record-settlement',
    keys: [...RECLAIM_KEYS, 'status:committed', 'status:settlement_unknown', 'status:settled', 'status:reversed'],
    args: (r: SettlementRequest, s) => [r.reservationId, r.outcome, r.reason, r.requiredStatus, webhooksFlag(s)],
    codes: ['OK', 'PRODUCT_NOT_FOUND', 'RESERVATION_NOT_FOUND', 'RESERVATION_STATE_CONFLICT'],
    decode: (r, req) => outcome(['OK'], (p) => ({ reservation: reservationOf(p), changed: p.changed === '1' }))(r, req),
  }),

  reclaimExpired: entry({
    name: 'reclaim-expired',
    keys: [...RECLAIM_KEYS, 'status:released', 'bycustomer'],
    args: (r: ReclaimRequest) => [r.limit],
    codes: ['OK'],
    decode: (r) => ({
      reclaimed: Number(r.payload.reclaimed),
      remaining: Number(r.payload.remaining),
      purged: Number(r.payload.purged),
    }),
  }),

  indexRecords: entry({
    name: 'index-records',
    keys: ['records', 'bycustomer'],
    args: (r: IndexRecordsRequest) => r.reservationIds,
    codes: ['OK'],
    decode: (r) => ({ added: Number(r.payload.added) }),
  }),

  recordLedgerEntry: entry({
    name: 'record-ledger-entry',
    keys: ['internalLedger'],
    args: (r: LedgerEntryRequest) => [r.reservationId, r.entry],
    codes: ['OK'],
    decode: (r) => ({ recorded: r.payload.recorded === '1' }),
  }),

  readLedgerEntry: entry({
    name: 'read-ledger-entry',
    keys: ['internalLedger'],
    args: (r: ReservationRequest) => [r.reservationId],
    codes: ['OK'],
    decode: (r) => ({ recorded: r.payload.recorded === '1' }),
  }),

  shardGive: entry({
    name: 'shard-give',
    keys: [...RECLAIM_KEYS, 'xferPending'],
    args: (r: ShardGiveRequest, s) => ['', r.amount, r.to, r.mode, s.reclaimLimit],
    codes: ['OK', 'PRODUCT_NOT_FOUND'],
    decode: (r, req) =>
      outcome(['OK'], (p) => ({ given: Number(p.given), seq: String(p.seq), allotment: Number(p.allotment) }))(r, req),
  }),

  shardTake: entry({
    name: 'shard-take',
    keys: ['pool'],
    args: (r: ShardTakeRequest) => [r.seq, r.amount, r.from],
    codes: ['OK', 'PRODUCT_NOT_FOUND'],
    decode: (r, req) =>
      outcome(['OK'], (p) => ({
        applied: p.applied === '1',
        behind: p.behind === '1',
        allotment: Number(p.allotment),
      }))(r, req),
  }),

  auditProduct: entry({
    name: 'audit-product',
    keys: [
      'pool',
      'records',
      'lines',
      'events',
      'audit',
      'auditPass',
      'bycustomer',
      'status:held',
      'status:committed',
      'status:settlement_unknown',
      'status:settled',
    ],
    args: ({ options: o }: AuditRequest) => [
      o.settledBatch,
      o.liveLimit,
      o.lineWindow,
      o.walkBatch ?? DEFAULT_PASS_OPTIONS.walkBatch,
      o.eventBatch ?? DEFAULT_PASS_OPTIONS.eventBatch,
      o.lineRecords ?? DEFAULT_PASS_OPTIONS.lineRecords,
    ],
    codes: ['OK', 'PASS', 'PASS_ABORTED', 'BEHIND', 'PRODUCT_NOT_FOUND'],
    decode: (r): AuditStep => decodeAuditStep(r.code, r.now, r.payload),
  }),
} as const;

export type ScriptCatalogue = typeof SCRIPTS;
export type AnyScriptEntry = ScriptEntry<any, unknown>;
