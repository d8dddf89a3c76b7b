/**
 * The quota engine: the only TypeScript that calls Lua. Each method is one
 * script call (one round trip) and answers an Outcome: expected refusals
 * (exhausted, frozen, expired...) are values; a thrown error means Redis or
 * a script is broken.
 */
import { decodeAuditStep, type AuditStep, type AuditStepOptions } from '../audit/auditStep.js';
import type { DurableWrites } from '../redis/durableWrite.js';
import type { Keys } from '../redis/keys.js';
import { mastersOf, type RedisClient } from '../redis/topology.js';
import { decodeLine, decodePool, decodeRefusalContext, decodeReservation } from './decode.js';
import { loadLuaScripts, type LuaScript } from './luaScripts.js';
import type {
  LineConfig,
  LineSnapshot,
  Outcome,
  PoolConfig,
  PoolSnapshot,
  RefusalCode,
  Reservation,
  SettlementOutcome,
} from './types.js';

export interface EngineOptions {
  redis: RedisClient;
  keys: Keys;
  /** REDIS_WAIT_REPLICAS: writing scripts are sent with WAIT (src/redis/durableWrite.ts). */
  durableWrites?: DurableWrites;
  /** Expired holds of a product returned by one call (bounds a call's work). */
  reclaimLimit?: number;
  idempotencyTtlSeconds?: number;
  /** Told how long each script call took (metrics). */
  onScript?: (script: string, seconds: number) => void;
  /** Told when a script call expired due holds (lazily, or as the sweeper), for metrics. */
  onHoldsExpired?: (script: string, count: number) => void;
}

export interface ReserveRequest {
  productId: string;
  customerId: string;
  reservationId: string;
  amount: number;
  ttlSeconds?: number | undefined;
  metadata?: Record<string, unknown> | undefined;
  idempotencyKey: string;
  fingerprint: string;
}

export interface RepayRequest {
  productId: string;
  customerId: string;
  amount: number;
  idempotencyKey: string;
  fingerprint: string;
}

type RawReply = [code: string, now: string, replayed: string, payload: string, holdsExpired: string];
type Payload = Record<string, unknown>;
type Arg = string | number;

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

export function createQuotaEngine({
  redis,
  keys,
  reclaimLimit = 100,
  idempotencyTtlSeconds = 86_400,
  onScript,
  onHoldsExpired,
  durableWrites,
}: EngineOptions) {
  const scripts = loadLuaScripts();
  for (const script of scripts.values()) {
    redis.defineCommand(commandName(script), { lua: script.source, numberOfKeys: script.numberOfKeys });
  }

  async function call(name: string, scriptKeys: string[], args: Arg[]) {
    const script = scripts.get(name);
    if (!script) throw new Error(`no Lua script named ${name}`);
    const fn = (redis as unknown as Record<string, (...a: Arg[]) => Promise<RawReply>>)[commandName(script)]!;
    const callArgs = script.numberOfKeys === undefined ? [scriptKeys.length, ...scriptKeys, ...args] : [...scriptKeys, ...args];
    const started = process.hrtime.bigint();
    const [code, now, replayed, payload, holdsExpired] = (durableWrites?.covers(name)
      ? await durableWrites.evalScript(redis, script, [scriptKeys.length, ...scriptKeys, ...args])
      : await fn.apply(redis, callArgs)) as RawReply;
    onScript?.(name, Number(process.hrtime.bigint() - started) / 1e9);
    if (holdsExpired !== '0') onHoldsExpired?.(name, Number(holdsExpired));
    return { code, now: Number(now), replayed: replayed === '1', payload: JSON.parse(payload) as Payload };
  }

  /** One script call -> Outcome, with `decode` turning the OK payload into the value. */
  async function run<T>(
    productId: string,
    name: string,
    scriptKeys: string[],
    args: Arg[],
    decode: (payload: Payload, code: string) => T,
    okCodes: string[] = ['OK'],
  ): Promise<Outcome<T>> {
    const r = await call(name, scriptKeys, args);
    if (okCodes.includes(r.code)) return { ok: true, value: decode(r.payload, r.code), now: r.now, replayed: r.replayed };
    return {
      ok: false,
      code: r.code as RefusalCode,
      context: decodeRefusalContext(productId, r.payload),
      now: r.now,
      replayed: r.replayed,
    };
  }

  const reservationOf = (p: Payload) => decodeReservation(p.reservation as Payload);

  return {
    scripts,

    /** PUT (replace config, defaults for what is not given) or PATCH (only what is given). */
    async upsertProduct(productId: string, config: Partial<PoolConfig>, mode: 'put' | 'patch') {
      await redis.sadd(keys.productIndex(), productId);
      const fields = (Object.keys(config) as (keyof PoolConfig)[]).flatMap((k) =>
        (POOL_FIELD_ENCODERS[k] as (v: unknown) => [string, string][])(config[k]),
      );
      return run(
        productId,
        'upsert-pool',
        [keys.pool(productId), keys.status(productId, 'held')],
        [mode, reclaimLimit, ...fields.flat()],
        (p, code) => ({ created: code === 'CREATED', pool: decodePool(productId, p.pool as Payload) }),
        ['CREATED', 'UPDATED'],
      );
    },

    readPool(productId: string): Promise<Outcome<PoolSnapshot>> {
      return run(productId, 'read-pool', [keys.pool(productId), keys.status(productId, 'held')], [reclaimLimit], (p) =>
        decodePool(productId, p.pool as Payload),
      );
    },

    /** Creates or replaces lines of one product in one atomic call. */
    upsertLines(productId: string, lines: LineConfig[]) {
      if (lines.length === 0) throw new Error('upsertLines needs at least one line');
      const args = lines.flatMap((l) => [l.customerId, String(l.limit), l.status, l.statusReason ?? '', l.tier ?? '']);
      return run(
        productId,
        'upsert-lines',
        [keys.pool(productId), keys.status(productId, 'held'), ...lines.map((l) => keys.line(productId, l.customerId))],
        [reclaimLimit, ...args],
        (p) => ({ created: Number(p.created), updated: Number(p.updated), line: decodeLine(productId, p.line as Payload) }),
      );
    },

    readLine(productId: string, customerId: string): Promise<Outcome<LineSnapshot>> {
      return run(
        productId,
        'read-line',
        [keys.pool(productId), keys.status(productId, 'held'), keys.line(productId, customerId)],
        [customerId, reclaimLimit],
        (p) => decodeLine(productId, p.line as Payload),
      );
    },

    reserve(r: ReserveRequest): Promise<Outcome<Reservation>> {
      return run(
        r.productId,
        'reserve',
        [
          keys.pool(r.productId),
          keys.status(r.productId, 'held'),
          keys.line(r.productId, r.customerId),
          keys.idempotency(r.productId, 'reserve', r.idempotencyKey),
          keys.reservation(r.productId, r.reservationId),
        ],
        [
          r.productId,
          r.customerId,
          r.reservationId,
          r.amount,
          r.ttlSeconds ?? '',
          r.metadata ? JSON.stringify(r.metadata) : '',
          r.fingerprint,
          idempotencyTtlSeconds,
          reclaimLimit,
          r.idempotencyKey,
        ],
        reservationOf,
      );
    },

    commit(productId: string, reservationId: string, amount?: number): Promise<Outcome<Reservation>> {
      return run(
        productId,
        'commit',
        [keys.pool(productId), keys.status(productId, 'held'), keys.reservation(productId, reservationId)],
        [reservationId, amount ?? ''],
        reservationOf,
      );
    },

    release(productId: string, reservationId: string): Promise<Outcome<Reservation>> {
      return run(
        productId,
        'release',
        [keys.pool(productId), keys.status(productId, 'held'), keys.reservation(productId, reservationId)],
        [reservationId],
        reservationOf,
      );
    },

    getReservation(productId: string, reservationId: string): Promise<Outcome<Reservation>> {
      return run(
        productId,
        'get-reservation',
        [keys.pool(productId), keys.status(productId, 'held'), keys.reservation(productId, reservationId)],
        [reservationId],
        reservationOf,
      );
    },

    repay(r: RepayRequest): Promise<Outcome<LineSnapshot>> {
      return run(
        r.productId,
        'repay',
        [
          keys.pool(r.productId),
          keys.status(r.productId, 'held'),
          keys.line(r.productId, r.customerId),
          keys.idempotency(r.productId, 'repay', r.idempotencyKey),
        ],
        [r.customerId, r.amount, r.fingerprint, idempotencyTtlSeconds, reclaimLimit],
        (p) => decodeLine(r.productId, p.line as Payload),
      );
    },

    /** Settlement outcome, state-checked: `changed` is false when it was already recorded. */
    recordSettlement(
      productId: string,
      reservationId: string,
      outcome: SettlementOutcome | 'attempt',
      reason = '',
      requiredStatus: 'settlement_unknown' | '' = '',
    ) {
      return run(
        productId,
        'record-settlement',
        [keys.pool(productId), keys.reservation(productId, reservationId)],
        [reservationId, outcome, reason, requiredStatus],
        (p) => ({ reservation: reservationOf(p), changed: p.changed === '1' }),
      );
    },

    /** Sweeper step for one product: reclaims up to `limit` due holds. */
    async reclaimExpired(productId: string, limit: number) {
      const r = await call('reclaim-expired', [keys.pool(productId), keys.status(productId, 'held')], [limit]);
      return { reclaimed: Number(r.payload.reclaimed), remaining: Number(r.payload.remaining) };
    },

    /**
     * Invariant audit step for one product (lua/audit-product-2.lua): folds up
     * to `settledBatch` settled records into the running sums, then, once caught
     * up and with at most `liveLimit` live records, compares the pool and a
     * window of lines with what the records add up to, atomically.
     */
    async auditProduct(productId: string, options: AuditStepOptions): Promise<AuditStep> {
      const r = await call(
        'audit-product',
        [keys.pool(productId), keys.audit(productId)],
        [options.settledBatch, options.liveLimit, options.lineWindow],
      );
      return decodeAuditStep(r.code, r.now, r.payload);
    },

    /** Loads every script into Redis's cache (at start, and when readiness finds one missing). */
    async loadScripts() {
      for (const node of mastersOf(redis)) for (const script of scripts.values()) await node.script('LOAD', script.source);
    },

    async scriptsLoaded(): Promise<boolean> {
      const shas = [...scripts.values()].map((s) => s.sha1);
      const present = (await Promise.all(mastersOf(redis).map((node) => node.script('EXISTS', ...shas) as Promise<number[]>))).flat();
      return present.every((p) => p === 1);
    },
  };
}

function commandName(script: LuaScript): string {
  return `qa_${script.name.replace(/-/g, '_')}`;
}

export type QuotaEngine = ReturnType<typeof createQuotaEngine>;
