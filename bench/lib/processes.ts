/**
 * The processes the harness runs: API processes as node:cluster workers
 * (the harness is the cluster primary, so N workers share one port), and
 * plain child processes (the background-jobs process, the test ledger).
 * Their output goes to log files in the run's work folder. Also: CPU time of
 * any process from /proc, to tell which one is saturated.
 */
import cluster, { type Worker } from 'node:cluster';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { onCleanup, trackChild, untrackChild } from './cleanup.js';

export interface ClusterHandle {
  /** One per worker (all the same unless `separatePorts`). */
  ports: number[];
  pids: number[];
  stop(): Promise<void>;
}

export interface ClusterOptions {
  name: string;
  exec: string;
  workers: number;
  /** All workers share this port (node:cluster hands each connection to a worker) ... */
  port: number;
  /** ... unless each worker gets its own (a load balancer's even split, done by the client). */
  separatePorts?: number[];
  env: Record<string, string>;
  execArgv?: string[];
  logFile: string;
}

/** Forks `workers` copies of `exec` and resolves once each listens on `port`. */
export async function startCluster(o: ClusterOptions): Promise<ClusterHandle> {
  const log = openSync(o.logFile, 'a');
  cluster.setupPrimary({ exec: o.exec, args: [], execArgv: o.execArgv ?? [], stdio: ['ignore', log, log, 'ipc'] });
  const workers: Worker[] = [];
  const stop = async () => {
    await Promise.all(workers.map((w) => stopWorker(w)));
    closeSync(log);
  };
  const cancel = onCleanup(`cluster ${o.name}`, stop);
  try {
    for (let i = 0; i < o.workers; i++) {
      const worker = cluster.fork({ ...o.env, PORT: String(o.separatePorts?.[i] ?? o.port) });
      workers.push(worker);
      trackChild(worker.process.pid);
    }
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`${o.name}: a worker did not listen within 30 s (see ${o.logFile})`)),
              30_000,
            );
            w.once('listening', () => {
              clearTimeout(timer);
              resolve();
            });
            w.once('exit', (code) => {
              clearTimeout(timer);
              reject(new Error(`${o.name}: a worker exited with ${code} before listening (see ${o.logFile})`));
            });
          }),
      ),
    );
  } catch (err) {
    cancel();
    await stop();
    throw err;
  }
  return {
    ports: workers.map((_, i) => o.separatePorts?.[i] ?? o.port),
    pids: workers.map((w) => w.process.pid!),
    async stop() {
      cancel();
      await stop();
    },
  };
}

async function stopWorker(w: Worker): Promise<void> {
  const pid = w.process.pid;
  if (w.process.exitCode === null && w.process.signalCode === null) {
    const exited = once(w.process, 'exit');
    w.process.kill('SIGTERM');
    const timer = setTimeout(() => w.process.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
  untrackChild(pid);
}

export interface ChildHandle {
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Runs `node <script>` with `env`, output to `logFile`. */
export function startNodeChild(
  name: string,
  script: string,
  env: Record<string, string>,
  logFile: string,
): ChildHandle {
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', log, log] });
  trackChild(child.pid);
  const exited = once(child, 'exit');
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    untrackChild(child.pid);
    closeSync(log);
  };
  const cancel = onCleanup(name, stop);
  return {
    process: child,
    async stop() {
      cancel();
      await stop();
    },
  };
}

const CLOCK_TICKS_PER_SECOND = 100;

/** User + system CPU seconds a process has used so far (Linux /proc); undefined elsewhere. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** CPU use of some processes over a stretch of time, as a share of one core (1 = 100%). */
export function cpuMeter(pids: Record<string, number[]>) {
  const started = performance.now();
  const harnessStart = process.cpuUsage();
  const before = Object.fromEntries(Object.entries(pids).map(([k, list]) => [k, list.map((p) => cpuSeconds(p) ?? 0)]));
  return {
    /** Per group: core share of each process; plus `harness` (this process: the load generator). */
    stop(): Record<string, number[]> {
      const seconds = (performance.now() - started) / 1000;
      const out: Record<string, number[]> = {};
      for (const [k, list] of Object.entries(pids)) {
        out[k] = list.map((p, i) => round(((cpuSeconds(p) ?? 0) - before[k]![i]!) / seconds, 2));
      }
      const h = process.cpuUsage(harnessStart);
      out.harness = [round((h.user + h.system) / 1e6 / seconds, 2)];
      return out;
    },
  };
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
