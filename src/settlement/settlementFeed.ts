/**
 * The settlement feed: how a committed reservation reaches the settlement
 * queue. The commit script puts it in its product's `status:committed` set
 * (the outbox, scored by commit time) in the same atomic step as the commit;
 * this loop, in every process that runs the jobs, reads what each product's
 * outbox gained since its last look, every `intervalMs`, and adds the jobs in
 * one `addBulk` (job id = reservation id, so an entry added twice is one
 * job). The API's commit does no queue work at all (issue 11: the enqueue
 * cost the commit route a tenth of its CPU and a second Redis round trip).
 *
 * What it may miss, the outbox relay (outboxRelay.ts) still catches after
 * its grace period: an entry scored below a product's mark (a Redis clock
 * that stepped back, a failover to a node whose clock is behind), an add
 * that failed, a job that finished while its reservation stayed committed.
 */
import { subPoolOf } from '../engine/shards.js';
import type { Logger } from '../logger.js';
import type { Keys } from '../redis/keys.js';
import { pipelinePerNode, valueOf } from '../redis/perNode.js';
import { forEachProductPage } from '../redis/productIndex.js';
import type { RedisClient } from '../redis/topology.js';
import type { SettlementJobData } from './settlementQueue.js';

/** Outbox entries read per product and look at most (the next look goes on from there). */
const PAGE = 1_000;

export interface SettlementFeedDeps {
  redis: RedisClient;
  keys: Keys;
  addBulk(jobs: SettlementJobData[]): Promise<unknown>;
  logger: Logger;
  /** Counts reservations handed to the queue, and those whose add failed (left to the relay). */
  count(result: 'queued' | 'failed', n: number): void;
  intervalMs: number;
}

/** Where a product's outbox was last read: the highest score seen, and the ids seen at that score. */
interface Mark {
  score: number;
  ids: Set<string>;
}

export function createSettlementFeed(deps: SettlementFeedDeps) {
  const { redis, keys, logger } = deps;
  const marks = new Map<string, Mark>();
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> | undefined;
  let stopped = true;

  /** One look at every product's outbox; returns the reservations added. */
  async function feedOnce(): Promise<number> {
    let added = 0;
    await forEachProductPage(redis, keys, async (keyIds) => {
      const outbox = (keyId: string) => keys.status(keyId, 'committed');
      const answers = await pipelinePerNode(redis, keyIds, outbox, (p, keyId) =>
        // From the mark's score on, inclusive: a commit scored in the same millisecond after the last look is read.
        p.zrangebyscore(outbox(keyId), marks.get(keyId)?.score ?? '-inf', '+inf', 'WITHSCORES', 'LIMIT', 0, PAGE),
      );
      const jobs: SettlementJobData[] = [];
      const moved = new Map<string, Mark>();
      keyIds.forEach((keyId, i) => {
        const flat = (valueOf(answers[i]?.[0]) as string[] | undefined) ?? [];
        const mark = marks.get(keyId);
        // A sharded product's sub-pool key id names its product; its reservation ids carry the shard.
        const productId = subPoolOf(keyId)?.productId ?? keyId;
        let next = mark;
        for (let j = 0; j < flat.length; j += 2) {
          const reservationId = flat[j]!;
          const score = Number(flat[j + 1]);
          if (mark && score === mark.score && mark.ids.has(reservationId)) continue;
          jobs.push({ productId, reservationId });
          // (Scores come in order. The mark itself changes only once the add succeeded: copied, not added to.)
          if (!next || score > next.score) next = { score, ids: new Set() };
          else if (next === mark) next = { score: mark.score, ids: new Set(mark.ids) };
          next.ids.add(reservationId);
        }
        if (next && next !== mark) moved.set(keyId, next);
      });
      if (jobs.length === 0) return;
      try {
        await deps.addBulk(jobs);
        for (const [keyId, mark] of moved) marks.set(keyId, mark);
        added += jobs.length;
        deps.count('queued', jobs.length);
      } catch (err) {
        // The marks stay: the next look reads these entries again.
        deps.count('failed', jobs.length);
        logger.warn({ err, reservations: jobs.length }, 'settlement feed: adding jobs failed; will try again');
      }
    });
    return added;
  }

  const loop = () => {
    current = feedOnce()
      .catch((err: unknown) => logger.warn({ err }, 'settlement feed: reading the outbox failed; will try again'))
      .then(() => {
        if (!stopped) timer = setTimeout(loop, deps.intervalMs);
      });
  };

  return {
    feedOnce,
    start() {
      if (!stopped) return;
      stopped = false;
      loop();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}
