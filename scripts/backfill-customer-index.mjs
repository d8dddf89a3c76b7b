/**
 * One-off, after deploying the version that added the per-customer index
 * (`{p}:bycustomer`): indexes the reservation records written before it, so
 * GET …/customers/{c}/reservations lists them and the audit's line checks
 * (which read a customer's records through the index) see them. Safe while
 * the service runs and safe to run twice (lua/index-records-2.lua: only
 * records that exist, ZADD NX). Run it before the audit's first line window
 * reaches old data, or expect line differences until it has run.
 *
 *   npm run build && REDIS_URL=redis://… KEY_PREFIX=qa node scripts/backfill-customer-index.mjs
 */
import { Redis } from 'ioredis';
import { createQuotaEngine } from '../dist/src/engine/quotaEngine.js';
import { createKeys } from '../dist/src/redis/keys.js';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const keys = createKeys(process.env.KEY_PREFIX ?? 'qa');
const engine = createQuotaEngine({ redis, keys });
try {
  await engine.loadScripts();
  let productCursor = '0';
  do {
    const [nextProducts, productIds] = await redis.sscan(keys.productIndex(), productCursor, 'COUNT', 500);
    productCursor = nextProducts;
    for (const p of productIds) {
      let cursor = '0';
      let added = 0;
      let seen = 0;
      do {
        const [next, flat] = await redis.hscan(keys.records(p), cursor, 'COUNT', 500);
        cursor = next;
        const ids = flat.filter((_, i) => i % 2 === 0);
        for (let i = 0; i < ids.length; i += 1_000) {
          added += (await engine.indexRecords(p, ids.slice(i, i + 1_000))).added;
        }
        seen += ids.length;
      } while (cursor !== '0');
      console.log(`${p}: ${seen} records, ${added} added to the per-customer index`);
    }
  } while (productCursor !== '0');
} finally {
  redis.disconnect();
}
