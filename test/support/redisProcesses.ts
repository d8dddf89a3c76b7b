/**
 * Shared by the cluster and sentinel helpers: redis-server processes on free
 * loopback ports, killed when the test process exits whatever happened.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface NodeProcess {
  port: number;
  child: ChildProcess;
  exited: Promise<void>;
}

export function spawnRedis(args: string[]): NodeProcess {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  live.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(child);
      resolve();
    }),
  );
  const port = Number(args[args.indexOf('--port') + 1] ?? 0);
  return { port, child, exited };
}

export async function stopProcess(node: NodeProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill(signal);
  await node.exited;
}

async function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const taken = new Set<number>();

/**
 * A free port below 55,535 whose port + 10,000 (a cluster node's bus port)
 * is free too; never one handed out before in this process.
 */
export async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await bindable(port)) && (await bindable(port + 10_000))) {
      taken.add(port);
      taken.add(port + 10_000);
      return port;
    }
  }
  throw new Error('no free port pair found');
}

/**
 * One short-lived connection to one node (no retries: a dead node throws at once); `password` for a requirepass node.
 */
export async function withNode<T>(port: number, work: (r: Redis) => Promise<T>, password?: string): Promise<T> {
  const r = new Redis(port, '127.0.0.1', {
    password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1_000,
    commandTimeout: 2_000,
  });
  r.on('error', () => {});
  try {
    await r.connect();
    return await work(r);
  } finally {
    r.disconnect();
  }
}

export function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}
