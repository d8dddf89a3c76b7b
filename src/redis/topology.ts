/**
 * The one place Redis clients are built, from the configured topology
 * (CONTRACT.md "Redis topologies and durability"): one node (REDIS_URL or
 * the private redis-server), a Redis Cluster (REDIS_CLUSTER_NODES), or a
 * Sentinel-watched master (REDIS_SENTINELS + REDIS_SENTINEL_NAME).
 *
 * The API's client fails fast on every topology: no offline queue and no
 * re-sending of a command that was sent and not answered. A write whose
 * connection dropped or timed out may have run; re-sending it behind the
 * caller's back could apply it twice or after the caller was told 503. The
 * caller's retry with the same Idempotency-Key is the only path to its
 * outcome. On a Cluster that means (ioredis 5 defaults in brackets):
 *
 * - retryDelayOnFailover: 0 [100]. Above 0 ioredis re-sends every command
 *   whose node connection closed ("Connection is closed."), including the
 *   ones in flight when a master died: the re-sends the issue counted.
 * - enableOfflineQueue: false [true]. Queued commands carry no timeout
 *   (ioredis starts commandTimeout when a command reaches a node).
 * - redisOptions: commandTimeout 1.5 s, maxRetriesPerRequest 0,
 *   autoResendUnfulfilledCommands false (node connections never reconnect
 *   in ioredis; these make sure nothing is replayed if they ever do).
 * - MOVED / ASK (maxRedirections), TRYAGAIN (retryDelayOnTryAgain) and
 *   CLUSTERDOWN (retryDelayOnClusterDown) are followed: Redis answers them
 *   without running the command, so following them cannot run it twice.
 *   maxRedirections is kept small so they fit in the 2-second answer bound.
 *
 * BullMQ: a producer (Queue) fails fast too; a Worker blocks and retries
 * (maxRetriesPerRequest null, as BullMQ requires). On a Cluster BullMQ takes
 * a Cluster instance, and its prefix carries a hash tag (keys.queuePrefix()),
 * so each queue's keys share one slot.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { ConnectionOptions } from 'bullmq';
import type { HostPort, RedisTopologyConfig } from '../config.js';
import type { Logger } from '../logger.js';
import { apiRedisOptions, COMMAND_TIMEOUT_MS, queueConnectionOptions, workerConnectionOptions } from './connection.js';
import { resolveRedis } from './resolveRedis.js';
import type { RedisServerHandle } from './redisServer.js';

/** What the service talks to: one node (also through Sentinel) or a Cluster. */
export type RedisClient = Redis | Cluster;

export function isCluster(client: RedisClient): client is Cluster {
  return (client as Cluster).isCluster === true;
}

/**
 * An ioredis Cluster pipeline sent while the Cluster has no slot map waits
 * for it with no time limit (Pipeline.exec: delayUntilReady); fail fast
 * instead, as single commands do without an offline queue.
 */
export function assertClusterReady(client: RedisClient): void {
  if (isCluster(client) && (client.status !== 'ready' || client.slots.length === 0)) {
    throw new Error("Cluster isn't ready and enableOfflineQueue options is false");
  }
}

/**
 * The nodes that run scripts: every master of a Cluster (each must hold the
 * scripts or functions itself: they are not shared across masters, and a
 * promoted replica has no SCRIPT LOAD cache), or the one node.
 */
export function mastersOf(client: RedisClient): Redis[] {
  return isCluster(client) ? client.nodes('master') : [client];
}

/** BullMQ connection options for producers (queue) and consumers (worker). */
export interface BullConnections {
  queue(): ConnectionOptions;
  worker(): ConnectionOptions;
}

export interface RedisTopology {
  kind: 'private' | 'single' | 'cluster' | 'sentinel';
  /** Where it is, fit for a log line (no password). */
  description: string;
  client: RedisClient;
  bullmq: BullConnections;
  /** Set when the service started its own redis-server. */
  privateServer?: RedisServerHandle;
  /**
   * `n` more clients built and connected as the API's is: confirmed writes
   * (REDIS_WAIT_REPLICAS) spread over them, since a WAIT holds its connection
   * until the replicas answer. Closed by close().
   */
  moreClients(n: number): Promise<RedisClient[]>;
  /** Closes the API client, the extra clients and any Cluster clients made for BullMQ. */
  close(): Promise<void>;
}

const reconnectBackoff = (attempt: number) => Math.min(50 * 2 ** attempt, 1_000);

/** The API client's Cluster options (see the header for why each differs from ioredis's default). */
export function apiClusterOptions(password: string | undefined): ClusterOptions {
  return {
    enableOfflineQueue: false,
    retryDelayOnFailover: 0,
    retryDelayOnTryAgain: 100,
    retryDelayOnClusterDown: 100,
    maxRedirections: 6,
    slotsRefreshTimeout: COMMAND_TIMEOUT_MS,
    // Learns a promoted replica within 2 s even with no MOVED to trigger it.
    slotsRefreshInterval: 2_000,
    clusterRetryStrategy: reconnectBackoff,
    lazyConnect: true,
    redisOptions: {
      password,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: COMMAND_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    },
  };
}

function sentinelOptions(
  sentinels: HostPort[],
  name: string,
  password: string | undefined,
  sentinelPassword: string | undefined,
): RedisOptions {
  return {
    sentinels,
    name,
    password,
    sentinelPassword,
    // ioredis subscribes to +switch-master on the sentinels and reconnects to the promoted master at once.
    failoverDetector: true,
    sentinelRetryStrategy: reconnectBackoff,
  };
}

function withPassword(options: RedisOptions, password: string | undefined): RedisOptions {
  return password !== undefined && !options.password ? { ...options, password } : options;
}

/** Builds the clients for the configured topology and connects the API's; resolves once Redis answers. */
export async function openRedisTopology(
  config: RedisTopologyConfig,
  dataDir: string,
  logger: Logger,
): Promise<RedisTopology> {
  const clusters: Cluster[] = [];
  const extra: RedisClient[] = [];
  const closeClusters = async () => {
    await Promise.all(
      [...clusters, ...extra].map((c) =>
        c.quit().then(
          () => undefined,
          () => c.disconnect(),
        ),
      ),
    );
  };
  /** The extra clients that connected (an optimisation: one that does not is left out and logged). */
  const moreClientsOf = (make: () => RedisClient, where: string) => async (n: number) => {
    const made = Array.from({ length: n }, make);
    extra.push(...made);
    const connected = await Promise.all(
      made.map((c) =>
        connectOrExplain(c, where).then(
          () => c,
          (err: unknown) => {
            logger.warn(
              { err },
              'redis: an extra connection for confirmed writes did not connect; going on with fewer',
            );
            return undefined;
          },
        ),
      ),
    );
    return connected.filter((c): c is RedisClient => c !== undefined);
  };

  if (config.kind === 'cluster') {
    const seeds = config.nodes.map((n) => `${n.host}:${n.port}`).join(',');
    const make = () => {
      const c = new Cluster(config.nodes, apiClusterOptions(config.password));
      c.on('error', () => {}); // reported by readiness, metrics and 503s
      c.on('node error', () => {});
      connectNodesEagerly(c);
      return c;
    };
    const client = make();
    const where = `the Redis Cluster at ${seeds} (REDIS_CLUSTER_NODES)`;
    const bullCluster = (blocking: boolean) => {
      // BullMQ's own commands may be re-sent (a job id makes an add idempotent; locks and the
      // stalled check cover the rest), so these ride out a failover: up to ~6 s of MOVED,
      // CLUSTERDOWN and closed connections before a command fails.
      const c = new Cluster(config.nodes, {
        enableOfflineQueue: blocking,
        clusterRetryStrategy: reconnectBackoff,
        slotsRefreshInterval: 2_000,
        maxRedirections: 30,
        retryDelayOnFailover: 200,
        retryDelayOnClusterDown: 200,
        retryDelayOnTryAgain: 200,
        redisOptions: blocking
          ? { password: config.password, maxRetriesPerRequest: null }
          : { password: config.password, commandTimeout: COMMAND_TIMEOUT_MS, maxRetriesPerRequest: 0 },
      });
      c.on('error', () => {});
      clusters.push(c);
      return c;
    };
    await connectOrExplain(client, where);
    return {
      kind: 'cluster',
      description: `Redis Cluster (seeds ${seeds})`,
      client,
      moreClients: moreClientsOf(make, where),
      bullmq: { queue: () => bullCluster(false), worker: () => bullCluster(true) },
      async close() {
        await closeClusters();
        await client.quit().catch(() => client.disconnect());
      },
    };
  }

  if (config.kind === 'sentinel') {
    const where =
      `master "${config.name}" through sentinels ` + `${config.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`;
    const sentinelPassword =
      config.password !== undefined && (await sentinelsAskForPassword(config.sentinels)) ? config.password : undefined;
    const base = sentinelOptions(config.sentinels, config.name, config.password, sentinelPassword);
    const make = () => {
      const c = new Redis({ ...apiRedisOptions(), ...base });
      c.on('error', () => {});
      return c;
    };
    const client = make();
    await connectOrExplain(client, `the Redis ${where} (REDIS_SENTINELS)`);
    return {
      kind: 'sentinel',
      description: `Redis ${where}`,
      client,
      moreClients: moreClientsOf(make, `the Redis ${where} (REDIS_SENTINELS)`),
      bullmq: {
        queue: () => ({
          ...base,
          enableOfflineQueue: false,
          commandTimeout: COMMAND_TIMEOUT_MS,
          retryStrategy: reconnectBackoff,
        }),
        worker: () => ({
          ...base,
          maxRetriesPerRequest: null,
          enableOfflineQueue: true,
          retryStrategy: reconnectBackoff,
        }),
      },
      async close() {
        await closeClusters();
        await client.quit().catch(() => client.disconnect());
      },
    };
  }

  const { url, privateServer } = await resolveRedis(config.kind === 'single' ? config.url : undefined, dataDir, logger);
  const password = config.kind === 'single' ? config.password : undefined;
  const make = () => {
    const c = new Redis(url, withPassword(apiRedisOptions(), password));
    c.on('error', () => {});
    return c;
  };
  const client = make();
  const where =
    config.kind === 'single' ? `Redis at REDIS_URL (${redactUrl(url)})` : `the private redis-server at ${url}`;
  try {
    await connectOrExplain(client, where);
  } catch (err) {
    await privateServer?.stop();
    throw err;
  }
  return {
    kind: privateServer ? 'private' : 'single',
    description: privateServer
      ? `private redis-server at ${url} (data in DATA_DIR)`
      : `one Redis node at ${redactUrl(url)}`,
    client,
    bullmq: {
      queue: () => withPassword(queueConnectionOptions(url), password),
      worker: () => withPassword(workerConnectionOptions(url), password),
    },
    privateServer,
    moreClients: moreClientsOf(make, where),
    async close() {
      await closeClusters();
      await client.quit().catch(() => client.disconnect());
      await privateServer?.stop();
    },
  };
}

/**
 * Whether REDIS_PASSWORD goes to the sentinels too: only when they ask for one (NOAUTH), as the data nodes
 * always get it. ioredis sends sentinelPassword to every sentinel it connects to, and a sentinel with no
 * password answers the AUTH with an error that ioredis turns into a console warning (stderr, outside the
 * log) on each of those connections: dozens a second at start, more on every reconnect. Every sentinel is
 * asked at once, bounded by a command timeout; when none answers, the password is sent (the connection that
 * follows says why none answers).
 */
async function sentinelsAskForPassword(sentinels: HostPort[]): Promise<boolean> {
  const ask = async ({ host, port }: HostPort): Promise<'open' | 'protected' | 'no answer'> => {
    const probe = new Redis({
      host,
      port,
      lazyConnect: true,
      enableReadyCheck: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: COMMAND_TIMEOUT_MS,
      commandTimeout: COMMAND_TIMEOUT_MS,
    });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
      return 'open';
    } catch (err) {
      return /NOAUTH/.test((err as Error).message) ? 'protected' : 'no answer';
    } finally {
      probe.disconnect();
    }
  };
  const answers = await Promise.all(sentinels.map(ask));
  return answers.includes('protected') || !answers.includes('open');
}

/**
 * ioredis creates node connections lazily, and without an offline queue a
 * command that finds its node's connection still connecting fails ("Connection
 * is closed.") though nothing was sent: at start, and when a failover brings
 * a new master. So each node is connected as soon as the Cluster learns it.
 */
function connectNodesEagerly(cluster: Cluster): void {
  cluster.on('+node', (node: Redis) => {
    if (node.status === 'wait') node.connect().catch(() => {});
  });
}

/** How long the start waits for Redis (with Sentinel, ioredis would otherwise retry the sentinels forever). */
const CONNECT_DEADLINE_MS = 10_000;

const AUTH_REFUSED = /WRONGPASS|NOAUTH|invalid password/i;

async function connectOrExplain(client: RedisClient, where: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  // The reason a connection closes (a wrong password, a refused port) comes as an 'error' event, not as the rejection.
  // A Cluster's own rejection and 'error' only say that no node answered ("None of startup nodes is available",
  // "Failed to refresh slots cache."); the node's reason comes as a 'node error'.
  let lastError: Error | undefined;
  // A refused password is refused again on every retry (ioredis retries the sentinels forever): no use waiting.
  let refuse: (err: Error) => void = () => {};
  const refused = new Promise<never>((_, reject) => (refuse = reject));
  refused.catch(() => {});
  const remember = (err: Error) => {
    lastError = nodeReason(err) ?? lastError ?? err;
    if (AUTH_REFUSED.test(lastError.message)) refuse(new Error('the password was refused'));
  };
  client.on('error', remember);
  client.on('node error', remember);
  try {
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_DEADLINE_MS} ms`)), CONNECT_DEADLINE_MS);
    });
    // ioredis's Cluster.connect() never settles when its first ready check fails and a
    // reconnect then succeeds: so the status is watched too.
    await Promise.race([client.connect(), becomesReady(client, Date.now() + CONNECT_DEADLINE_MS), deadline, refused]);
    if (isCluster(client)) await waitNodesReady(client);
    await Promise.race([client.ping(), deadline, refused]);
    clearTimeout(timer);
  } catch (err) {
    clearTimeout(timer);
    client.disconnect();
    const why = lastError && lastError.message !== (err as Error).message ? ` (${lastError.message})` : '';
    const hint = AUTH_REFUSED.test(why) ? '; check REDIS_PASSWORD' : '';
    throw new Error(`${where} does not answer: ${(err as Error).message}${why}${hint}`);
  } finally {
    client.off('error', remember);
    client.off('node error', remember);
  }
}

/**
 * The reason a node gave; for a Cluster's summaries of its nodes' failures, the last node's reason they carry
 * (ioredis's ClusterAllFailedError, not exported: known by its lastNodeError) or undefined.
 */
function nodeReason(err: Error): Error | undefined {
  if ('lastNodeError' in err) return (err.lastNodeError as Error | null) ?? undefined;
  return err.message === 'None of startup nodes is available' ? undefined : err;
}

/** A Redis URL fit for a log line: the password is never printed. */
export function redactUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

async function becomesReady(client: RedisClient, until: number): Promise<void> {
  while (client.status !== 'ready' && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  if (client.status !== 'ready') await new Promise(() => {}); // the deadline answers
}

/** Waits (at most a command timeout) until every master's connection is ready, so the first requests find them open. */
async function waitNodesReady(cluster: Cluster): Promise<void> {
  const deadline = Date.now() + COMMAND_TIMEOUT_MS;
  while (Date.now() < deadline && !cluster.nodes('master').every((n) => n.status === 'ready')) {
    await new Promise((r) => setTimeout(r, 20));
  }
}
