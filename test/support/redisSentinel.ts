/**
 * A Sentinel-watched Redis: one master, one replica, three sentinels
 * (redis-server --sentinel; Debian ships no redis-sentinel binary by
 * default), all on free loopback ports, AOF on. Ready when the replica's
 * link is up and every sentinel knows the replica and the two other
 * sentinels. Stopped by stop(); killed at process exit whatever happened.
 * With `password`, the data nodes require it (requirepass, and masterauth
 * for the replica, and for the master should it come back as one) and the
 * sentinels use it towards them (sentinel auth-pass); the sentinels
 * themselves stay open, unless `sentinelPassword` (their requirepass).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePortPair, infoField, spawnRedis, stopProcess, withNode, type NodeProcess } from './redisProcesses.js';
import { waitFor } from './wait.js';

export const SENTINEL_MASTER_NAME = 'qa-master';

export interface LocalSentinel {
  /** host:port of the sentinels, for REDIS_SENTINELS. */
  sentinels: string;
  name: string;
  masterPort: number;
  replicaPort: number;
  /** The master's port as the sentinels say now. */
  currentMaster(): Promise<number>;
  kill(port: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startLocalSentinel(
  options: { password?: string; sentinelPassword?: string } = {},
): Promise<LocalSentinel> {
  const { password, sentinelPassword } = options;
  const root = mkdtempSync(join(tmpdir(), 'qa-sentinel-'));
  const auth = password === undefined ? [] : ['--requirepass', password, '--masterauth', password];
  const processes: NodeProcess[] = [];
  const dataNode = (port: number, extra: string[] = []) => {
    const dir = join(root, String(port));
    mkdirSync(dir);
    const p = spawnRedis([
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--maxmemory-policy',
      'noeviction',
      ...auth,
      ...extra,
    ]);
    processes.push(p);
    return p;
  };
  const stopAll = async () => {
    await Promise.all(processes.map((p) => stopProcess(p, 'SIGKILL')));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const masterPort = await freePortPair();
    const replicaPort = await freePortPair();
    dataNode(masterPort);
    await waitFor('the master', () => withNode(masterPort, async (r) => (await r.ping()) === 'PONG', password), {
      timeoutMs: 10_000,
    });
    dataNode(replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]);
    await waitFor(
      'the replica link',
      () =>
        withNode(
          replicaPort,
          async (r) => infoField(await r.info('replication'), 'master_link_status') === 'up',
          password,
        ),
      { timeoutMs: 20_000 },
    );
    const sentinelPorts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePortPair();
      const dir = join(root, `sentinel-${port}`);
      mkdirSync(dir);
      const conf = join(dir, 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${SENTINEL_MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} 1000`,
          `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 5000`,
          `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
          ...(password === undefined ? [] : [`sentinel auth-pass ${SENTINEL_MASTER_NAME} ${password}`]),
          // A sentinel with requirepass uses it towards the other sentinels too.
          ...(sentinelPassword === undefined ? [] : [`requirepass ${sentinelPassword}`]),
          '',
        ].join('\n'),
      );
      processes.push(spawnRedis([conf, '--sentinel', '--port', String(port)]));
      sentinelPorts.push(port);
    }
    for (const port of sentinelPorts) {
      await waitFor(
        `sentinel ${port} to know the others and the replica`,
        () =>
          withNode(
            port,
            async (r) => {
              const master = (await r.call('SENTINEL', 'MASTER', SENTINEL_MASTER_NAME)) as string[];
              const field = (name: string) => master[master.indexOf(name) + 1];
              return Number(field('num-other-sentinels')) === 2 && Number(field('num-slaves')) === 1;
            },
            sentinelPassword,
          ),
        { timeoutMs: 30_000, everyMs: 200 },
      );
    }
    const currentMaster = () =>
      withNode(
        sentinelPorts[0]!,
        async (r) =>
          Number(((await r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER_NAME)) as string[])[1]),
        sentinelPassword,
      );
    return {
      sentinels: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
      name: SENTINEL_MASTER_NAME,
      masterPort,
      replicaPort,
      currentMaster,
      async kill(port) {
        const p = processes.find((x) => x.port === port);
        if (p) await stopProcess(p, 'SIGKILL');
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
