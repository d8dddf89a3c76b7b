/**
 * Writes bench/results/<timestamp>.json (every figure and the machine),
 * <timestamp>.md (the summary), <timestamp>.svg (the chart), and
 * latest.md / latest.svg (copies, for the README).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resultsDir } from '../lib/paths.js';
import { renderMarkdown } from './markdown.js';
import type { BenchResults } from './results.js';
import { renderChart, type ChartRow } from './svg.js';

/** The run's file-name stamp: its start time, without ':' and '.'. */
export const stampOf = (startedAt: string) => startedAt.replace(/[:.]/g, '-');

export function writeReport(results: BenchResults): { json: string; markdown: string; svg: string; latest: string } {
  mkdirSync(resultsDir, { recursive: true });
  const stamp = stampOf(results.startedAt);
  const base = join(resultsDir, stamp);
  const rows: ChartRow[] = results.scenarios.map((s) => ({
    title: s.title,
    throughput: s.load.series.map((p) => ({ t: p.t, v: p.rps })),
    p99: s.load.series.map((p) => ({ t: p.t, v: p.p99 })),
    remaining: s.poolPoints.map((p) => ({ t: p.t, v: p.remaining })),
    capacity: s.capacity,
  }));
  const svg = renderChart(`quota-allocator launch-spike benchmark, ${results.startedAt} (${results.mode})`, rows);
  writeFileSync(`${base}.json`, JSON.stringify(results, null, 2) + '\n');
  writeFileSync(`${base}.svg`, svg);
  writeFileSync(`${base}.md`, renderMarkdown(results, `${stamp}.svg`));
  writeFileSync(join(resultsDir, 'latest.svg'), svg);
  writeFileSync(join(resultsDir, 'latest.md'), renderMarkdown(results, 'latest.svg'));
  return { json: `${base}.json`, markdown: `${base}.md`, svg: `${base}.svg`, latest: join(resultsDir, 'latest.md') };
}
