/**
 * The sharded products' rebalancer: a scheduled job (one instance at a time,
 * like the expiry sweeper) that, for every product with more than one
 * sub-pool, completes transfers left in transit, returns withheld quota, and
 * evens out the sub-pools' free quota (engine.shards.rebalance), so most
 * reserves find their quota in their own sub-pool and need no borrow.
 */
import type { QuotaEngine } from '../engine/quotaEngine.js';
import { createScheduledJob } from '../jobs/scheduledJob.js';
import type { Logger } from '../logger.js';
import type { Keys } from '../redis/keys.js';
import { forEachProduct } from '../redis/productIndex.js';
import type { BullConnections, RedisClient } from '../redis/topology.js';

export const REBALANCE_JOB = 'shard-rebalance';

export interface ShardRebalancerDeps {
  bullmq: BullConnections;
  redis: RedisClient;
  keys: Keys;
  engine: Pick<QuotaEngine, 'shards'>;
  logger: Logger;
  intervalMs: number;
}

export function createShardRebalancer(deps: ShardRebalancerDeps) {
  async function rebalanceOnce(): Promise<number> {
    let moved = 0;
    await forEachProduct(deps.redis, deps.keys, async (productId) => {
      if (productId.includes('~')) return; // a sub-pool key id: its product is visited itself
      try {
        moved += await deps.engine.shards.rebalance(productId);
      } catch (err) {
        deps.logger.warn({ err, productId }, 'shard rebalancer: step failed; the next run retries');
      }
    });
    return moved;
  }
  const job = createScheduledJob({
    name: REBALANCE_JOB,
    bullmq: deps.bullmq,
    prefix: deps.keys.queuePrefix(),
    everyMs: deps.intervalMs,
    logger: deps.logger,
    run: async () => ({ moved: await rebalanceOnce() }),
  });
  return { rebalanceOnce, start: job.start, stop: job.stop };
}
