/**
 * REDIS_WAIT_REPLICAS (CONTRACT.md "Redis topologies and durability"): before
 * a write is answered, at least that many replicas must hold it. Each
 * writing script call is sent in one pipeline with `WAIT n timeout`, so the
 * WAIT runs on the same connection, on the node that just ran the script
 * (on a Cluster a pipeline goes to its keys' slot owner), right after it:
 * one round trip. WAIT answers how many replicas acknowledged everything
 * this connection wrote so far, so it covers the script call before it.
 *
 * Fewer than asked (a replica slow or gone; a master just promoted, before
 * the failed node is back as its replica): the call throws
 * ReplicasUnconfirmedError, which the API answers 503 UNAVAILABLE with
 * Retry-After. The write may stand; the caller's retry (same
 * Idempotency-Key, or the repeated commit/release) answers it, after its own
 * WAIT. Counted in quota_redis_replicas_unconfirmed_writes_total and logged
 * (at most once per LOG_EVERY_MS); quota_redis_replicas_attached shows each
 * master's replicas at scrape time.
 *
 * Replays and repeated commits/releases go through the same scripts, so they
 * WAIT as well: an answer first given by a master that lost it in a failover
 * is never confirmed by a replay on a master whose replicas do not hold it.
 */
import calculateSlot from 'cluster-key-slot';
import type { Cluster } from 'ioredis';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../logger.js';
import { assertClusterReady, isCluster, type RedisClient } from './topology.js';

type Arg = string | number;

/**
 * Every script whose call changes state a client is answered about (reads that only reclaim expired holds do not WAIT).
 */
export const WRITING_SCRIPTS: ReadonlySet<string> = new Set([
  'reserve',
  'commit',
  'release',
  'repay',
  'upsert-pool',
  'upsert-lines',
  'record-settlement',
]);

const LOG_EVERY_MS = 10_000;
/** How long a scrape waits for a master's INFO replication. */
const INFO_DEADLINE_MS = 500;

/** A write not confirmed by enough replicas in time. The message starts with Redis's own NOREPLICAS code. */
export class ReplicasUnconfirmedError extends Error {
  override readonly name = 'ReplicasUnconfirmedError';
  constructor(
    readonly asked: number,
    readonly confirmed: number,
    readonly timeoutMs: number,
  ) {
    super(
      `NOREPLICAS the write was confirmed by ${confirmed} of the ${asked} replica(s) ` +
        `asked within ${timeoutMs} ms; it may stand: retry to learn its outcome`,
    );
  }
}

export interface DurableWritesOptions {
  replicas: number;
  timeoutMs: number;
  logger: Logger;
  /** Where the counter and the replicas gauge go (the service's registry). */
  registry?: Registry;
  /** The client whose masters the replicas gauge reads at scrape time. */
  client?: RedisClient;
  /**
   * Connections to send confirmed writes on, in turn (same topology as the
   * engine's client). A WAIT holds its connection until the replicas answer
   * and Redis runs nothing else from that connection meanwhile, so on one
   * connection per master every write would wait for the one before it.
   */
  pool?: RedisClient[];
}

export function createDurableWrites(options: DurableWritesOptions) {
  const { replicas, timeoutMs, logger } = options;
  let lastLog = 0;
  let turn = 0;
  const pool = options.pool ?? [];
  /** The next pooled connection, or the caller's when there is no pool. */
  const pick = (client: RedisClient) => (pool.length > 0 ? pool[turn++ % pool.length]! : client);

  const unconfirmed = options.registry
    ? new Counter({
        name: 'quota_redis_replicas_unconfirmed_writes_total',
        help:
          'Writes answered 503 because fewer replicas than ' +
          'REDIS_WAIT_REPLICAS confirmed them in time (the write may stand)',
        registers: [options.registry],
      })
    : undefined;
  if (options.registry) {
    new Gauge({
      name: 'quota_redis_wait_replicas',
      help: 'REDIS_WAIT_REPLICAS: replicas that must confirm each write before it is answered (0: no confirmation)',
      registers: [options.registry],
    }).set(replicas);
  }
  if (options.registry && options.client) registerReplicasGauge(options.registry, options.client);

  /** Sends `command args` and WAIT in one pipeline; answers the command's reply once enough replicas confirmed it. */
  async function call(client: RedisClient, command: string, args: Arg[], firstKey: string): Promise<unknown> {
    for (let attempt = 0; ; attempt++) {
      assertClusterReady(client);
      const replies = ((await client
        .pipeline()
        .call(command, ...args)
        .call('WAIT', replicas, timeoutMs)
        .exec()) ?? []) as [Error | null, unknown][];
      const [err, reply] = replies[0] ?? [new Error('no reply to the script call'), null];
      if (err) {
        // Redis answered these without running the command (a stale slot map after a failover): safe to send again.
        if (attempt < 2 && isCluster(client) && /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(err.message)) {
          await refreshSlots(client);
          continue;
        }
        throw err;
      }
      const [waitErr, confirmed] = replies[1] ?? [new Error('no reply to WAIT'), null];
      if (waitErr) throw waitErr;
      if (Number(confirmed) < replicas) {
        unconfirmed?.inc();
        const now = Date.now();
        if (now - lastLog >= LOG_EVERY_MS) {
          lastLog = now;
          logger.warn(
            { asked: replicas, confirmed: Number(confirmed), timeoutMs, node: nodeOf(client, firstKey) },
            `redis: a write was confirmed by ${confirmed} of ${replicas} replica(s) within ` +
              `${timeoutMs} ms: writes answer 503 until the master has enough replicas attached ` +
              `(a replica down, or a failover whose failed node is not back yet)`,
          );
        }
        throw new ReplicasUnconfirmedError(replicas, Number(confirmed), timeoutMs);
      }
      return reply;
    }
  }

  return {
    replicas,
    /** Whether calls of this script wait for replicas (REDIS_WAIT_REPLICAS above 0 and a writing script). */
    covers(scriptName: string): boolean {
      return replicas > 0 && WRITING_SCRIPTS.has(scriptName);
    },
    call,
    /**
     * FCALL + WAIT on the next pooled connection (a missing function throws; the engine loads the library and calls
     * again).
     */
    fcall(client: RedisClient, functionName: string, keys: string[], args: Arg[]): Promise<unknown> {
      return call(pick(client), 'fcall', [functionName, keys.length, ...keys, ...args], keys[0] ?? '');
    },
  };
}

export type DurableWrites = ReturnType<typeof createDurableWrites>;

function nodeOf(client: RedisClient, key: string): string {
  if (!isCluster(client) || !key) return 'master';
  return client.slots[calculateSlot(key)]?.[0] ?? 'unknown';
}

function refreshSlots(cluster: Cluster): Promise<void> {
  return new Promise((resolve) =>
    (cluster as unknown as { refreshSlotsCache(cb: () => void): void }).refreshSlotsCache(() => resolve()),
  );
}

/**
 * quota_redis_replicas_attached{node}: each master's attached replicas (INFO replication connected_slaves), read at
 * scrape time.
 */
function registerReplicasGauge(registry: Registry, client: RedisClient): void {
  new Gauge({
    name: 'quota_redis_replicas_attached',
    help: 'Replicas attached to each Redis master (INFO replication), read at scrape time',
    labelNames: ['node'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const masters = isCluster(client)
        ? client.nodes('master').map((n) => ({ node: `${n.options.host}:${n.options.port}`, redis: n }))
        : [{ node: 'master', redis: client }];
      await Promise.all(
        masters.map(async ({ node, redis }) => {
          const info = await withDeadline(redis.info('replication'), INFO_DEADLINE_MS).catch(() => undefined);
          const match = info ? /^connected_slaves:(\d+)/m.exec(info) : null;
          if (match) this.set({ node }, Number(match[1]));
        }),
      );
    },
  });
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
