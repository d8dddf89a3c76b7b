/**
 * Production Redis must run with maxmemory-policy noeviction (evicting a
 * counter or a hold would corrupt quota) and AOF on (an acknowledged draw must
 * survive a restart). Says plainly what it found; it does not refuse to start,
 * since managed Redis may hide CONFIG.
 */
import type { RedisClient } from './topology.js';
import type { Logger } from '../logger.js';

export interface DurabilityReport {
  maxmemoryPolicy: string | null;
  appendonly: string | null;
  appendfsync: string | null;
  problems: string[];
}

export async function checkDurability(redis: RedisClient, logger: Logger): Promise<DurabilityReport> {
  const read = async (name: string) => {
    try {
      const reply = (await redis.config('GET', name)) as string[];
      return reply[1] ?? null;
    } catch {
      return null;
    }
  };
  const report: DurabilityReport = {
    maxmemoryPolicy: await read('maxmemory-policy'),
    appendonly: await read('appendonly'),
    appendfsync: await read('appendfsync'),
    problems: [],
  };
  if (report.maxmemoryPolicy === null)
    report.problems.push(
      'could not read the Redis config (CONFIG GET refused): check maxmemory-policy and AOF yourself',
    );
  else {
    if (report.maxmemoryPolicy !== 'noeviction')
      report.problems.push(
        `maxmemory-policy is ${report.maxmemoryPolicy}: under memory ` +
          `pressure Redis may evict quota state; set noeviction`,
      );
    if (report.appendonly !== 'yes')
      report.problems.push(
        'AOF is off: acknowledged holds and draws since the last ' +
          'snapshot are lost if Redis restarts; set appendonly yes',
      );
    else if (report.appendfsync !== 'always')
      report.problems.push(
        `appendfsync is ${report.appendfsync}: up to about a second of ` +
          `acknowledged writes can be lost on a crash of the Redis host`,
      );
  }
  if (report.problems.length === 0)
    logger.info({ redis: report }, 'redis durability: noeviction, AOF on with appendfsync always');
  else for (const p of report.problems) logger.warn({ redis: report }, `redis durability: ${p}`);
  return report;
}
