/**
 * The minimal scripts (bench/lua/minimal-*.lua): the floor each of our
 * scripts is compared with, on their own keys (hash tag {m}) so they never
 * touch the service's data. Used by the bare express app and by the
 * Redis-level comparisons.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { benchLuaDir } from '../lib/paths.js';

export const MINIMAL_PREFIX = 'qa:{m}:';
const LINE_PREFIX = `${MINIMAL_PREFIX}line:`;
const POOL = `${MINIMAL_PREFIX}pool`;
const COMMITTED = `${MINIMAL_PREFIX}committed`;
const DRAWN_PREFIX = `${MINIMAL_PREFIX}drawn:`;
const IDEMPOTENCY_TTL_SECONDS = 86_400;

export interface MinimalShas {
  reserve: string;
  commit: string;
  release: string;
}

const FILES: Record<keyof MinimalShas, string> = {
  reserve: 'minimal-reserve-4.lua',
  commit: 'minimal-commit-2.lua',
  release: 'minimal-release-2.lua',
};

export async function loadMinimalScripts(redis: Redis): Promise<MinimalShas> {
  const out = {} as MinimalShas;
  for (const [op, file] of Object.entries(FILES) as [keyof MinimalShas, string][]) {
    out[op] = (await redis.script('LOAD', readFileSync(join(benchLuaDir, file), 'utf8'))) as string;
  }
  return out;
}

/** A pool and `customers` lines (c0.., or `c` alone) that never run out. */
export async function fillMinimalCounters(redis: Redis, customers: string[]): Promise<void> {
  const p = redis.pipeline().set(POOL, String(1e15));
  for (const c of customers) p.set(LINE_PREFIX + c, String(1e15));
  await p.exec();
}

/** EVALSHA arguments (after the sha) of each minimal script. */
export const minimalArgs = {
  reserve: (holdId: string, idempotencyKey: string, customerId: string, amount: number | string) => [
    '4',
    POOL,
    LINE_PREFIX + customerId,
    `${MINIMAL_PREFIX}hold:${holdId}`,
    `${MINIMAL_PREFIX}idem:${idempotencyKey}`,
    String(amount),
    String(IDEMPOTENCY_TTL_SECONDS),
    customerId,
  ],
  commit: (holdId: string) => ['2', `${MINIMAL_PREFIX}hold:${holdId}`, COMMITTED, DRAWN_PREFIX],
  release: (holdId: string) => ['2', `${MINIMAL_PREFIX}hold:${holdId}`, POOL, LINE_PREFIX],
};
