/**
 * A local Redis Cluster of 3 masters and 3 replicas from the machine's
 * redis-server (Debian's 7.0): AOF on with appendfsync always, a 2-second
 * node timeout, data under a temporary folder. Started on free ports (the
 * bus port, port + 10,000, free too), joined with redis-cli --cluster
 * create, and ready only when the cluster state is ok on every node and
 * every replica's link to its master is up. Stopped (and its folder removed)
 * by stop(); killed at process exit whatever happened. With `password`,
 * every node requires it (requirepass) and uses it towards its master
 * (masterauth: a replica cannot sync without it, nor can a failed master
 * that rejoins as a replica).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import calculateSlot from 'cluster-key-slot';
import { freePortPair, infoField, spawnRedis, stopProcess, withNode, type NodeProcess } from './redisProcesses.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

export interface ClusterNode {
  port: number;
  dir: string;
  process: NodeProcess | undefined;
}

export interface LocalCluster {
  nodes: ClusterNode[];
  /** host:port of every node, for REDIS_CLUSTER_NODES. */
  seeds: string;
  /** The nodes' requirepass, when started with one. */
  password: string | undefined;
  /** Port of the master that serves the slot of `key` now (asked of a live node). */
  masterOf(key: string): Promise<number>;
  masterPorts(): Promise<number[]>;
  /** SIGKILL a node, as a crash would. */
  kill(port: number): Promise<void>;
  /**
   * Starts a killed node again on its data folder (its nodes.conf): it rejoins, as a replica once another was promoted.
   */
  restart(port: number): Promise<void>;
  /** Cluster state ok on every live node; every live replica linked to its master; `replicasPerMaster` each. */
  waitHealthy(replicasPerMaster?: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startLocalCluster(
  options: { nodeTimeoutMs?: number; password?: string } = {},
): Promise<LocalCluster> {
  const root = mkdtempSync(join(tmpdir(), 'qa-cluster-'));
  const nodeTimeout = options.nodeTimeoutMs ?? 2_000;
  const { password } = options;
  const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password];
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < 6; i++) {
    const port = await freePortPair();
    const dir = join(root, String(port));
    mkdirSync(dir);
    nodes.push({ port, dir, process: undefined });
  }
  const launch = (node: ClusterNode) => {
    node.process = spawnRedis([
      '--port',
      String(node.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      node.dir,
      '--daemonize',
      'no',
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-node-timeout',
      String(nodeTimeout),
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
      ...auth,
    ]);
  };
  const byPort = (port: number) => {
    const node = nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no cluster node on port ${port}`);
    return node;
  };
  const live = () =>
    nodes.filter((n) => n.process && n.process.child.exitCode === null && n.process.child.signalCode === null);

  const cluster: LocalCluster = {
    nodes,
    seeds: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    password,
    async masterOf(key) {
      const slot = calculateSlot(key);
      const slots = await askAnyLive(
        live(),
        (r) => r.cluster('SLOTS') as unknown as Promise<[number, number, [string, number]][]>,
        password,
      );
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`slot ${slot} is served by nobody`);
      return Number(range[2][1]);
    },
    async masterPorts() {
      const slots = await askAnyLive(
        live(),
        (r) => r.cluster('SLOTS') as unknown as Promise<[number, number, [string, number]][]>,
        password,
      );
      return [...new Set(slots.map((s) => Number(s[2][1])))].sort();
    },
    async kill(port) {
      const node = byPort(port);
      if (node.process) await stopProcess(node.process, 'SIGKILL');
    },
    async restart(port) {
      const node = byPort(port);
      launch(node);
      await waitFor(
        `node ${port} to answer`,
        () => withNode(port, async (r) => (await r.ping()) === 'PONG', password),
        { timeoutMs: 10_000 },
      );
    },
    async waitHealthy(replicasPerMaster = 1, timeoutMs = 60_000) {
      await waitFor(
        'the cluster to be healthy',
        async () => {
          for (const node of live()) {
            const ok = await withNode(
              node.port,
              async (r) => {
                if (infoField(String(await r.cluster('INFO')), 'cluster_state') !== 'ok') return false;
                const info = await r.info('replication');
                const role = infoField(info, 'role');
                if (role === 'slave') return infoField(info, 'master_link_status') === 'up';
                return Number(infoField(info, 'connected_slaves')) >= replicasPerMaster;
              },
              password,
            );
            if (!ok) return false;
          }
          return (await cluster.masterPorts()).length === 3;
        },
        { timeoutMs, everyMs: 200 },
      );
    },
    async stop() {
      await Promise.all(nodes.map((n) => (n.process ? stopProcess(n.process, 'SIGKILL') : undefined)));
      rmSync(root, { recursive: true, force: true });
    },
  };

  try {
    for (const node of nodes) launch(node);
    for (const node of nodes)
      await waitFor(
        `node ${node.port} to answer`,
        () => withNode(node.port, async (r) => (await r.ping()) === 'PONG', password),
        { timeoutMs: 10_000 },
      );
    await run(
      'redis-cli',
      [
        ...(password === undefined ? [] : ['-a', password, '--no-auth-warning']),
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ],
      { timeout: 60_000 },
    );
    await cluster.waitHealthy(1, 60_000);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

async function askAnyLive<T>(
  live: ClusterNode[],
  work: Parameters<typeof withNode<T>>[1],
  password: string | undefined,
): Promise<T> {
  let lastError: unknown;
  for (const node of live) {
    try {
      return await withNode(node.port, work, password);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError ?? new Error('no live cluster node');
}

/**
 * Product ids whose hash tag lands on each of the given masters (`count` per master), found by trying names in order.
 */
export async function productsPerMaster(
  cluster: LocalCluster,
  keyOf: (productId: string) => string,
  count: number,
  prefix = 'p',
): Promise<Map<number, string[]>> {
  const slots = await askAnyLive(
    cluster.nodes,
    (r) => r.cluster('SLOTS') as unknown as Promise<[number, number, [string, number]][]>,
    cluster.password,
  );
  const ownerOf = (key: string) => {
    const slot = calculateSlot(key);
    return Number(slots.find(([from, to]) => slot >= from && slot <= to)![2][1]);
  };
  const found = new Map<number, string[]>();
  for (const [, , [, port]] of slots) found.set(Number(port), []);
  for (let i = 0; [...found.values()].some((list) => list.length < count); i++) {
    const id = `${prefix}${i}`;
    const list = found.get(ownerOf(keyOf(id)))!;
    if (list.length < count) list.push(id);
  }
  return found;
}
