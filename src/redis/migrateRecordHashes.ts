/**
 * One-off migration from the key-per-item layout (before issue 8: a hash
 * `<prefix>:{p}:line:<customerId>` per line and `<prefix>:{p}:res:<id>` per
 * reservation record) to one hash of JSON values per product (`lines`, `res`;
 * src/redis/keys.ts). Run it with every instance of the service stopped: an
 * old instance would keep writing the old keys, a new one cannot see them.
 * It is idempotent (a field already in the new hash is kept, the old key is
 * then only deleted), so it can be run again after an interruption.
 *
 *   npm run build && node dist/src/redis/migrateRecordHashes.js   (REDIS_URL, KEY_PREFIX as for the service)
 */
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { parseConfig } from '../config.js';
import { createKeys, type Keys } from './keys.js';
import { forEachProduct } from './productIndex.js';

export interface MigrationReport {
  products: number;
  lines: number;
  records: number;
}

async function migrateKind(redis: Redis, keys: Keys, productId: string, kind: 'line' | 'res'): Promise<number> {
  const prefix = `${keys.prefix}:{${productId}}:${kind}:`;
  const target = kind === 'line' ? keys.lines(productId) : keys.records(productId);
  let moved = 0;
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1_000);
    cursor = next;
    for (const key of found) {
      const hash = await redis.hgetall(key);
      if (Object.keys(hash).length > 0) {
        // Every value stays the string it was (numbers as int() strings), as the scripts store them.
        await redis.hsetnx(target, key.slice(prefix.length), JSON.stringify(hash));
        moved++;
      }
      await redis.del(key);
    }
  } while (cursor !== '0');
  return moved;
}

export async function migrateRecordHashes(redis: Redis, keys: Keys): Promise<MigrationReport> {
  const report: MigrationReport = { products: 0, lines: 0, records: 0 };
  await forEachProduct(redis, keys, async (productId) => {
    report.products++;
    report.lines += await migrateKind(redis, keys, productId, 'line');
    report.records += await migrateKind(redis, keys, productId, 'res');
  });
  return report;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const config = parseConfig(process.env);
  if (!config.redisUrl) throw new Error('set REDIS_URL to the Redis to migrate');
  const redis = new Redis(config.redisUrl);
  migrateRecordHashes(redis, createKeys(config.keyPrefix))
    .then((r) =>
      console.log(`migrated ${r.lines} lines and ${r.records} reservation records of ${r.products} products`),
    )
    .finally(() => redis.disconnect());
}
