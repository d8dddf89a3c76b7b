/**
 * Gauges read from Redis at scrape time, never per request: per-product pool
 * counters, the settlement backlog and its oldest pending age, the count of
 * settlement_unknown reservations, and whether Redis answers. One scrape
 * lists the products and reads all of them in one pipelined round trip (one
 * per node on a Redis Cluster), shared by every gauge of that scrape.
 */
import { Gauge, type Registry } from 'prom-client';
import { redisNowMs } from './redis/clock.js';
import type { Keys } from './redis/keys.js';
import { pipelinePerNode, valueOf } from './redis/perNode.js';
import type { RedisClient } from './redis/topology.js';

/** Scrapes within this window share one read of Redis. */
const SNAPSHOT_TTL_MS = 500;
/** A scrape reports at most this many products (labels stay bounded). */
export const MAX_PRODUCTS_REPORTED = 1_000;

interface PoolState {
  productId: string;
  capacity: number;
  held: number;
  committed: number;
  settled: number;
  available: number;
  backlog: number;
  oldestCommittedAt: number | null;
  unknown: number;
}

interface Snapshot {
  nowMs: number;
  pools: PoolState[];
}

export function registerStateGauges(registry: Registry, redis: RedisClient, keys: Keys): void {
  let cached: { at: number; snapshot: Promise<Snapshot> } | undefined;
  const snapshot = () => {
    if (!cached || Date.now() - cached.at > SNAPSHOT_TTL_MS) {
      cached = { at: Date.now(), snapshot: readSnapshot(redis, keys) };
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
  poolGauge('quota_pool_available', 'What the pool can still grant (priority tiers included), minor units', 'available');

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
  total('quota_settlement_oldest_pending_age_seconds', 'Age of the oldest committed reservation awaiting settlement (0: none)', (s) => {
    const oldest = Math.min(...s.pools.map((p) => p.oldestCommittedAt ?? Infinity));
    return Number.isFinite(oldest) ? Math.max(0, (s.nowMs - oldest) / 1000) : 0;
  });
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

async function readSnapshot(redis: RedisClient, keys: Keys): Promise<Snapshot> {
  const productIds = (await redis.srandmember(keys.productIndex(), MAX_PRODUCTS_REPORTED)).sort();
  const [nowMs, replies] = await Promise.all([
    redisNowMs(redis),
    pipelinePerNode(redis, productIds, (p) => keys.pool(p), (pipeline, p) => {
      pipeline.hmget(keys.pool(p), 'capacity', 'held', 'committed', 'settled');
      pipeline.zcard(keys.status(p, 'committed'));
      pipeline.zrange(keys.status(p, 'committed'), 0, 0, 'WITHSCORES');
      pipeline.zcard(keys.status(p, 'settlement_unknown'));
    }),
  ]);
  const pools: PoolState[] = [];
  productIds.forEach((productId, i) => {
    const mine = replies[i]!;
    const raw = valueOf(mine[0]) as (string | null)[];
    if (raw[0] === null) return; // listed but never created (a PUT that failed validation)
    const [capacity = 0, held, committed, settled] = raw.map(Number);
    const oldest = valueOf(mine[2]) as string[];
    pools.push({
      productId,
      capacity,
      held: held ?? 0,
      committed: committed ?? 0,
      settled: settled ?? 0,
      available: Math.max(0, capacity - (held ?? 0) - (committed ?? 0)),
      backlog: Number(valueOf(mine[1])),
      oldestCommittedAt: oldest.length === 2 ? Number(oldest[1]) : null,
      unknown: Number(valueOf(mine[3])),
    });
  });
  return { nowMs, pools };
}
