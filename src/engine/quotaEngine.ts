/**
 * The quota engine: the only TypeScript that calls Lua. Each method is one
 * function call (FCALL, one round trip) looked up in the script catalogue
 * (src/engine/scriptCatalogue.ts) and answers an Outcome: expected refusals
 * (exhausted, frozen, expired...) are values; a thrown error means Redis or
 * a script is broken.
 *
 * The client is anything with ioredis's `call` (a Redis, or a Cluster: FCALL
 * is routed by its first key, and every key of a call shares one hash tag).
 */
import type { DurableWrites } from '../redis/durableWrite.js';
import type { Keys } from '../redis/keys.js';
import type { RedisClient } from '../redis/topology.js';
import type { AuditStepOptions } from './auditStep.js';
import {
  buildFunctionLibrary,
  functionsLoaded,
  isFunctionNotFound,
  loadFunctions,
  type RedisCaller,
} from './functionLibrary.js';
import {
  keysFor,
  SCRIPTS,
  type Arg,
  type RepayRequest,
  type ReserveRequest,
  type ScriptEntry,
  type ScriptReply,
  type ScriptSettings,
} from './scriptCatalogue.js';
import {
  createShardedOperations,
  subPoolOf,
  type PoolConfigInput,
  type ScriptCall,
  type ShardEvents,
} from './shardedEngine.js';
import { withShardList } from './shards.js';
import type { LineConfig, Outcome, PoolSnapshot, ScriptCode, SettlementOutcome } from './types.js';

export type { RepayRequest, ReserveRequest } from './scriptCatalogue.js';

/** The calls that decide about quota: each result is told to `onDecision` (the decisions metric). */
export const DECISION_OPERATIONS = ['reserve', 'commit', 'release', 'repay'] as const;
export type DecisionOperation = (typeof DECISION_OPERATIONS)[number];

export interface EngineOptions {
  redis: RedisCaller;
  keys: Keys;
  /** REDIS_WAIT_REPLICAS: writing scripts are sent with WAIT (src/redis/durableWrite.ts). */
  durableWrites?: DurableWrites;
  /** Expired holds of a product returned by one call (bounds a call's work). */
  reclaimLimit?: number;
  /** How long a stored 2xx answer is kept (contract: 24 h). */
  idempotencyTtlSeconds?: number;
  /** How long a stored refusal is kept (IDEMPOTENCY_REFUSAL_TTL_SECONDS; contract: at least 1 h). */
  idempotencyRefusalTtlSeconds?: number;
  /** Told how long each script call took (metrics). */
  onScript?: (script: string, seconds: number) => void;
  /** Told when a script call expired due holds (lazily, or as the sweeper), for metrics. */
  onHoldsExpired?: (script: string, count: number) => void;
  /** Told each decision's result (OK or its refusal code) and whether it was replayed, for metrics. */
  onDecision?: (operation: DecisionOperation, result: string, replayed: boolean) => void;
  /** Sharded products: transfers between sub-pools and reserves that borrowed (metrics). */
  shardEvents?: ShardEvents;
  /** WEBHOOK_URL set: changes record their webhook events (lua/includes/webhooks.lua). */
  webhooks?: boolean;
}

type RawReply = [code: string, now: string, replayed: string, payload: string, holdsExpired: string];

export function createQuotaEngine({
  redis,
  keys,
  reclaimLimit = 100,
  idempotencyTtlSeconds = 86_400,
  idempotencyRefusalTtlSeconds = 3_600,
  onScript,
  onHoldsExpired,
  onDecision,
  durableWrites,
  shardEvents,
  webhooks = false,
}: EngineOptions) {
  const library = buildFunctionLibrary();
  const settings: ScriptSettings = { reclaimLimit, idempotencyTtlSeconds, idempotencyRefusalTtlSeconds, webhooks };

  async function fcall(name: string, scriptKeys: string[], args: Arg[]): Promise<RawReply> {
    const once = (): Promise<RawReply> =>
      (durableWrites?.covers(name)
        ? // REDIS_WAIT_REPLICAS: FCALL and WAIT in one pipeline on the slot's node (src/redis/durableWrite.ts).
          durableWrites.fcall(redis as RedisClient, library.functionName(name), scriptKeys, args)
        : redis.call(
            'FCALL',
            library.functionName(name),
            scriptKeys.length,
            ...scriptKeys,
            ...args,
          )) as Promise<RawReply>;
    try {
      return await once();
    } catch (err) {
      // A node that lost its data (or an old master) lacks the library: nothing ran, so load it and retry once.
      if (!isFunctionNotFound(err)) throw err;
      await loadFunctions(redis, library);
      return await once();
    }
  }

  async function run<Req extends { productId: string }, Res>(entry: ScriptEntry<Req, Res>, req: Req): Promise<Res> {
    const started = process.hrtime.bigint();
    const [code, now, replayed, payload, holdsExpired] = await fcall(
      entry.name,
      keysFor(entry, req, keys),
      entry.args(req, settings),
    );
    onScript?.(entry.name, Number(process.hrtime.bigint() - started) / 1e9);
    if (holdsExpired !== '0') onHoldsExpired?.(entry.name, Number(holdsExpired));
    const reply: ScriptReply = {
      code: code as ScriptCode,
      now: Number(now),
      replayed: replayed === '1',
      payload: JSON.parse(payload) as Record<string, unknown>,
      holdsExpired: Number(holdsExpired),
    };
    return entry.decode(reply, req);
  }

  async function decided<T extends Outcome<unknown>>(operation: DecisionOperation, answer: Promise<T>): Promise<T> {
    const outcome = await answer;
    onDecision?.(operation, outcome.ok ? 'OK' : outcome.code, outcome.replayed);
    return outcome;
  }

  const call: ScriptCall = (name, req) => run(SCRIPTS[name] as ScriptEntry<typeof req, never>, req) as never;
  const shards = createShardedOperations(call, redis, keys, shardEvents);

  /**
   * Where an operation on a product (or a sub-pool key id `<productId>~<suffix>`) runs: tag, real product id, layout.
   */
  async function route(productId: string) {
    const sub = subPoolOf(productId);
    if (sub) return { productId: sub.productId, tags: null, tag: sub.tag };
    const tags = await shards.tagsOf(productId);
    return { productId, tags: tags.length > 1 ? tags : null, tag: productId };
  }
  async function onReservation(productId: string, reservationId: string) {
    const r = await route(productId);
    return { productId: r.productId, tag: r.tags ? shards.reservationTag(reservationId, r.tags) : r.tag };
  }
  const listed = <T extends Outcome<PoolSnapshot>>(o: T): T => (o.ok ? { ...o, value: withShardList(o.value) } : o);

  /**
   * The line and its pool, read in one atomic call (what the line's blockers are about); sharded: see shards.readLine.
   */
  async function readLineWithPool(productId: string, customerId: string) {
    const r = await route(productId);
    return r.tags ? shards.readLine(r.productId, customerId, r.tags) : run(SCRIPTS.readLine, { productId, customerId });
  }

  return {
    library,
    /** Sharded products: sub-pool layouts, transfers in transit, moves (the rebalancer, the audit, tests). */
    shards,
    /** The scripts as standalone EVAL text (the benchmark's EVALSHA comparison). */
    scripts: library.scripts,

    /** PUT (replace config, defaults for what is not given) or PATCH (only what is given). */
    async upsertProduct(productId: string, config: PoolConfigInput, mode: 'put' | 'patch') {
      const raw = await shards.upsertProduct(productId, config, mode, (plain) =>
        run(SCRIPTS.upsertPool, { productId, config: plain, mode }),
      );
      const outcome = raw.ok ? { ...raw, value: { ...raw.value, pool: withShardList(raw.value.pool) } } : raw;
      // Indexed only once the product exists: a PATCH of a missing product or a refused PUT adds nothing.
      // (Every successful PUT or PATCH re-adds it, so a crash between the two is healed by the next one.)
      if (outcome.ok) await redis.call('SADD', keys.productIndex(), productId);
      return outcome;
    },
    async readPool(productId: string) {
      const r = await route(productId);
      return listed(
        r.tags
          ? await shards.readPool(r.productId, r.tags)
          : await run(SCRIPTS.readPool, { productId: r.productId, tag: r.tag }),
      );
    },
    /**
     * The pool's counters and settlement backlog, read-only (the metrics scrape: nothing is reclaimed); a sharded
     * product's summed over its sub-pools.
     */
    async readPoolCounters(productId: string) {
      const r = await route(productId);
      return r.tags
        ? shards.readCounters(r.productId, r.tags)
        : run(SCRIPTS.readPoolCounters, { productId: r.productId, tag: r.tag });
    },
    /** Creates or replaces lines of one product in one atomic call (per sub-pool for a sharded product). */
    async upsertLines(productId: string, lines: LineConfig[]) {
      if (lines.length === 0) throw new Error('upsertLines needs at least one line');
      const r = await route(productId);
      return r.tags ? shards.upsertLines(r.productId, lines, r.tags) : run(SCRIPTS.upsertLines, { productId, lines });
    },
    async readLine(productId: string, customerId: string) {
      const outcome = await readLineWithPool(productId, customerId);
      return outcome.ok ? { ...outcome, value: outcome.value.line } : outcome;
    },
    readLineWithPool,
    async reserve(req: ReserveRequest) {
      const r = await route(req.productId);
      return decided('reserve', r.tags ? shards.reserve(req, r.tags) : run(SCRIPTS.reserve, req));
    },
    commit: async (productId: string, reservationId: string, amount?: number) =>
      decided(
        'commit',
        run(SCRIPTS.commit, { ...(await onReservation(productId, reservationId)), reservationId, amount }),
      ),
    release: async (productId: string, reservationId: string) =>
      decided('release', run(SCRIPTS.release, { ...(await onReservation(productId, reservationId)), reservationId })),
    getReservation: async (productId: string, reservationId: string) =>
      run(SCRIPTS.getReservation, { ...(await onReservation(productId, reservationId)), reservationId }),
    async repay(req: RepayRequest) {
      const r = await route(req.productId);
      return decided('repay', r.tags ? shards.repay(req, r.tags) : run(SCRIPTS.repay, req));
    },
    /** Settlement outcome, state-checked: `changed` is false when it was already recorded. */
    recordSettlement: (
      productId: string,
      reservationId: string,
      outcome: SettlementOutcome | 'attempt',
      reason = '',
      requiredStatus: 'settlement_unknown' | '' = '',
    ) =>
      onReservation(productId, reservationId).then((at) =>
        run(SCRIPTS.recordSettlement, { ...at, reservationId, outcome, reason, requiredStatus }),
      ),
    /**
     * Sweeper step for one product or sub-pool key id: reclaims up to `limit` due holds, purges ended records past 7
     * days.
     */
    reclaimExpired: (productId: string, limit: number) =>
      run(SCRIPTS.reclaimExpired, { productId: subPoolOf(productId)?.productId ?? productId, tag: productId, limit }),
    /**
     * Backfill: adds existing records to the per-customer index (at most 1,000 ids a call; see
     * scripts/backfill-customer-index.mjs).
     */
    indexRecords(productId: string, reservationIds: string[]) {
      if (reservationIds.length === 0 || reservationIds.length > 1_000)
        throw new Error('indexRecords takes 1 to 1,000 ids');
      return run(SCRIPTS.indexRecords, { productId, reservationIds });
    },
    /** The service's own ledger (no SETTLEMENT_URL): an entry once per reservation (a redelivery keeps the first). */
    recordLedgerEntry: (productId: string, reservationId: string, entry: string) =>
      run(SCRIPTS.recordLedgerEntry, { productId, reservationId, entry }),
    /** Whether the service's own ledger has a reservation's entry. */
    readLedgerEntry: (productId: string, reservationId: string) =>
      run(SCRIPTS.readLedgerEntry, { productId, reservationId }),
    /**
     * Invariant audit step for one product (lua/audit-product-11.lua): folds up
     * to `settledBatch` settled records into the running sums, then, once caught
     * up and with at most `liveLimit` live records, compares the pool and a
     * window of lines with what the records add up to, atomically.
     */
    auditProduct: (productId: string, options: AuditStepOptions) =>
      run(SCRIPTS.auditProduct, { productId: subPoolOf(productId)?.productId ?? productId, tag: productId, options }),

    /** Loads the Functions library (at start, and when readiness finds it missing). */
    loadScripts: () => loadFunctions(redis, library),
    scriptsLoaded: () => functionsLoaded(redis, library),
  };
}

export type QuotaEngine = ReturnType<typeof createQuotaEngine>;
