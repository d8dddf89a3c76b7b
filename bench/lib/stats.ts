/** Small numeric helpers: the seeded PRNG, percentiles, per-second series. */

/** The repository's seeded PRNG: load plans replay from their seed. */
export { seededRandom as prng } from '../../src/seededRandom.js';

export const randomInt = (random: () => number, min: number, max: number) =>
  min + Math.floor(random() * (max - min + 1));

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Latencies in ms; sorts a copy. */
export function summarize(latencies: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(latencies).sort();
  const n = sorted.length;
  if (n === 0) return { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, max: 0 };
  let sum = 0;
  for (const v of sorted) sum += v;
  const at = (q: number) => sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]!;
  return {
    count: n,
    mean: round(sum / n, 3),
    p50: round(at(0.5), 3),
    p90: round(at(0.9), 3),
    p99: round(at(0.99), 3),
    max: round(sorted[n - 1]!, 3),
  };
}

export interface SeriesPoint {
  /** Seconds since the run's start (the middle of the bucket). */
  t: number;
  rps: number;
  p99: number;
}

/** Collects (time, latency) pairs into one-second buckets: requests/s and p99 per second. */
export function perSecondSeries() {
  const buckets: number[][] = [];
  const all: number[] = [];
  let start = performance.now();
  return {
    restart() {
      start = performance.now();
      buckets.length = 0;
      all.length = 0;
    },
    record(latencyMs: number) {
      const i = Math.floor((performance.now() - start) / 1000);
      (buckets[i] ??= []).push(latencyMs);
      all.push(latencyMs);
    },
    latencies: () => all,
    series(durationSeconds?: number): SeriesPoint[] {
      const n = durationSeconds === undefined ? buckets.length : Math.min(buckets.length, Math.ceil(durationSeconds));
      const out: SeriesPoint[] = [];
      for (let i = 0; i < n; i++) {
        const b = buckets[i] ?? [];
        // A last, partial second would show a false drop: scale it by its length.
        const span =
          durationSeconds !== undefined && i === n - 1 ? Math.max(0.001, Math.min(1, durationSeconds - i)) : 1;
        out.push({ t: round(i + span / 2, 2), rps: Math.round(b.length / span), p99: summarize(b).p99 });
      }
      return out;
    },
  };
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export const ratio = (a: number, b: number) => (b > 0 ? round(a / b, 3) : Number.NaN);
