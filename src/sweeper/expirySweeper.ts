/**
 * Background expiry: returns the quota of expired holds on products nobody
 * touches (scripts reclaim lazily on the products they do touch). Runs as a
 * scheduled job: exactly one instance sweeps at a time.
 */
import type { QuotaEngine } from '../engine/quotaEngine.js';
import { createScheduledJob } from '../jobs/scheduledJob.js';
import type { Logger } from '../logger.js';
import { redisNowMs } from '../redis/clock.js';
import type { Keys } from '../redis/keys.js';
import type { BullConnections, RedisClient } from '../redis/topology.js';
import { forEachProduct, forEachProductWithDue } from '../redis/productIndex.js';

export const SWEEP_JOB = 'expiry-sweep';
/** Bounds one product's share of a sweep; what is left waits for the next sweep. */
const MAX_BATCHES_PER_PRODUCT = 50;
/**
 * A sweep visits only products with a due hold, except one sweep a minute
 * that visits every product: the script also drops index entries of
 * released/expired records past their retention, which needs no due hold.
 */
const VISIT_ALL_EVERY_MS = 60_000;

export interface ExpirySweeperDeps {
  bullmq: BullConnections;
  redis: RedisClient;
  keys: Keys;
  engine: Pick<QuotaEngine, 'reclaimExpired'>;
  logger: Logger;
  intervalMs: number;
  batchSize: number;
}

export function createExpirySweeper(deps: ExpirySweeperDeps) {
  const { redis, keys, engine, logger } = deps;
  let lastVisitAll = 0;

  /** Reclaims every product's due holds; returns how many it reclaimed. */
  async function sweepOnce(): Promise<number> {
    let total = 0;
    const now = await redisNowMs(redis);
    const visitAll = now - lastVisitAll >= VISIT_ALL_EVERY_MS;
    if (visitAll) lastVisitAll = now;
    const visitProducts = visitAll
      ? (visit: (productId: string) => Promise<void>) => forEachProduct(redis, keys, visit)
      : (visit: (productId: string) => Promise<void>) => forEachProductWithDue(redis, keys, 'held', now, visit);
    await visitProducts(async (productId) => {
      for (let batch = 0; batch < MAX_BATCHES_PER_PRODUCT; batch++) {
        const { reclaimed, remaining } = await engine.reclaimExpired(productId, deps.batchSize);
        total += reclaimed;
        if (remaining === 0) break;
      }
    });
    // The engine counts them in quota_expired_holds_reclaimed_total{script="reclaim-expired"}.
    if (total > 0) logger.debug({ reclaimed: total }, 'expired holds reclaimed');
    return total;
  }

  const job = createScheduledJob({
    name: SWEEP_JOB,
    bullmq: deps.bullmq,
    prefix: keys.queuePrefix(),
    everyMs: deps.intervalMs,
    logger,
    run: async () => ({ reclaimed: await sweepOnce() }),
  });
  return { sweepOnce, start: job.start, stop: job.stop };
}

export type ExpirySweeper = ReturnType<typeof createExpirySweeper>;
