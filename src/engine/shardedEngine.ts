/**
 * The engine's product-level operations over sub-pools (see ./shards.ts for
 * the layout and the escrow rules). An unsharded product takes exactly the
 * path it always took: one FCALL on `{productId}`; the only extra is one
 * HMGET per product per process to learn its layout (cached: `shards` is fixed
 * at creation).
 *
 * Reserve on a sharded product: one FCALL on the customer's sub-pool; only a
 * POOL_EXHAUSTED there (not stored) takes more: finish transfers in transit,
 * read every sub-pool, move quota from those with the most free, try again,
 * until granted or the product (for the line's tier) cannot cover the amount;
 * then the refusal is stored like any other.
 */
import type { Keys } from '../redis/keys.js';
import { pipelinePerNode, valueOf } from '../redis/perNode.js';
import type { RedisClient } from '../redis/topology.js';
import type { RedisCaller } from './functionLibrary.js';
import type { SCRIPTS } from './scriptCatalogue.js';
import {
  chooseShardTags,
  initialAllotments,
  MAX_SHARDS,
  reservationIdFor,
  shardOfCustomer,
  shardOfReservation,
  subPoolOf,
} from './shards.js';
import type {
  LineConfig,
  LineSnapshot,
  Outcome,
  PoolConfig,
  PoolCounters,
  PoolSnapshot,
  RefusalCode,
  ShardView,
} from './types.js';

type Scripts = typeof SCRIPTS;
/** A sub-pool's allotment (its pool `capacity`) and use. */
type Counters = Pick<PoolSnapshot, 'capacity' | 'held' | 'committed'>;
type ReqOf<K extends keyof Scripts> = Parameters<Scripts[K]['args']>[0];
type ResOf<K extends keyof Scripts> = ReturnType<Scripts[K]['decode']>;
export type ScriptCall = <K extends keyof Scripts>(name: K, req: ReqOf<K>) => Promise<ResOf<K>>;

export interface ShardEvents {
  /** A quota transfer between sub-pools was credited. */
  onTransfer?: (productId: string, amount: number, reason: 'borrow' | 'rebalance' | 'capacity' | 'recovery') => void;
  /** A reserve needed quota moved to its sub-pool (counted once per reserve). */
  onBorrow?: (productId: string, outcome: 'granted' | 'refused') => void;
}

/**
 * How many borrow rounds a reserve tries before its refusal is final (each round moves quota or proves there is none).
 */
const BORROW_ROUNDS = 16;
/** How long a sub-pool found short of quota takes the cheap refusal path first (reserveWhenShort). */
const SHORT_HINT_MS = 5_000;

export type PoolConfigInput = Partial<PoolConfig> & { shards?: number };

const POOL_DEFAULTS: Omit<PoolConfig, 'capacity'> = {
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

const invalidShards = (now: number, reason: string): Outcome<never> => ({
  ok: false,
  code: 'INVALID_CONFIG',
  context: { field: 'shards', reason },
  now,
  replayed: false,
});

export function createShardedOperations(call: ScriptCall, redis: RedisCaller, keys: Keys, events: ShardEvents = {}) {
  /** Sub-pool tag -> when a reserve there last ended refused for quota (see reserveWhenShort). */
  const short = new Map<string, number>();
  /** productId -> its sub-pools' tags (index = shard); only products that exist are cached. */
  const layouts = new Map<string, string[]>();

  async function readMeta(productId: string) {
    const [capacity, shards, shardTags, productCapacity] = (await redis.call(
      'HMGET',
      keys.pool(productId),
      'capacity',
      'shards',
      'shardTags',
      'productCapacity',
    )) as (string | null)[];
    if (capacity === null || capacity === undefined) return null;
    const tags = shardTags ? shardTags.split(',') : [productId];
    return { shards: Number(shards ?? 1), tags, productCapacity: Number(productCapacity ?? capacity) };
  }

  async function tagsOf(productId: string): Promise<string[]> {
    const known = layouts.get(productId);
    if (known) return known;
    const meta = await readMeta(productId);
    if (!meta) return [productId];
    layouts.set(productId, meta.tags);
    return meta.tags;
  }

  // ---- transfers ---------------------------------------------------------------

  interface Pending {
    from: number;
    to: number;
    seq: number;
    amount: number;
  }

  async function pendingOf(productId: string, tags: string[]): Promise<Pending[]> {
    const all = await Promise.all(
      tags.map(async (tag, from) => {
        const flat = (await redis.call('HGETALL', keys.xferPending(tag))) as string[];
        const out: Pending[] = [];
        for (let i = 0; i < flat.length; i += 2) {
          const t = JSON.parse(flat[i + 1]!) as { amount: string; to: string; seq: string };
          out.push({ from, to: Number(t.to), seq: Number(t.seq), amount: Number(t.amount) });
        }
        return out;
      }),
    );
    void productId;
    return all.flat().sort((a, b) => a.seq - b.seq);
  }

  /** Credits one pending transfer (idempotent) and clears it on the giver. */
  async function complete(
    productId: string,
    tags: string[],
    t: Pending,
    reason: 'borrow' | 'rebalance' | 'capacity' | 'recovery',
  ) {
    const taken = await call('shardTake', {
      productId,
      tag: tags[t.to]!,
      seq: String(t.seq),
      amount: t.amount,
      from: String(t.from),
    });
    if (!taken.ok) throw new Error(`shard transfer ${productId} ${t.from}->${t.to}#${t.seq}: ${taken.code}`);
    if (taken.value.behind) return false;
    // Cleared only once credited: a crash in between leaves it pending, and a repeat credit is a no-op.
    await redis.call('HDEL', keys.xferPending(tags[t.from]!), `${t.to}:${t.seq}`);
    if (taken.value.applied) events.onTransfer?.(productId, t.amount, reason);
    return true;
  }

  /** Completes every transfer in transit of a product, in per-pair sequence order. Returns how many it cleared. */
  async function completePending(
    productId: string,
    tags?: string[],
    reason: 'borrow' | 'rebalance' | 'capacity' | 'recovery' = 'recovery',
  ) {
    const layout = tags ?? (await tagsOf(productId));
    if (layout.length === 1) return 0;
    let cleared = 0;
    for (const t of await pendingOf(productId, layout)) if (await complete(productId, layout, t, reason)) cleared++;
    return cleared;
  }

  /** Moves up to `amount` from sub-pool `from` to `to`; answers what moved. */
  async function move(
    productId: string,
    tags: string[],
    from: number,
    to: number,
    amount: number,
    mode: 'all' | 'priority',
    reason: 'borrow' | 'rebalance' | 'capacity',
  ) {
    const given = await call('shardGive', { productId, tag: tags[from]!, amount, to: String(to), mode });
    if (!given.ok || given.value.given === 0) return 0;
    const t = { from, to, seq: Number(given.value.seq), amount: given.value.given };
    // An earlier transfer of the same pair still in transit: complete them all in order.
    if (!(await complete(productId, tags, t, reason))) await completePending(productId, tags, reason);
    return t.amount;
  }

  // ---- reads -------------------------------------------------------------------

  async function readSubPoolsAt(productId: string, tags: string[]) {
    const pools = await Promise.all(tags.map((tag) => call('readPool', { productId, tag })));
    const snapshots: PoolSnapshot[] = [];
    let now = 0;
    for (const p of pools) {
      if (!p.ok) return null;
      snapshots.push(p.value);
      now = Math.max(now, p.now);
    }
    return { pools: snapshots, now };
  }
  const readSubPools = async (productId: string, tags: string[]) =>
    (await readSubPoolsAt(productId, tags))?.pools ?? null;

  const used = (p: Counters) => p.held + p.committed;
  const freeOf = (p: Counters) => Math.max(0, p.capacity - used(p));

  /** Whether a line of this tier may take the priority reserve (or there is none). */
  function isPriority(reserve: PoolConfig['priorityReserve'], tier: string | null | undefined) {
    return !reserve || reserve.amount <= 0 || (tier !== null && tier !== undefined && reserve.tiers.includes(tier));
  }

  /**
   * What sub-pool i can grant a line of this tier on its own: its free, less the priority reserve
   * for other tiers. Every sub-pool keeps the product's whole reserve back from other tiers (the
   * same check as an unsharded pool's), so a grant there leaves at least the reserve in the product;
   * borrowing moves free quota, the reserve part included, to where a line needs it.
   */
  function freeForTier(pools: Counters[], i: number, priority: boolean, reserve: number) {
    return Math.max(0, freeOf(pools[i]!) - (priority ? 0 : reserve));
  }

  /** The product's snapshot: totals of the sub-pools, config of sub-pool 0, capacity the product's, and the list. */
  function productSnapshot(
    productId: string,
    pools: PoolSnapshot[],
    productCapacity: number,
    inTransit: number,
    withheld: number,
  ): PoolSnapshot {
    const p0 = pools[0]!;
    const held = pools.reduce((s, p) => s + p.held, 0);
    const committed = pools.reduce((s, p) => s + p.committed, 0);
    const settled = pools.reduce((s, p) => s + p.settled, 0);
    const available = Math.max(0, productCapacity - held - committed);
    const shards: ShardView[] = pools.map((p, index) => ({
      index,
      allotment: p.capacity,
      held: p.held,
      committed: p.committed,
      available: freeOf(p),
    }));
    return {
      ...p0,
      productId,
      capacity: productCapacity,
      held,
      committed,
      settled,
      available,
      availableToAllTiers: Math.max(0, available - (p0.priorityReserve?.amount ?? 0)),
      shards,
      inTransit,
      withheld,
    } as PoolSnapshot;
  }

  async function readProduct(productId: string, tags: string[]): Promise<Outcome<PoolSnapshot>> {
    const [read, meta, pending, withheld] = await Promise.all([
      readSubPoolsAt(productId, tags),
      readMeta(productId),
      pendingOf(productId, tags),
      Promise.all(tags.map((tag) => redis.call('HGET', keys.pool(tag), 'withheld') as Promise<string | null>)),
    ]);
    if (!read || !meta) return call('readPool', { productId });
    const { pools, now } = read;
    const inTransit = pending.reduce((s, t) => s + t.amount, 0);
    const held = withheld.reduce((s, w) => s + Number(w ?? 0), 0);
    // `now`: the latest of the sub-pools' clocks (each read expired its due holds at its own instant).
    return {
      ok: true,
      value: productSnapshot(productId, pools, meta.productCapacity, inTransit, held),
      now,
      replayed: false,
    };
  }

  // ---- borrowing -----------------------------------------------------------------

  /**
   * One borrow round for sub-pool `own`: finish transfers in transit and return withheld quota
   * (rare: both answer a fresh read), then move what is missing from the sub-pools with the most
   * free (all of their free if need be: every sub-pool keeps the reserve back on its own). Answers
   * true when a retry may succeed, else what the other sub-pools could lend (the refusal's drawable):
   * the product as a whole cannot cover `amount` for this tier.
   */
  async function borrowRound(
    productId: string,
    tags: string[],
    own: number,
    amount: number,
    tier: string | null | undefined,
  ): Promise<true | { borrowable: number | null }> {
    const state = await settledState(productId, tags);
    if (!state) return { borrowable: null };
    const { pools } = state;
    const priority = isPriority(state.reserve, tier);
    const reserve = state.reserve?.amount ?? 0;
    // What `own` lacks: for other tiers it must end up with the amount plus the reserve free.
    let need = amount - (freeOf(pools[own]!) - (priority ? 0 : reserve));
    if (need <= 0) return true; // room appeared (a release, a transfer in): try again
    const donors = pools
      .map((p, j) => ({ j, lendable: j === own ? 0 : freeOf(p) }))
      .filter((d) => d.lendable > 0)
      .sort((a, b) => b.lendable - a.lendable);
    const lendable = donors.reduce((sum, d) => sum + d.lendable, 0);
    if (lendable < need) return { borrowable: borrowableFrom(state, own, tier) };
    for (const d of donors) {
      if (need <= 0) break;
      need -= await move(productId, tags, d.j, own, Math.min(need, d.lendable), 'priority', 'borrow');
    }
    return true;
  }

  /**
   * The transfers of a sharded product checked on both sides. For every pair i -> j: j credited no
   * more than i debited (`receivedFrom:i` of j <= `givenTo:j` of i) and no sequence number i never
   * issued (`appliedSeq:i` <= `givenSeq:j`): a credit without its debit is a violation (quota made
   * from nothing). The receivers are read before the givers, so a transfer running meanwhile cannot
   * look like one (a debit precedes its credit); a debit without its credit is quota in transit,
   * which completePending finishes. Also allotments + withheld + in transit = capacity: read while
   * transfers run, it can be off for an instant, so a mismatch is read again (after completing what
   * is in transit) before it counts. `repair`: each credit without its debit is undone on the
   * receiver (lua/shard-take-1.lua 'repair:<i>'), and the check is read again.
   */
  async function auditTransfers(productId: string, { repair = false } = {}) {
    const tags = await tagsOf(productId);
    if (tags.length === 1) return { violations: [] as string[], found: [] as string[], pairs: 0, repaired: 0 };
    const hashesOf = () =>
      Promise.all(
        tags.map(async (tag) => {
          const flat = (await redis.call('HGETALL', keys.pool(tag))) as string[];
          const h: Record<string, string> = {};
          for (let i = 0; i < flat.length; i += 2) h[flat[i]!] = flat[i + 1]!;
          return h;
        }),
      );
    let repaired = 0;
    /** What the first complete read found (before any repair). */
    let found: string[] | null = null;
    for (let attempt = 0; ; attempt++) {
      const receivers = await hashesOf();
      const pending = await pendingOf(productId, tags);
      const givers = await hashesOf();
      const meta = await readMeta(productId);
      const violations: string[] = [];
      const credits: { from: number; to: number; excess: number; issued: number }[] = [];
      let pairs = 0;
      for (let i = 0; i < tags.length; i++) {
        for (let j = 0; j < tags.length; j++) {
          if (i === j) continue;
          const given = Number(givers[i]![`givenTo:${j}`] ?? 0);
          const issued = Number(givers[i]![`givenSeq:${j}`] ?? 0);
          const received = Number(receivers[j]![`receivedFrom:${i}`] ?? 0);
          const applied = Number(receivers[j]![`appliedSeq:${i}`] ?? 0);
          if (given === 0 && received === 0 && issued === 0 && applied === 0) continue;
          pairs++;
          if (received > given || applied > issued) {
            violations.push(
              `${i}->${j}: credited ${received} (sequence ${applied}) without ` +
                `its debit: given ${given} (sequence ${issued})`,
            );
            credits.push({ from: i, to: j, excess: Math.max(0, received - given), issued });
          }
        }
      }
      // BigInt: after a cut far below use the allotments and withheld quota pass 2^53 (their sum does not).
      const allotments = givers.reduce((sum, h) => sum + BigInt(h.capacity ?? 0), 0n);
      const withheld = givers.reduce((sum, h) => sum + BigInt(h.withheld ?? 0), 0n);
      const inTransit = pending.reduce((sum, t) => sum + BigInt(t.amount), 0n);
      const balanced = !meta || allotments + withheld + inTransit === BigInt(meta.productCapacity);
      if (!balanced && credits.length === 0 && attempt < 2) {
        await completePending(productId, tags, 'recovery');
        continue;
      }
      if (!balanced)
        violations.push(
          `allotments ${allotments} + withheld ${withheld} + in transit ` +
            `${inTransit} != capacity ${meta!.productCapacity}`,
        );
      found ??= violations;
      if (!repair || credits.length === 0 || attempt >= 2) return { violations, found, pairs, repaired };
      for (const c of credits) {
        const out = await call('shardTake', {
          productId,
          tag: tags[c.to]!,
          seq: String(c.issued),
          amount: c.excess,
          from: `repair:${c.from}`,
        });
        if (out.ok) repaired++;
      }
    }
  }

  /**
   * One rebalancer step for a product: completes transfers in transit,
   * returns withheld quota where it safely can, then evens out the sub-pools'
   * free quota (open to every tier; sub-pool 0 keeps the priority reserve on
   * top): sub-pools with more than the mean give to those with less, in
   * moves of at least `minMove`. Answers how much moved.
   */
  async function rebalance(productId: string, minMove = 1) {
    const tags = await tagsOf(productId);
    if (tags.length === 1) return 0;
    await completePending(productId, tags, 'rebalance');
    const state = await settledState(productId, tags, 'rebalance');
    if (!state) return 0;
    const free = state.pools.map(freeOf);
    const mean = Math.floor(free.reduce((s, f) => s + f, 0) / free.length);
    const givers = free.map((f, j) => ({ j, surplus: f - mean })).filter((g) => g.surplus >= minMove);
    const takers = free.map((f, j) => ({ j, deficit: mean - f })).filter((t) => t.deficit >= minMove);
    let moved = 0;
    for (const t of takers) {
      for (const g of givers) {
        const amount = Math.min(t.deficit, g.surplus);
        if (amount < minMove) continue;
        const got = await move(productId, tags, g.j, t.j, amount, 'priority', 'rebalance');
        g.surplus -= got;
        t.deficit -= got;
        moved += got;
      }
    }
    return moved;
  }

  /**
   * A reserve on a sub-pool this process last saw short of quota (the product as a whole short for the
   * line's tier): the proof that the product still cannot cover it is one pipeline of plain reads
   * (readState) plus the line's tier, then one reserve call that stores the refusal, where the full
   * path costs a failed first try, the reads and that call. The reserve script still decides on its
   * own sub-pool: room that appeared there is granted. Answers null when the reads show that the
   * product could cover it (or anything unusual: a transfer in transit, withheld quota, no line),
   * and the full path runs.
   */
  async function reserveWhenShort(
    productId: string,
    tags: string[],
    own: number,
    req: ReqOf<'reserve'> & { tag: string },
  ) {
    const [state, lineJson] = await Promise.all([
      readState(productId, tags),
      redis.call('HGET', keys.lines(req.tag), req.customerId) as Promise<string | null>,
    ]);
    if (!state || !lineJson || state.pending.length > 0 || state.withheld.some((w) => w > 0)) return null;
    const tier = (JSON.parse(lineJson) as { tier?: string | null }).tier || null;
    if (productFreeFor(state, tier) >= req.amount) return null;
    const out = await call('reserve', { ...req, borrowable: borrowableFrom(state, own, tier) });
    if (out.ok) short.delete(req.tag);
    return out;
  }

  return {
    tagsOf,
    rebalance,
    auditTransfers,
    completePending,
    returnWithheld,
    move,
    readSubPools,
    freeForTier,
    isPriority,

    /** PUT/PATCH of a product, sharded or not. */
    async upsertProduct(
      productId: string,
      input: PoolConfigInput,
      mode: 'put' | 'patch',
      plain: (config: Partial<PoolConfig>) => Promise<Outcome<{ created: boolean; pool: PoolSnapshot }>>,
    ): Promise<Outcome<{ created: boolean; pool: PoolSnapshot }>> {
      const { shards: wanted, ...config } = input;
      const meta = await readMeta(productId);
      if (wanted !== undefined && (!Number.isSafeInteger(wanted) || wanted < 1 || wanted > MAX_SHARDS)) {
        return invalidShards(Date.now(), `must be an integer from 1 to ${MAX_SHARDS}`);
      }
      if (meta && wanted !== undefined && wanted !== meta.shards) {
        return invalidShards(Date.now(), `cannot change once the product exists (it has ${meta.shards})`);
      }
      if (!meta && mode === 'put' && wanted !== undefined && wanted > 1)
        return createSharded(productId, config, wanted);
      if (!meta || meta.shards === 1) return plain(config);
      return updateSharded(productId, meta.tags, config, mode);
    },

    readPool: (productId: string, tags: string[]) => readProduct(productId, tags),

    /**
     * The metrics scrape's counters for the product: every sub-pool's summed, capacity the product's (read-only, like
     * each sub-pool's).
     */
    async readCounters(productId: string, tags: string[]): Promise<Outcome<PoolCounters>> {
      const [parts, meta] = await Promise.all([
        Promise.all(tags.map((tag) => call('readPoolCounters', { productId, tag }))),
        readMeta(productId),
      ]);
      const first = parts[0]!;
      if (!meta || !first.ok || !parts.every((p) => p.ok)) return first;
      const values = parts.map((p) => (p as typeof first).value);
      const sum = (f: 'held' | 'committed' | 'settled' | 'backlog' | 'unknown') =>
        values.reduce((total, v) => total + v[f], 0);
      const oldest = Math.min(...values.map((v) => v.oldestCommittedAt ?? Infinity));
      const available = Math.max(0, meta.productCapacity - sum('held') - sum('committed'));
      // Every sub-pool's availableToAllTiers is its available less the same reserve.
      const reserve = values[0]!.available - values[0]!.availableToAllTiers;
      return {
        ...first,
        value: {
          capacity: meta.productCapacity,
          held: sum('held'),
          committed: sum('committed'),
          settled: sum('settled'),
          available,
          availableToAllTiers: Math.max(0, available - reserve),
          backlog: sum('backlog'),
          oldestCommittedAt: Number.isFinite(oldest) ? oldest : null,
          unknown: sum('unknown'),
        },
      };
    },

    async reserve<T extends ReqOf<'reserve'>>(r: T, tags: string[]): Promise<ResOf<'reserve'>> {
      const own = shardOfCustomer(r.customerId, tags.length);
      const req = {
        ...r,
        tag: tags[own]!,
        reservationId: reservationIdFor(r.reservationId, own),
        customerScoped: true,
      };
      const shortSince = short.get(req.tag);
      if (shortSince !== undefined && Date.now() - shortSince < SHORT_HINT_MS) {
        const answered = await reserveWhenShort(r.productId, tags, own, req);
        if (answered) return answered;
      }
      let out = await call('reserve', { ...req, deferRefusals: true });
      if (out.ok) short.delete(req.tag);
      // granted, replayed, or no line/product (never stored)
      if (out.ok || out.replayed || !out.context.line) return out;
      const tier = out.context.line.tier;
      let known: number | null = null;
      if (out.code === 'POOL_EXHAUSTED') {
        for (let round = 0; round < BORROW_ROUNDS; round++) {
          const moved = await borrowRound(r.productId, tags, own, r.amount, tier);
          if (moved !== true) {
            known = moved.borrowable;
            break;
          }
          out = await call('reserve', { ...req, deferRefusals: true });
          if (out.ok || out.replayed || out.code !== 'POOL_EXHAUSTED') break;
        }
        events.onBorrow?.(r.productId, out.ok ? 'granted' : 'refused');
        if (out.ok || out.replayed) return out;
        if (out.code === 'POOL_EXHAUSTED') short.set(req.tag, Date.now());
      }
      // A refusal: stored (and replayed) like any other, its drawable counting what borrowing would bring.
      return call('reserve', { ...req, borrowable: known ?? (await borrowable(r.productId, tags, own, tier)) });
    },

    /**
     * The line with `drawable` counting what borrowing would bring (each sub-pool read exactly; not one
     * snapshot), and its sub-pool's pool (the config its blockers are about: the same in every sub-pool).
     */
    async readLine(
      productId: string,
      customerId: string,
      tags: string[],
    ): Promise<Outcome<{ line: LineSnapshot; pool: PoolSnapshot }>> {
      const own = shardOfCustomer(customerId, tags.length);
      const read = await call('readLine', { productId, customerId, tag: tags[own]! });
      if (!read.ok) return read;
      const line = await productLine(productId, tags, read.value.line, read.value.pool);
      return { ...read, value: { line, pool: read.value.pool } };
    },

    /** A repayment on the customer's sub-pool; its line answer with the product's drawable. */
    async repay(req: ReqOf<'repay'>, tags: string[]): Promise<ResOf<'repay'>> {
      const own = shardOfCustomer(req.customerId, tags.length);
      // The tier is the line's: read it first (a repayment is not the hot path), so the stored answer's drawable is the
      // product's.
      const before = await call('readLine', { productId: req.productId, customerId: req.customerId, tag: tags[own]! });
      const tier = before.ok ? before.value.line.tier : null;
      const lend = await borrowable(req.productId, tags, own, tier);
      return call('repay', { ...req, tag: tags[own]!, customerScoped: true, borrowable: lend });
    },

    reservationTag: (reservationId: string, tags: string[]) => tags[shardOfReservation(reservationId, tags.length)]!,
    customerTag: (customerId: string, tags: string[]) => tags[shardOfCustomer(customerId, tags.length)]!,

    async upsertLines(productId: string, lines: LineConfig[], tags: string[]) {
      const groups = new Map<number, LineConfig[]>();
      for (const l of lines) {
        const i = shardOfCustomer(l.customerId, tags.length);
        groups.set(i, [...(groups.get(i) ?? []), l]);
      }
      let created = 0;
      let updated = 0;
      let last: ResOf<'upsertLines'> | null = null;
      for (const [i, group] of groups) {
        const out = await call('upsertLines', { productId, lines: group, tag: tags[i]! });
        if (!out.ok) return out;
        created += out.value.created;
        updated += out.value.updated;
        if (group.includes(lines.at(-1)!)) last = out;
      }
      if (!last || !last.ok) return last!;
      const line = await productLine(productId, tags, last.value.line);
      return { ...last, value: { ...last.value, created, updated, line } };
    },
  };

  /**
   * Every sub-pool's counters, withheld quota and reserve, with plain reads (HMGET, ZRANGE, HLEN and
   * TIME per sub-pool, one pipeline per node): a few µs of Redis time each, where a script call costs
   * tens. A sub-pool with a hold due (soonest expiry at or before its node's TIME) is read again
   * through its read script, which returns the due holds first, so what it shows is exact at its
   * instant; transfers in transit are read (HGETALL) only when some sub-pool has one.
   */
  async function readState(productId: string, tags: string[]) {
    let peeked = await peek(tags);
    for (let round = 0; round < 3 && peeked?.some((p) => p.due); round++) {
      await Promise.all(peeked.map((p, i) => (p.due ? call('readPool', { productId, tag: tags[i]! }) : null)));
      peeked = await peek(tags);
    }
    if (!peeked) return null;
    const pending = peeked.some((p) => p.pending > 0) ? await pendingOf(productId, tags) : [];
    return {
      pools: peeked as Counters[],
      withheld: peeked.map((p) => p.withheld),
      pending,
      reserve: peeked[0]!.reserve,
    };
  }
  type ProductState = NonNullable<Awaited<ReturnType<typeof readState>>>;

  async function peek(tags: string[]) {
    const replies = await pipelinePerNode(
      redis as RedisClient,
      tags,
      (tag) => keys.pool(tag),
      (pipeline, tag) => {
        pipeline.time();
        pipeline.hmget(keys.pool(tag), 'capacity', 'held', 'committed', 'withheld', 'reserveAmount', 'reserveTiers');
        pipeline.zrange(keys.status(tag, 'held'), 0, 0, 'WITHSCORES');
        pipeline.hlen(keys.xferPending(tag));
      },
    );
    const out = [];
    for (const r of replies) {
      const [sec, micro] = valueOf(r[0]!) as [string, string];
      const [capacity, held, committed, withheld, reserveAmount, reserveTiers] = valueOf(r[1]!) as (string | null)[];
      if (capacity === null || capacity === undefined) return null;
      const soonest = valueOf(r[2]!) as string[];
      const now = Number(sec) * 1000 + Math.floor(Number(micro) / 1000);
      const amount = Number(reserveAmount ?? 0);
      out.push({
        capacity: Number(capacity),
        held: Number(held ?? 0),
        committed: Number(committed ?? 0),
        withheld: Number(withheld ?? 0),
        pending: Number(valueOf(r[3]!)),
        due: soonest.length === 2 && Number(soonest[1]) <= now,
        reserve: amount > 0 ? { amount, tiers: (reserveTiers ?? '').split(',').filter(Boolean) } : null,
      });
    }
    return out;
  }

  /** The state with transfers in transit completed and withheld quota returned where it safely can (each rare). */
  async function settledState(productId: string, tags: string[], reason: 'borrow' | 'rebalance' = 'borrow') {
    let state = await readState(productId, tags);
    if (state && state.pending.length > 0) {
      await completePending(productId, tags, reason);
      state = await readState(productId, tags);
    }
    if (state && state.withheld.some((w) => w > 0) && (await returnWithheld(productId, tags, state.pools))) {
      state = await readState(productId, tags);
    }
    return state;
  }

  /**
   * The product's free quota for this tier: every sub-pool's (after the withheld returns a borrow would make) plus
   * quota in transit, less the reserve for other tiers.
   */
  function productFreeFor({ pools, pending, withheld, reserve }: ProductState, tier: string | null | undefined) {
    const inTransit = pending.reduce((sum, t) => sum + t.amount, 0);
    const after = pools.map((p) => ({ ...p }));
    for (const r of planReturns(pools, withheld, inTransit)) after[r.to]!.capacity += r.amount;
    const free = after.reduce((sum, p) => sum + freeOf(p), 0) + inTransit;
    return Math.max(0, free - (isPriority(reserve, tier) ? 0 : (reserve?.amount ?? 0)));
  }

  /**
   * What sub-pool `own` could get for this tier beyond what it can grant on its own (a refusal's or a repayment's
   * drawable adds it).
   */
  function borrowableFrom(state: ProductState, own: number, tier: string | null | undefined) {
    const priority = isPriority(state.reserve, tier);
    return productFreeFor(state, tier) - freeForTier(state.pools, own, priority, state.reserve?.amount ?? 0);
  }

  async function borrowable(productId: string, tags: string[], own: number, tier: string | null | undefined) {
    const state = await readState(productId, tags);
    return state ? borrowableFrom(state, own, tier) : 0;
  }

  /**
   * A line answered by its sub-pool's script, with drawable and blockers made the product's. `ownPool`:
   * the line's sub-pool as the same script call read it (then the line and its sub-pool are one instant,
   * and each other sub-pool is counted once, from one later read).
   */
  async function productLine(
    productId: string,
    tags: string[],
    line: LineSnapshot,
    ownPool?: PoolSnapshot,
  ): Promise<LineSnapshot> {
    const own = shardOfCustomer(line.customerId, tags.length);
    const state = await readState(productId, tags);
    const pool =
      ownPool ?? (await call('readPool', { productId, tag: tags[own]! }).then((o) => (o.ok ? o.value : null)));
    if (!state || !pool) return line;
    state.pools[own] = pool;
    return withProductDrawable(line, pool, productFreeFor(state, line.tier));
  }

  function withProductDrawable(line: LineSnapshot, ownPool: PoolSnapshot, productFree: number): LineSnapshot {
    // The script answered for its own sub-pool; the pool part of the answer is the product's.
    const blockers: RefusalCode[] = line.blockers.filter((b) => b !== 'POOL_EXHAUSTED');
    const { minAmount, maxAmount } = ownPool;
    if (productFree < minAmount) blockers.push('POOL_EXHAUSTED');
    let drawable = 0;
    if (blockers.length === 0) {
      drawable = Math.min(line.available, productFree, maxAmount ?? Number.MAX_SAFE_INTEGER);
      if (drawable < minAmount) drawable = 0;
    }
    return { ...line, drawable, blockers };
  }

  async function createSharded(productId: string, config: Partial<PoolConfig>, shards: number) {
    const tags = chooseShardTags(productId, shards);
    const capacity = config.capacity ?? 0;
    const allotments = initialAllotments(capacity, shards);
    const full = { ...POOL_DEFAULTS, ...config };
    // Sub-pool 0 last: the product exists (for readers) only once every sub-pool does.
    for (let i = 1; i < shards; i++) {
      const out = await call('upsertPool', {
        productId,
        tag: tags[i]!,
        mode: 'put',
        config: { ...full, capacity: allotments[i]! },
      });
      if (!out.ok) return out;
      await redis.call('SADD', keys.subPoolIndex(), tags[i]!);
    }
    await redis.call(
      'HSET',
      keys.pool(productId),
      'shards',
      String(shards),
      'shardTags',
      tags.join(','),
      'productCapacity',
      String(capacity),
    );
    const out = await call('upsertPool', { productId, mode: 'put', config: { ...full, capacity: allotments[0]! } });
    if (!out.ok) {
      await redis.call('HDEL', keys.pool(productId), 'shards', 'shardTags', 'productCapacity');
      return out;
    }
    layouts.set(productId, tags);
    const pool = await readProduct(productId, tags);
    return pool.ok ? { ...out, value: { created: true, pool: pool.value } } : pool;
  }

  async function updateSharded(productId: string, tags: string[], input: Partial<PoolConfig>, mode: 'put' | 'patch') {
    const { capacity, ...rest } = input;
    // PUT: whatever it omits takes its default; sent as a patch so each sub-pool keeps its allotment.
    const config: Partial<PoolConfig> = mode === 'put' ? { ...POOL_DEFAULTS, ...rest } : rest;
    // Sub-pool 0 first: it validates the merged config (INVALID_CONFIG) before any other changes.
    if (Object.keys(config).length > 0) {
      const first = await call('upsertPool', { productId, mode: 'patch', config });
      if (!first.ok) return first;
      // Every sub-pool keeps the whole priority reserve back from other tiers (see freeForTier).
      await Promise.all(tags.slice(1).map((tag) => call('upsertPool', { productId, tag, mode: 'patch', config })));
    }
    if (capacity !== undefined) await resize(productId, tags, capacity);
    const pool = await readProduct(productId, tags);
    return pool.ok
      ? { ok: true as const, value: { created: false, pool: pool.value }, now: pool.now, replayed: false }
      : pool;
  }

  /**
   * Capacity changes adjust allotments exactly. Up: sub-pool 0's allotment and
   * the product's capacity rise together (one step). Down: free quota is
   * retired from sub-pool 0, other sub-pools' free quota moved there first;
   * when nothing is free anywhere and capacity must go lower still (below
   * use, by O), every sub-pool withholds O of its allotment (free_j = -O) and
   * sub-pool 0 retires O: then no sub-pool's free exceeds the product's
   * (capacity - use), which is what makes every later grant exact; the
   * withheld quota returns once no sub-pool is below its use (returnWithheld).
   */
  async function resize(productId: string, tags: string[], capacity: number) {
    for (let round = 0; round < 4 * tags.length + 4; round++) {
      await completePending(productId, tags, 'capacity');
      const meta = await readMeta(productId);
      const pools = await readSubPools(productId, tags);
      if (!meta || !pools) return;
      const delta = capacity - meta.productCapacity;
      if (delta === 0) return;
      // Withheld quota a lower capacity may now be cut from comes back first (it is not free until then).
      if (delta < 0 && (await returnWithheld(productId, tags, pools))) continue;
      if (delta > 0) {
        // Raising sub-pool 0's allotment with the product's capacity keeps J (both sides rise by delta).
        const out = await call('shardTake', { productId, seq: '', amount: delta, from: 'grow' });
        if (!out.ok) throw new Error(`grow ${productId}: ${out.code}`);
        // Withheld quota goes back where it safely can (sub-pools below use; all of it once none is).
        const after = await readSubPools(productId, tags);
        if (after) await returnWithheld(productId, tags, after);
        return;
      }
      const cut = -delta;
      if (freeOf(pools[0]!) > 0) {
        await call('shardGive', { productId, amount: cut, to: 'retire', mode: 'priority' });
        continue;
      }
      const donor = pools.findIndex((p, j) => j > 0 && freeOf(p) > 0);
      if (donor > 0) {
        await move(productId, tags, donor, 0, Math.min(cut, freeOf(pools[donor]!)), 'priority', 'capacity');
        continue;
      }
      // Below use: each sub-pool withholds `cut` (its free goes to -cut), then sub-pool 0 retires it.
      for (let j = 1; j < tags.length; j++) {
        await call('shardGive', { productId, tag: tags[j]!, amount: cut, to: 'withhold', mode: 'force' });
      }
      await call('shardGive', { productId, amount: cut, to: 'retire', mode: 'force' });
      return;
    }
  }

  /**
   * Withheld quota (capacity once lowered below use) comes back in two ways,
   * each keeping invariant J (for every sub-pool k: free_k + the other
   * sub-pools' positive free <= the product's free; what makes concurrent
   * grants exact, see README): a sub-pool below its use gets back at most
   * what brings it to 0 and what J allows; once none is below use, all of it.
   */
  interface Return {
    from: number;
    to: number;
    amount: number;
  }

  function planReturns(pools: Counters[], withheld: number[], inTransit: number): Return[] {
    // BigInt: after a cut far below use every sub-pool withholds about the cut, so the sums can pass 2^53.
    const big = BigInt;
    const min = (a: bigint, b: bigint) => (a < b ? a : b);
    const frees = pools.map((p) => big(p.capacity) - big(p.held) - big(p.committed));
    const left = withheld.map(big);
    let total = left.reduce((sum, w) => sum + w, 0n);
    const plan: Return[] = [];
    if (total === 0n) return plan;
    for (let j = 0; j < pools.length; j++) {
      if (frees[j]! >= 0n) continue;
      // J after the return: free_j + w + (the others' positive free) <= the product's free
      // = W + T + (all free), so w <= W + T + (the others' negative free). At most up to 0.
      const margin = total + big(inTransit) + frees.reduce((sum, f, k) => sum + (k === j ? 0n : min(0n, f)), 0n);
      let want = min(-frees[j]!, margin);
      // Its own withheld quota first, then other sub-pools' (a transfer out of their withheld).
      for (const k of [j, ...pools.keys()].filter((k, i) => i === 0 || k !== j)) {
        const w = min(want, left[k]!);
        if (w <= 0n) continue;
        plan.push({ from: k, to: j, amount: Number(w) });
        left[k]! -= w;
        frees[j]! += w;
        total -= w;
        want -= w;
      }
    }
    if (frees.every((f) => f >= 0n))
      for (let j = 0; j < pools.length; j++) if (left[j]! > 0n) plan.push({ from: j, to: j, amount: Number(left[j]!) });
    return plan;
  }

  async function withheldOf(tags: string[]) {
    const raw = (await Promise.all(tags.map((tag) => redis.call('HGET', keys.pool(tag), 'withheld')))) as (
      string | null
    )[];
    return raw.map((w) => Number(w ?? 0));
  }

  async function returnWithheld(productId: string, tags: string[], pools: Counters[]) {
    const withheld = await withheldOf(tags);
    if (withheld.every((w) => w === 0)) return false;
    const pending = await pendingOf(productId, tags);
    const plan = planReturns(
      pools,
      withheld,
      pending.reduce((s, t) => s + t.amount, 0),
    );
    for (const r of plan) {
      if (r.from === r.to) {
        await call('shardTake', { productId, tag: tags[r.to]!, seq: '', amount: r.amount, from: 'withheld' });
        continue;
      }
      const given = await call('shardGive', {
        productId,
        tag: tags[r.from]!,
        amount: r.amount,
        to: String(r.to),
        mode: 'withheld',
      });
      if (given.ok && given.value.given > 0) {
        const t = { from: r.from, to: r.to, seq: Number(given.value.seq), amount: given.value.given };
        if (!(await complete(productId, tags, t, 'capacity'))) await completePending(productId, tags, 'capacity');
      }
    }
    return plan.length > 0;
  }
}

export type ShardedOperations = ReturnType<typeof createShardedOperations>;
export { subPoolOf };
