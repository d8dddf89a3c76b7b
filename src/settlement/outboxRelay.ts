/**
 * The outbox relay: the commit script puts each committed reservation in the
 * product's status:committed set in the same atomic step, and this scheduled
 * job makes sure every one of them older than a grace period has a live
 * settlement job. A process killed between commit and enqueue loses nothing.
 */
import { subPoolOf } from '../engine/shards.js';
import { createScheduledJob } from '../jobs/scheduledJob.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { redisNowMs } from '../redis/clock.js';
import type { Keys } from '../redis/keys.js';
import type { BullConnections, RedisClient } from '../redis/topology.js';
import { forEachProductWithDue } from '../redis/productIndex.js';
import type { SettlementQueue } from './settlementQueue.js';

export const RELAY_JOB = 'outbox-relay';
const PAGE = 1_000;

export interface OutboxRelayDeps {
  bullmq: BullConnections;
  redis: RedisClient;
  keys: Keys;
  settlementQueue: Pick<SettlementQueue, 'ensureJob'>;
  logger: Logger;
  metrics: Metrics;
  intervalMs: number;
  /** Only reservations committed at least this long ago (the settlement feed queues the fresh ones). */
  graceMs: number;
}

export function createOutboxRelay(deps: OutboxRelayDeps) {
  const { redis, keys, logger, metrics } = deps;

  async function relayOnce(): Promise<number> {
    const cutoff = (await redisNowMs(redis)) - deps.graceMs;
    let relayed = 0;
    await forEachProductWithDue(redis, keys, 'committed', cutoff, async (productId) => {
      let offset = 0;
      for (;;) {
        const ids = await redis.zrangebyscore(
          keys.status(productId, 'committed'),
          '-inf',
          cutoff,
          'LIMIT',
          offset,
          PAGE,
        );
        for (const reservationId of ids) {
          // A sharded product's sub-pool key id names its product; its reservation ids carry the shard.
          const owner = subPoolOf(productId)?.productId ?? productId;
          const action = await deps.settlementQueue.ensureJob(owner, reservationId);
          if (action !== 'live') {
            relayed++;
            logger.warn(
              { productId, reservationId, action },
              'outbox relay: committed reservation had no live settlement job',
            );
          }
        }
        if (ids.length < PAGE) break;
        offset += PAGE;
      }
    });
    metrics.relayed(relayed);
    return relayed;
  }

  const job = createScheduledJob({
    name: RELAY_JOB,
    bullmq: deps.bullmq,
    prefix: keys.queuePrefix(),
    everyMs: deps.intervalMs,
    logger,
    // Idempotent (ensureJob), so a run hung on a failing-over node may be given up on and the next one started.
    runTimeoutMs: Math.max(30_000, 10 * deps.intervalMs),
    run: async () => ({ relayed: await relayOnce() }),
  });
  return { relayOnce, start: job.start, stop: job.stop };
}
