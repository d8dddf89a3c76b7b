/**
 * The built service as a process of its own, the way `npm start` runs it:
 * built once per test file into a folder of that run (not dist/, which
 * others may be building at the same time), started with a clean
 * environment, its output kept line by line, killed as a process group.
 * Every process started here is killed when the test process exits, whatever
 * happened. No vitest here: bench/ may use it too.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { isReady } from './http.js';
import { sleep, waitFor } from './wait.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ServiceBuild {
  dir: string;
  /** dist/src/main.js of this build. */
  entry: string;
  remove(): void;
}

/**
 * `tsc -p tsconfig.build.json` (what `npm run build` runs) into
 * node_modules/.cache/qa-<label>-<pid>. Type errors elsewhere in src/ (work in
 * progress) still emit JavaScript and only warn: `npm run typecheck` is their
 * gate; a build without an entry point fails.
 */
export async function buildService(label: string): Promise<ServiceBuild> {
  const dir = join(ROOT, 'node_modules', '.cache', `qa-${label}-${process.pid}`);
  const entry = join(dir, 'src', 'main.js');
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', dir], { cwd: ROOT }).catch(
    (err: { stdout?: string; stderr?: string }) => {
      console.warn(`[${label}] tsc reported problems:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    },
  );
  if (!existsSync(entry)) throw new Error(`the build did not produce ${entry}`);
  // Outside the repository root's package scope lookup (node_modules stops it): say it is ESM.
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  return { dir, entry, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** performance.now() when it exited. */
  at: number;
}

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  /** Every non-empty output line so far (stdout and stderr, as they came). */
  lines: string[];
  stdout(): string;
  stderr(): string;
  exited: Promise<Exit>;
}

const live = new Set<ServiceProcess>();
process.once('exit', () => {
  for (const svc of live) signalGroup(svc, 'SIGKILL');
});

export interface SpawnOptions {
  /** Default: the repository root. */
  cwd?: string;
  /** Run as this user (when the test process may switch users). */
  uid?: number;
  gid?: number;
}

/** Runs `node <entry>` with only PATH, HOME and `env`, in a process group of its own. */
export function spawnService(
  entry: string,
  env: Record<string, string>,
  name = 'service',
  options: SpawnOptions = {},
): ServiceProcess {
  const child = spawn(process.execPath, [entry], {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid ?? options.uid }),
  });
  const lines: string[] = [];
  const text = { stdout: '', stderr: '' };
  for (const stream of ['stdout', 'stderr'] as const) {
    let rest = '';
    child[stream]!.on('data', (d: Buffer) => {
      const chunk = d.toString();
      text[stream] += chunk;
      const parts = (rest + chunk).split('\n');
      rest = parts.pop() ?? '';
      lines.push(...parts.filter((l) => l.trim()));
    });
    child[stream]!.on('end', () => rest.trim() && lines.push(rest));
  }
  const svc: ServiceProcess = {
    name,
    child,
    lines,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    exited: new Promise((r) => child.once('exit', (code, signal) => r({ code, signal, at: performance.now() }))),
  };
  live.add(svc);
  void svc.exited.then(() => live.delete(svc));
  return svc;
}

/** Kills every service process still running (for afterAll). */
export async function killAllServices(): Promise<void> {
  await Promise.all([...live].map((svc) => killService(svc)));
}

const running = (svc: ServiceProcess) => svc.child.exitCode === null && svc.child.signalCode === null;

function signalGroup(svc: ServiceProcess, signal: NodeJS.Signals): void {
  if (svc.child.pid === undefined || !running(svc)) return;
  try {
    process.kill(-svc.child.pid, signal);
  } catch {
    try {
      svc.child.kill(signal);
    } catch {
      // gone already
    }
  }
}

/** Kills the process group (SIGKILL unless told) and waits up to 5 s for the exit. */
export async function killService(svc: ServiceProcess | undefined, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (!svc) return;
  signalGroup(svc, signal);
  await Promise.race([svc.exited, sleep(5_000)]);
}

/** The exit, or an error with the output when it does not come within `timeoutMs`. */
export async function waitExit(svc: ServiceProcess, timeoutMs: number): Promise<Exit> {
  const result = await Promise.race([svc.exited, sleep(timeoutMs).then(() => undefined)]);
  if (!result)
    throw new Error(
      `${svc.name} did not exit within ${timeoutMs} ms\nstdout:\n${svc.stdout()}\nstderr:\n${svc.stderr()}`,
    );
  return result;
}

/** The JSON log lines of some output (other lines left out). */
export function logLines(text: string): Array<Record<string, any>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, any>;
      } catch {
        return {};
      }
    });
}

/** Warn/error/fatal log lines and anything that is not JSON: what explains a failure. */
export function notable(svc: ServiceProcess, max = 40): string {
  const picked = svc.lines.filter((l) => {
    if (!l.startsWith('{')) return true;
    try {
      return (JSON.parse(l) as { level?: number }).level! >= 40;
    } catch {
      return true;
    }
  });
  const shown = picked.slice(-max).map((l) => (l.length > 600 ? `${l.slice(0, 600)}…` : l));
  return (
    `--- ${svc.name}: ${picked.length} warn/error lines of ` +
    `${svc.lines.length}, last ${shown.length}:\n${shown.join('\n')}`
  );
}

/** Waits until the process answers /readyz 200 at `baseUrl`; fails at once if it exits. */
export async function waitServiceReady(baseUrl: string, svc: ServiceProcess, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    `${svc.name} /readyz 200`,
    async () => {
      if (!running(svc)) throw new Error(`${svc.name} exited early`);
      return isReady(baseUrl);
    },
    { timeoutMs, explain: () => notable(svc) },
  );
}
