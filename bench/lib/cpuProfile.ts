/**
 * Where an API process spends its time: reads a V8 .cpuprofile (written by
 * `node --cpu-prof`) and sums self time per package (node_modules/<name>),
 * per part of our code (dist/src/<folder>), per Node internal, and per
 * function. The file itself opens as a flame graph in Chrome DevTools or
 * speedscope.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  startTime: number;
  endTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Sampled ms, idle excluded. */
  busyMs: number;
  idlePercent: number;
  byArea: { area: string; percent: number }[];
  topFunctions: { fn: string; percent: number }[];
}

function areaOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native / V8)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const ours = /\/dist\/src\/([^/]+)/.exec(url);
  if (ours) return `our code: src/${ours[1]!.replace(/\.js$/, '')}`;
  if (url.startsWith('node:')) {
    const mod = url
      .slice(5)
      .replace(/^internal\//, '')
      .split('/')[0]!;
    return `node: ${mod}`;
  }
  return url;
}

/**
 * `window`: keep only the samples taken between `fromEndMs[0]` and
 * `fromEndMs[1]` ms before the profile's end (a process profiled from its
 * start: leaves out its start-up and shutdown).
 */
export function summarizeCpuProfile(file: string, window?: { fromEndMs: [number, number] }, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  const from = window ? profile.endTime - window.fromEndMs[0] * 1000 : Number.NEGATIVE_INFINITY;
  const to = window ? profile.endTime - window.fromEndMs[1] * 1000 : Number.POSITIVE_INFINITY;
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (t >= from && t <= to) selfMs.set(id, (selfMs.get(id) ?? 0) + delta / 1000);
  });
  let busy = 0;
  let idle = 0;
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, ms] of selfMs) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idle += ms;
      continue;
    }
    busy += ms;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + ms);
    const where = url ? `${areaOf(url, functionName)}:${lineNumber + 1}` : area;
    const fn = `${functionName || '(anonymous)'} (${where})`;
    fns.set(fn, (fns.get(fn) ?? 0) + ms);
  }
  const pct = (ms: number) => Math.round((ms / Math.max(busy, 1)) * 1000) / 10;
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top);
  return {
    file,
    busyMs: Math.round(busy),
    idlePercent: Math.round((idle / Math.max(busy + idle, 1)) * 1000) / 10,
    byArea: sorted(areas).map(([area, ms]) => ({ area, percent: pct(ms) })),
    topFunctions: sorted(fns).map(([fn, ms]) => ({ fn, percent: pct(ms) })),
  };
}
