/**
 * CPU pinning with taskset (util-linux), so the process under test has one
 * core to itself while Redis and the load generator share the other. Every
 * thread of a process is pinned (-a); threads it starts later inherit it.
 * Without taskset (or with fewer than 2 CPUs) nothing is pinned and the
 * report says so.
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';

export const canPin: boolean = (() => {
  if (os.cpus().length < 2) return false;
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Pins every thread of `pid` to `cpus` ('0', '1', '0-1'); a no-op without taskset. */
export function pin(pid: number, cpus: string): void {
  if (!canPin) return;
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/** The command line to run a program pinned to `cpus` (unchanged without taskset). */
export function pinned(cpus: string, command: string, args: string[]): [string, string[]] {
  return canPin ? ['taskset', ['-c', cpus, command, ...args]] : [command, args];
}

export const allCpus = () => `0-${os.cpus().length - 1}`;
