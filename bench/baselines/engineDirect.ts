/**
 * Our engine module called directly from Node (no HTTP): `engine.reserve`
 * with a fixed number of calls in flight on one ioredis connection, against
 * the same product and line as redis-benchmark's run of our script.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { QuotaEngine } from '../../src/engine/quotaEngine.js';
import { profiledRun, type ScriptProfile } from './redisBenchmark.js';
import { summarizeCpuProfile, type ProfileSummary } from '../lib/cpuProfile.js';
import { withCpuProfile } from '../lib/inProcessProfile.js';
import { cpuMeter } from '../lib/processes.js';
import { summarize, type LatencySummary } from '../lib/stats.js';

export interface InFlightRun {
  label: string;
  inFlight: number;
  seconds: number;
  calls: number;
  rps: number;
  latency: LatencySummary;
  failures: number;
  /** Share of a core: `harness` is this process (the caller), `redis` the server. */
  cpu?: Record<string, number[]>;
  /** Where the EVALSHAs' time went inside Redis (as for redis-benchmark's runs). */
  script?: ScriptProfile;
  profile?: ProfileSummary;
}

/** Runs `call` with `inFlight` loops for `seconds`; a call that throws counts as a failure. */
export async function runInFlight(
  label: string,
  inFlight: number,
  seconds: number,
  call: (i: number) => Promise<unknown>,
): Promise<InFlightRun> {
  const latencies: number[] = [];
  let next = 0;
  let failures = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  const loop = async () => {
    while (performance.now() < end) {
      const i = next++;
      const t0 = performance.now();
      try {
        await call(i);
        latencies.push(performance.now() - t0);
      } catch {
        failures++;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  const elapsed = (performance.now() - started) / 1000;
  return {
    label,
    inFlight,
    seconds: Math.round(elapsed * 1000) / 1000,
    calls: latencies.length,
    rps: Math.round(latencies.length / elapsed),
    latency: summarize(latencies),
    failures,
  };
}

export async function runEngineDirect(
  redis: Redis,
  engine: QuotaEngine,
  inFlight: number,
  seconds: number,
  warmupSeconds: number,
  redisPid: number,
  profileFile?: string,
): Promise<InFlightRun> {
  const reserve = (tag: string) => (i: number) =>
    engine
      .reserve({
        productId: 'b',
        customerId: 'c',
        reservationId: randomUUID(),
        amount: 1,
        idempotencyKey: `${tag}${inFlight}-${i}`,
        fingerprint: 'fp',
      })
      .then((o) => {
        if (!o.ok) throw new Error(o.code);
      });
  await runInFlight('warm-up', inFlight, warmupSeconds, reserve('w'));
  const cpu = cpuMeter({ redis: [redisPid] });
  const { profile: script, ...run } = await profiledRun(redis, () =>
    runInFlight(`engine.reserve, ${inFlight} in flight`, inFlight, seconds, reserve('e')),
  );
  const measured: InFlightRun = { ...run, cpu: cpu.stop(), script };
  if (!profileFile) return measured;
  // A separate, profiled run: the profiler's own cost stays out of the figures above.
  await withCpuProfile(profileFile, () => runInFlight('profiled', inFlight, seconds, reserve('p')));
  return { ...measured, profile: summarizeCpuProfile(profileFile) };
}
