/**
 * `npm start` with no REDIS_URL and nothing on localhost starts a private
 * redis-server; when none is installed it must stop with a message saying how
 * to get one (test/system/operations.test.ts covers the private server starting).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { resolveRedis } from '../../src/redis/resolveRedis.js';

it('says how to install redis-server when it is missing', async () => {
  const emptyBin = mkdtempSync(join(tmpdir(), 'qa-nobin-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'qa-data-'));
  const savedPath = process.env.PATH;
  process.env.PATH = emptyBin;
  try {
    await expect(resolveRedis(undefined, dataDir, createLogger('silent'))).rejects.toThrow(
      /redis-server is not installed.*apt-get install -y redis-server.*REDIS_URL/,
    );
  } finally {
    process.env.PATH = savedPath;
    rmSync(emptyBin, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
});
