/**
 * Latency measured inside the service: the API's own
 * quota_http_request_duration_seconds histogram (src/metrics.ts), scraped
 * from /metrics before and after a run. The difference is that run's
 * requests alone, and its quantiles (interpolated within a bucket, as
 * PromQL's histogram_quantile does) leave out the load generator's own CPU
 * contention.
 */
import { HTTP_DURATION_BUCKETS } from '../../src/metrics.js';

const METRIC = 'quota_http_request_duration_seconds_bucket';

export type Buckets = Map<number, number>;

export interface HistogramSelector {
  route: string;
  method: string;
  statusClass: string;
}

/** Cumulative bucket counts (by `le`, seconds) of one route/method/status class. */
export async function scrapeBuckets(baseUrl: string, s: HistogramSelector): Promise<Buckets> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const out: Buckets = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith(METRIC + '{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    if (labels.route !== s.route || labels.method !== s.method || labels.status_class !== s.statusClass) continue;
    const le = labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(labels.le);
    out.set(le, Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

export interface InServiceLatency {
  count: number;
  p50Ms: number;
  p99Ms: number;
  /** The bucket bounds the p99 fell between (ms): the resolution of the figure. */
  p99BucketMs: [number, number];
}

/** Latencies (ms) as the service's histogram would have counted them: cumulative counts per bound (s). */
export function bucketsOf(latenciesMs: number[]): Buckets {
  const out: Buckets = new Map();
  for (const le of [...HTTP_DURATION_BUCKETS, Number.POSITIVE_INFINITY])
    out.set(le, latenciesMs.filter((ms) => ms / 1000 <= le).length);
  return out;
}

/** Quantiles of what happened between two scrapes. */
export function latencyBetween(before: Buckets, after: Buckets): InServiceLatency {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const total = counts.at(-1) ?? 0;
  const quantile = (q: number): { ms: number; bucket: [number, number] } => {
    const rank = q * total;
    for (let i = 0; i < bounds.length; i++) {
      if (counts[i]! >= rank) {
        const lower = i === 0 ? 0 : bounds[i - 1]!;
        const upper = bounds[i]!;
        // Past the last finite bound nothing can be interpolated: report that bound.
        if (!Number.isFinite(upper)) return { ms: lower * 1000, bucket: [lower * 1000, Number.POSITIVE_INFINITY] };
        const below = i === 0 ? 0 : counts[i - 1]!;
        const inBucket = counts[i]! - below;
        const at = inBucket > 0 ? lower + ((upper - lower) * (rank - below)) / inBucket : upper;
        return { ms: Math.round(at * 1e5) / 100, bucket: [lower * 1000, upper * 1000] };
      }
    }
    return { ms: Number.NaN, bucket: [Number.NaN, Number.NaN] };
  };
  const p99 = quantile(0.99);
  return { count: total, p50Ms: quantile(0.5).ms, p99Ms: p99.ms, p99BucketMs: p99.bucket };
}
