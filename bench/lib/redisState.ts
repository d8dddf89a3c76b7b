/**
 * Reads the quota state straight from Redis (never through the service):
 * pool hashes, every line of a product, and every reservation record (fields
 * of one hash per product), from which the counters are recomputed for the
 * conservation audit by the harness's one rule (test/support/books.ts).
 *
 * Works on one node and on a Redis Cluster alike: every read names keys of
 * one product (one hash tag, so one slot), and reads over many products go
 * through src/redis/perNode.ts (one pipeline per slot owner on a Cluster).
 */
import type { Keys } from '../../src/redis/keys.js';
import { pipelinePerNode, valueOf } from '../../src/redis/perNode.js';
import type { RedisClient } from '../../src/redis/topology.js';
import { addRecord, emptyBooks, type Books } from '../../test/support/books.js';
import { sleep } from '../../test/support/wait.js';

export interface PoolState {
  capacity: number;
  held: number;
  committed: number;
  settled: number;
}

export interface LineState {
  limit: number;
  held: number;
  drawn: number;
  settling: number;
}

export async function readPools(redis: RedisClient, keys: Keys, productIds: string[]): Promise<Map<string, PoolState>> {
  const replies = await pipelinePerNode(
    redis,
    productIds,
    (p) => keys.pool(p),
    (pipeline, p) => pipeline.hmget(keys.pool(p), 'capacity', 'held', 'committed', 'settled'),
  );
  const out = new Map<string, PoolState>();
  productIds.forEach((p, i) => {
    const value = valueOf(replies[i]![0]);
    const [capacity, held, committed, settled] = (value as (string | null)[]).map((v) => Number(v ?? 0));
    out.set(p, { capacity: capacity!, held: held!, committed: committed!, settled: settled! });
  });
  return out;
}

/**
 * Every field of the `kind` hash (lines or reservation records, JSON values;
 * lua/includes/lines.lua, records.lua) of some products, HSCANned per product,
 * with the given fields of each value.
 */
async function scanProductHashes(
  redis: RedisClient,
  keys: Keys,
  kind: 'lines' | 'records',
  productIds: string[],
  fields: string[],
  each: (productId: string, id: string, values: (string | null)[]) => void,
): Promise<void> {
  for (const p of productIds) {
    const hash = kind === 'lines' ? keys.lines(p) : keys.records(p);
    let cursor = '0';
    do {
      const [next, flat] = await redis.hscan(hash, cursor, 'COUNT', 10_000);
      cursor = next;
      for (let i = 0; i < flat.length; i += 2) {
        const value = JSON.parse(flat[i + 1]!) as Record<string, string | undefined>;
        each(
          p,
          flat[i]!,
          fields.map((f) => value[f] ?? null),
        );
      }
    } while (cursor !== '0');
  }
}

export async function readLines(
  redis: RedisClient,
  keys: Keys,
  productIds: string[],
): Promise<Map<string, Map<string, LineState>>> {
  const out = new Map<string, Map<string, LineState>>(productIds.map((p) => [p, new Map()]));
  await scanProductHashes(
    redis,
    keys,
    'lines',
    productIds,
    ['limit', 'held', 'drawn', 'settling'],
    (p, customerId, v) => {
      const [limit, held, drawn, settling] = v.map((x) => Number(x ?? 0));
      out.get(p)!.set(customerId, { limit: limit!, held: held!, drawn: drawn!, settling: settling! });
    },
  );
  return out;
}

export interface RecordAudit extends Books {
  /** Each record's status, when asked for. */
  statusOf: Map<string, string>;
}

/** Recomputes the counters of each product from its reservation records alone (test/support/books.ts). */
export async function auditRecords(
  redis: RedisClient,
  keys: Keys,
  productIds: string[],
  keepStatuses = false,
): Promise<Map<string, RecordAudit>> {
  const audits = new Map<string, RecordAudit>(productIds.map((p) => [p, { ...emptyBooks(), statusOf: new Map() }]));
  await scanProductHashes(
    redis,
    keys,
    'records',
    productIds,
    ['status', 'amount', 'committedAmount', 'customerId'],
    (p, reservationId, v) => {
      const a = audits.get(p)!;
      const [status, amount, committedAmount, customerId] = v as [string, string, string, string];
      addRecord(a, { status, amount, committedAmount, customerId });
      if (keepStatuses) a.statusOf.set(reservationId, status);
    },
  );
  return audits;
}

export const RESERVATION_STATUSES = [
  'held',
  'committed',
  'released',
  'expired',
  'settled',
  'reversed',
  'settlement_unknown',
] as const;

/** Size of each per-status index (the sorted sets the scripts keep beside the records). */
export async function statusIndexSizes(
  redis: RedisClient,
  keys: Keys,
  productId: string,
): Promise<Record<string, number>> {
  const [replies] = await pipelinePerNode(
    redis,
    [productId],
    (p) => keys.pool(p),
    (pipeline, p) => {
      for (const s of RESERVATION_STATUSES) pipeline.zcard(keys.status(p, s));
    },
  );
  return Object.fromEntries(RESERVATION_STATUSES.map((s, i) => [s, Number(valueOf(replies![i]))]));
}

/**
 * Samples the pools of some products every `everyMs` while a load runs:
 * the summed remaining capacity over time (for the chart) and the largest
 * held + committed seen against each capacity (never above it).
 */
export function samplePools(redis: RedisClient, keys: Keys, productIds: string[], everyMs = 100) {
  const points: { t: number; remaining: number }[] = [];
  const overs: string[] = [];
  let samples = 0;
  let running = true;
  const started = performance.now();
  const loop = (async () => {
    while (running) {
      // Redis gone (the run is being stopped): stop sampling.
      const pools = await readPools(redis, keys, productIds).catch(() => undefined);
      if (!pools) return;
      samples++;
      let remaining = 0;
      for (const [p, s] of pools) {
        remaining += s.capacity - s.held - s.committed;
        if (s.held + s.committed > s.capacity || s.held < 0 || s.committed < 0) {
          if (overs.length < 10)
            overs.push(`${p}: held ${s.held} + committed ${s.committed} vs capacity ${s.capacity}`);
        }
      }
      points.push({ t: Math.round(performance.now() - started) / 1000, remaining });
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { samples, points, overs };
    },
  };
}
