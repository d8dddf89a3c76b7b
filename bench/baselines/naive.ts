/**
 * What the service exists to avoid: a reserve written as GET the pool and the
 * line, compare, then DECRBY both (and write a hold), with no atomicity. Run
 * on the launch's own plan (same lines, amounts and pool) with many draws in
 * flight, it grants from stale reads; how far the pool and the lines go
 * below zero is the oversell.
 */
import type { Redis } from 'ioredis';
import type { LaunchPlan } from '../scenarios/launchPlan.js';

export interface NaiveRun {
  inFlight: number;
  draws: number;
  capacity: number;
  granted: number;
  /** granted - capacity, when positive. */
  oversold: number;
  oversoldPercentOfPool: number;
  linesOverLimit: number;
  /** Largest amount by which one line went over its limit. */
  worstLineOverdraw: number;
  seconds: number;
}

export async function runNaive(redis: Redis, plan: LaunchPlan, inFlight: number): Promise<NaiveRun> {
  const tag = `naive${inFlight}`;
  const poolKey = `${tag}:{n}:pool`;
  const lineKey = (c: string) => `${tag}:{n}:line:${c}`;
  await redis.set(poolKey, String(plan.capacity));
  for (let i = 0; i < plan.lines.length; i += 5_000) {
    const batch = plan.lines.slice(i, i + 5_000).flatMap((l) => [lineKey(l.customerId), String(l.limit)]);
    await redis.mset(...batch);
  }

  let next = 0;
  let granted = 0;
  const started = performance.now();
  const loop = async () => {
    for (;;) {
      const i = next++;
      const draw = plan.draws[i];
      if (!draw) return;
      // The race: both reads may be stale by the time the writes land.
      const pool = Number(await redis.get(poolKey));
      const line = Number(await redis.get(lineKey(draw.customerId)));
      if (pool < draw.amount || line < draw.amount) continue;
      await redis.decrby(poolKey, draw.amount);
      await redis.decrby(lineKey(draw.customerId), draw.amount);
      await redis.hset(`${tag}:{n}:hold:${i}`, 'customerId', draw.customerId, 'amount', draw.amount);
      granted += draw.amount;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  const seconds = (performance.now() - started) / 1000;

  let linesOverLimit = 0;
  let worstLineOverdraw = 0;
  for (let i = 0; i < plan.lines.length; i += 5_000) {
    const batch = plan.lines.slice(i, i + 5_000);
    const values = await redis.mget(...batch.map((l) => lineKey(l.customerId)));
    for (const v of values) {
      const remaining = Number(v);
      if (remaining < 0) {
        linesOverLimit++;
        worstLineOverdraw = Math.max(worstLineOverdraw, -remaining);
      }
    }
  }
  const oversold = Math.max(0, granted - plan.capacity);
  return {
    inFlight,
    draws: plan.draws.length,
    capacity: plan.capacity,
    granted,
    oversold,
    oversoldPercentOfPool: Math.round((oversold / plan.capacity) * 10_000) / 100,
    linesOverLimit,
    worstLineOverdraw,
    seconds: Math.round(seconds * 1000) / 1000,
  };
}
