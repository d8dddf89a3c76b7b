/**
 * HTTP load. Two generators, both in this process:
 *
 * - autocannon (closed loop: each connection sends its next request when the
 *   previous one is answered) for the scenarios and the peak-throughput runs.
 *   Every request is built by a `setupRequest` hook (unique Idempotency-Key,
 *   varying customers and amounts) and every answer goes to an `onResponse`
 *   hook, so the caller can count exactly what was granted. Latency per
 *   answer comes from autocannon's `response` event, bucketed per second.
 * - a paced open-loop generator (node:http with keep-alive) for latency at a
 *   fixed rate: requests leave on a schedule, and latency is measured from
 *   the scheduled time, so a stall is not hidden by the generator waiting
 *   (autocannon's own rate limit sends each second's quota in a burst at the
 *   start of the second, which would measure bursts, not a rate).
 */
import { Agent, request } from 'node:http';
import autocannon from 'autocannon';
import { perSecondSeries, round, summarize, type LatencySummary, type SeriesPoint } from './stats.js';

export interface LoadResult {
  /** Every latency (ms), for merging runs; not enumerable, so not in the JSON. */
  readonly raw?: number[];
  title: string;
  connections: number;
  seconds: number;
  responses: number;
  rps: number;
  latency: LatencySummary;
  statusCounts: Record<string, number>;
  errors: number;
  timeouts: number;
  series: SeriesPoint[];
}

export interface AutocannonRun {
  title: string;
  /** Several: connections are spread over them evenly. */
  baseUrl: string | string[];
  connections: number;
  /** Seconds (closed loop for this long) ... */
  duration?: number;
  /** ... or exactly this many requests. */
  amount?: number;
  requests: autocannon.Request[];
  timeoutSeconds?: number;
}

export function runAutocannon(run: AutocannonRun): Promise<LoadResult> {
  const series = perSecondSeries();
  const statusCounts: Record<string, number> = {};
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const instance = autocannon(
      {
        // autocannon takes an array of URLs too (its typings say string only).
        url: run.baseUrl as string,
        connections: run.connections,
        duration: run.duration ?? 3600,
        amount: run.amount,
        timeout: run.timeoutSeconds ?? 10,
        requests: run.requests,
      },
      (err, result) => {
        if (err) return reject(err instanceof Error ? err : new Error(String(err)));
        const seconds = (performance.now() - started) / 1000;
        const latencies = series.latencies();
        resolve(
          withRaw(latencies, {
            title: run.title,
            connections: run.connections,
            seconds: round(seconds, 3),
            responses: latencies.length,
            rps: Math.round(latencies.length / seconds),
            latency: summarize(latencies),
            statusCounts,
            errors: result.errors,
            timeouts: result.timeouts,
            series: series.series(seconds),
          }),
        );
      },
    );
    // The tracker's `response` event carries the client first (the typings leave it out).
    (instance as unknown as NodeJS.EventEmitter).on(
      'response',
      (_client: unknown, status: number, _bytes: number, ms: number) => {
        series.record(ms);
        statusCounts[status] = (statusCounts[status] ?? 0) + 1;
      },
    );
  });
}

export interface PacedRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface PacedRun {
  title: string;
  /** Several: requests alternate between them. */
  baseUrl: string | string[];
  /** Requests per second, spread evenly. */
  rate: number;
  seconds: number;
  /** Sockets at most (a request due while all are busy waits, and its wait counts). */
  maxSockets: number;
  makeRequest(i: number): PacedRequest;
  onResponse?(i: number, status: number, body: string): void;
}

export type PacedResult = LoadResult & { rate: number; lateStarts: number };

/** Paced load: `warmupSeconds` at the rate (opens the sockets; not recorded), then `seconds` measured. */
export async function runPaced(run: PacedRun & { warmupSeconds: number }): Promise<PacedResult> {
  const urls = (Array.isArray(run.baseUrl) ? run.baseUrl : [run.baseUrl]).map((u) => new URL(u));
  // maxSockets is per host:port: split it over the targets.
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(1, Math.floor(run.maxSockets / urls.length)) });
  const intervalMs = 1000 / run.rate;
  let next = 0;

  /** Sends rate * seconds requests on schedule; resolves when all are answered. */
  const phase = (seconds: number, record: (latencyMs: number, status: number) => void) =>
    new Promise<{ errors: number; lateStarts: number; seconds: number }>((resolve) => {
      const total = Math.round(run.rate * seconds);
      let issued = 0;
      let pending = 0;
      let errors = 0;
      let lateStarts = 0;
      const started = performance.now();
      if (total === 0) return resolve({ errors, lateStarts, seconds: 0 });
      const done = () => {
        pending--;
        if (issued >= total && pending === 0)
          resolve({ errors, lateStarts, seconds: (performance.now() - started) / 1000 });
      };
      const send = (i: number, scheduledAt: number) => {
        const r = run.makeRequest(i);
        const url = urls[i % urls.length]!;
        pending++;
        const req = request(
          { host: url.hostname, port: url.port, method: r.method, path: r.path, headers: r.headers, agent },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.once('end', () => {
              const status = res.statusCode ?? 0;
              record(performance.now() - scheduledAt, status);
              run.onResponse?.(i, status, Buffer.concat(chunks).toString('utf8'));
              done();
            });
          },
        );
        req.once('error', () => {
          errors++;
          done();
        });
        req.end(r.body);
      };
      const tick = () => {
        const now = performance.now();
        while (issued < total && started + issued * intervalMs <= now) {
          const scheduledAt = started + issued * intervalMs;
          if (now - scheduledAt > 5) lateStarts++;
          send(next++, scheduledAt);
          issued++;
        }
        if (issued < total) setTimeout(tick, 1);
      };
      tick();
    });

  await phase(run.warmupSeconds, () => {});
  const series = perSecondSeries();
  const statusCounts: Record<string, number> = {};
  const measured = await phase(run.seconds, (ms, status) => {
    series.record(ms);
    statusCounts[status] = (statusCounts[status] ?? 0) + 1;
  });
  agent.destroy();
  const latencies = series.latencies();
  return withRaw(latencies, {
    title: run.title,
    connections: run.maxSockets,
    seconds: round(measured.seconds, 3),
    responses: latencies.length,
    rps: Math.round(latencies.length / measured.seconds),
    rate: run.rate,
    lateStarts: measured.lateStarts,
    latency: summarize(latencies),
    statusCounts,
    errors: measured.errors,
    timeouts: 0,
    series: series.series(measured.seconds),
  });
}

function withRaw<T extends object>(raw: number[], result: T): T & { raw: number[] } {
  return Object.defineProperty(result, 'raw', { value: raw, enumerable: false }) as T & { raw: number[] };
}

/** Several runs of one thing (interleaved with runs of others) as one result. */
export function mergeRuns<T extends LoadResult>(title: string, runs: T[]): T {
  const first = runs[0]!;
  const raw = runs.flatMap((r) => r.raw ?? []);
  const seconds = runs.reduce((s, r) => s + r.seconds, 0);
  const statusCounts: Record<string, number> = {};
  for (const r of runs)
    for (const [k, v] of Object.entries(r.statusCounts)) statusCounts[k] = (statusCounts[k] ?? 0) + v;
  let t = 0;
  const series = runs.flatMap((r) => {
    const shifted = r.series.map((p) => ({ ...p, t: round(t + p.t, 2) }));
    t += r.seconds;
    return shifted;
  });
  const merged = {
    ...first,
    title,
    seconds: round(seconds, 3),
    responses: raw.length,
    rps: Math.round(raw.length / seconds),
    latency: summarize(raw),
    statusCounts,
    errors: runs.reduce((s, r) => s + r.errors, 0),
    timeouts: runs.reduce((s, r) => s + r.timeouts, 0),
    series,
  };
  if ('lateStarts' in first)
    Object.assign(merged, {
      lateStarts: runs.reduce((s, r) => s + ((r as unknown as PacedResult).lateStarts ?? 0), 0),
    });
  return withRaw(raw, merged) as T;
}
