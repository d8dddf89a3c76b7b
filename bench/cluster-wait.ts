/**
 * Stand-alone: what REDIS_WAIT_REPLICAS=1 costs on a Redis Cluster, engine
 * level (bench/cluster/engineWait.ts), on a local cluster of 3 masters and
 * 3 replicas (test/support/redisCluster.ts) started and stopped here.
 * `npm run bench` runs the same measurement in its cluster comparison.
 *
 *   npx tsc -p tsconfig.bench.json && node dist/bench/cluster-wait.js [seconds-per-round] [rounds] [in-flight]
 *
 * Writes bench/results/cluster-wait-<time>.json and prints the ratios; exits
 * 1 when a call failed or the audit found a product inconsistent.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLocalCluster } from '../test/support/redisCluster.js';
import { measureEngineWait } from './cluster/engineWait.js';
import { resultsDir } from './lib/paths.js';

async function main(): Promise<number> {
  const [secondsPerRound = 5, rounds = 3, inFlight = 32] = process.argv.slice(2).map(Number);
  console.log(`starting a local cluster (3 masters, 3 replicas, AOF appendfsync always)...`);
  const cluster = await startLocalCluster();
  try {
    const result = await measureEngineWait(cluster, { secondsPerRound, rounds, inFlight }, (s) => console.log(s));
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `cluster-wait-${result.at.replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2));
    const { wait0, wait1, throughputRatio, p99Ratio, p50Ratio, invariants } = result;
    console.log(JSON.stringify({ wait0, wait1, throughputRatio, p99Ratio, p50Ratio, invariants }));
    console.log(`written ${file}`);
    return result.ok ? 0 : 1;
  } finally {
    await cluster.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
