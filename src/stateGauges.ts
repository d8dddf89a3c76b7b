/**
 * Gauges read from Redis at scrape time, never per request: per-product pool
 * counters, the settlement backlog and its oldest pending age, the count of
 * settlement_unknown reservations, and whether Redis answers. One scrape
 * lists the products and reads each through the engine
 * (lua/read-pool-counters-3.lua, all calls in flight at once), so
 * `available` is the number the Lua views compute for a reserve, not a copy
 * of their rule; the read is shared by every gauge of that scrape.
 */
import { Gauge, type Registry } from 'prom-client';
import type { QuotaEngine } from './engine/quotaEngine.js';
import type { PoolCounters } from './engine/types.js';
import { redisNowMs } from './redis/clock.js';
import type { Keys } from './redis/keys.js';
import type { RedisClient } from './redis/topology.js';

/** Scrapes within this window share one read of Redis. */
const SNAPSHOT_TTL_MS = 500;
/** A scrape reports at most this many products (labels stay bounded). */
export const MAX_PRODUCTS_REPORTED = 1_000;

interface PoolState extends PoolCounters {
  productId: string;
}

interface Snapshot {
  nowMs: number;
  pools: PoolState[];
}

export interface StateSources {
  redis: RedisClient;
  keys: Keys;
  engine: Pick<QuotaEngine, 'readPoolCounters'>;
}

export function registerStateGauges(registry: Registry, sources: StateSources): void {
  const { redis } = sources;
  let cached: { at: number; snapshot: Promise<Snapshot> } | undefined;
  const snapshot = () => {
    if (!cached || Date.now() - cached.at > SNAPSHOT_TTL_MS) {
      cached = { at: Date.now(), snapshot: readSnapshot(sources) };
      cached.snapshot.catch(() => (cached = undefined));
    }
    return cached.snapshot;
  };

  const poolGauge = (name: string, help: string, field: 'capacity' | 'held' | 'committed' | 'settled' | 'available') =>
    new Gauge({
      name,
      help,
      labelNames: ['product'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        const s = await snapshot().catch(() => undefined);
        for (const p of s?.pools ?? []) this.set({ product: p.productId }, p[field]);
      },
    });
  poolGauge('quota_pool_capacity', 'Pool capacity, minor units', 'capacity');
  poolGauge('quota_pool_held', 'Sum of live holds, minor units', 'held');
  poolGauge('quota_pool_committed', 'Committed amounts not reversed, minor units', 'committed');
  poolGauge('quota_pool_settled', 'Settled amounts, minor units', 'settled');
  poolGauge(
    'quota_pool_available',
    'What the pool can still grant (priority tiers included), minor units',
    'available',
  );

  const total = (name: string, help: string, value: (s: Snapshot) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const s = await snapshot().catch(() => undefined);
        this.set(s ? value(s) : 0);
      },
    });
  total('quota_settlement_backlog', 'Committed reservations not yet settled, reversed or unknown', (s) =>
    s.pools.reduce((sum, p) => sum + p.backlog, 0),
  );
  total(
    'quota_settlement_oldest_pending_age_seconds',
    'Age of the oldest committed reservation awaiting settlement (0: none)',
    (s) => {
      const oldest = Math.min(...s.pools.map((p) => p.oldestCommittedAt ?? Infinity));
      return Number.isFinite(oldest) ? Math.max(0, (s.nowMs - oldest) / 1000) : 0;
    },
  );
  total('quota_settlement_unknown', 'Reservations in settlement_unknown, awaiting an operator', (s) =>
    s.pools.reduce((sum, p) => sum + p.unknown, 0),
  );

  new Gauge({
    name: 'quota_redis_up',
    help: '1 while the API connection to Redis is ready',
    registers: [registry],
    collect() {
      this.set(redis.status === 'ready' ? 1 : 0);
    },
  });
}

async function readSnapshot({ redis, keys, engine }: StateSources): Promise<Snapshot> {
  const productIds = (await redis.srandmember(keys.productIndex(), MAX_PRODUCTS_REPORTED)).sort();
  const [nowMs, counters] = await Promise.all([
    redisNowMs(redis),
    Promise.all(productIds.map((p) => engine.readPoolCounters(p))),
  ]);
  // PRODUCT_NOT_FOUND: listed but never created (a PUT that failed validation).
  const pools = productIds.flatMap((productId, i) => {
    const outcome = counters[i]!;
    return outcome.ok ? [{ productId, ...outcome.value }] : [];
  });
  return { nowMs, pools };
}
