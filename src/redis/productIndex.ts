import type { Redis } from 'ioredis';
import type { Keys } from './keys.js';

/** Visits every product id ever configured (the background jobs' work list), a page at a time. */
export async function forEachProduct(redis: Redis, keys: Keys, visit: (productId: string) => Promise<void>): Promise<void> {
  let cursor = '0';
  do {
    const [next, productIds] = await redis.sscan(keys.productIndex(), cursor, 'COUNT', 500);
    cursor = next;
    for (const productId of productIds) await visit(productId);
  } while (cursor !== '0');
}
