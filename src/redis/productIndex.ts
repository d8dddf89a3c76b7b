/**
 * The product index: every product id ever configured, one set in its own
 * slot (`<prefix>:products`, no hash tag of a product). It is written only
 * when a product is configured (PUT/PATCH of a pool), never per request, so
 * on a Cluster it is not a hot key; the background jobs read it a page at a
 * time and then read the products themselves per node (./perNode.ts).
 */
import type { ReservationStatus } from '../reservationStatus.js';
import type { Keys } from './keys.js';
import { pipelinePerNode, valueOf } from './perNode.js';
import type { RedisClient } from './topology.js';

const PAGE = 500;

/** Visits every product id ever configured (the background jobs' work list), a page at a time. */
export async function forEachProduct(
  redis: RedisClient,
  keys: Keys,
  visit: (productId: string) => Promise<void>,
): Promise<void> {
  await forEachProductPage(redis, keys, async (productIds) => {
    for (const productId of productIds) await visit(productId);
  });
}

/**
 * Visits only the products whose `status` index holds an entry scored at or
 * below `maxScore` (a due hold; a commit past the relay's grace period): one
 * pipelined peek per page of products (per node on a Cluster), so an idle
 * product costs a sweep one cheap read, not a round trip or a script call of
 * its own.
 */
export async function forEachProductWithDue(
  redis: RedisClient,
  keys: Keys,
  status: ReservationStatus,
  maxScore: number,
  visit: (productId: string) => Promise<void>,
): Promise<void> {
  await forEachProductPage(redis, keys, async (productIds) => {
    const answers = await pipelinePerNode(
      redis,
      productIds,
      (productId) => keys.status(productId, status),
      (peek, productId) => peek.zrangebyscore(keys.status(productId, status), '-inf', maxScore, 'LIMIT', 0, 1),
    );
    for (let i = 0; i < productIds.length; i++) {
      if ((valueOf(answers[i]?.[0]) as string[]).length > 0) await visit(productIds[i]!);
    }
  });
}

/**
 * Visits every product id ever configured, a page (SSCAN) at a time; then the key ids of sharded
 * products' sub-pools 1..N-1 (`<productId>~<suffix>`, src/engine/shards.ts), so every sub-pool's
 * holds are swept, relayed and audited like a product's.
 */
export async function forEachProductPage(
  redis: RedisClient,
  keys: Keys,
  visit: (productIds: string[]) => Promise<void>,
): Promise<void> {
  for (const index of [keys.productIndex(), keys.subPoolIndex()]) {
    let cursor = '0';
    do {
      const [next, productIds] = await redis.sscan(index, cursor, 'COUNT', PAGE);
      cursor = next;
      if (productIds.length > 0) await visit(productIds);
    } while (cursor !== '0');
  }
}
