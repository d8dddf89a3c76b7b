/** What the numbers were measured on. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface MachineDescription {
  hostname: string;
  platform: string;
  kernel: string;
  cpuModel: string;
  cpus: number;
  memoryGiB: number;
  loadAverageAtStart: number[];
  node: string;
  redisServer: string;
  redisBenchmark: string;
}

function versionOf(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split('\n')[0]!;
  } catch {
    return 'not found';
  }
}

/** Jiffies of all CPUs from /proc/stat (Linux), to tell how busy the machine was. */
export function cpuTimes(): { total: number; idle: number; iowait: number; steal: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map(Number) as number[];
    return {
      total: user! + nice! + system! + idle! + iowait! + irq! + softirq! + steal!,
      idle: idle!,
      iowait: iowait!,
      steal: steal!,
    };
  } catch {
    return undefined;
  }
}

export interface MachineLoad {
  /** Shares of all CPUs' time during the run, in %. */
  busyPercent: number;
  iowaitPercent: number;
  /** Time the hypervisor gave to other machines: noise from outside. */
  stealPercent: number;
  loadAverageAtEnd: number[];
}

export function machineLoadSince(start: ReturnType<typeof cpuTimes>): MachineLoad | undefined {
  const end = cpuTimes();
  if (!start || !end) return undefined;
  const total = Math.max(1, end.total - start.total);
  const pct = (x: number) => Math.round((x / total) * 1000) / 10;
  return {
    busyPercent: pct(total - (end.idle - start.idle) - (end.iowait - start.iowait)),
    iowaitPercent: pct(end.iowait - start.iowait),
    stealPercent: pct(end.steal - start.steal),
    loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export function describeMachine(): MachineDescription {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    node: process.version,
    redisServer: versionOf('redis-server', ['--version']),
    redisBenchmark: versionOf('redis-benchmark', ['--version']),
  };
}
