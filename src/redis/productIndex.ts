import type { Redis } from 'ioredis';
import type { ReservationStatus } from '../engine/types.js';
import type { Keys } from './keys.js';

const PAGE = 500;

/** Visits every product id ever configured (the background jobs' work list), a page at a time. */
export async function forEachProduct(redis: Redis, keys: Keys, visit: (productId: string) => Promise<void>): Promise<void> {
  await forEachProductPage(redis, keys, async (productIds) => {
    for (const productId of productIds) await visit(productId);
  });
}

/**
 * Visits only the products whose `status` index holds an entry scored at or
 * below `maxScore` (a due hold; a commit past the relay's grace period): one
 * pipelined peek per page of products, so an idle product costs a sweep one
 * cheap read, not a round trip or a script call of its own.
 */
export async function forEachProductWithDue(
  redis: Redis,
  keys: Keys,
  status: ReservationStatus,
  maxScore: number,
  visit: (productId: string) => Promise<void>,
): Promise<void> {
  await forEachProductPage(redis, keys, async (productIds) => {
    const peek = redis.pipeline();
    for (const productId of productIds) peek.zrangebyscore(keys.status(productId, status), '-inf', maxScore, 'LIMIT', 0, 1);
    const answers = (await peek.exec()) ?? [];
    for (let i = 0; i < productIds.length; i++) {
      const [err, due] = answers[i] ?? [new Error('no answer')];
      if (err) throw err;
      if ((due as string[]).length > 0) await visit(productIds[i]!);
    }
  });
}

async function forEachProductPage(redis: Redis, keys: Keys, visit: (productIds: string[]) => Promise<void>): Promise<void> {
  let cursor = '0';
  do {
    const [next, productIds] = await redis.sscan(keys.productIndex(), cursor, 'COUNT', PAGE);
    cursor = next;
    if (productIds.length > 0) await visit(productIds);
  } while (cursor !== '0');
}
