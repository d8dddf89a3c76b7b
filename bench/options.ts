/**
 * The run's sizes: the full launch (`npm run bench`, about 6 to 9 minutes on
 * 2 cores) or the smoke run (`npm run bench -- --smoke` or BENCH_SMOKE=1,
 * under a minute) that exercises every part on small numbers.
 */

export interface BenchOptions {
  smoke: boolean;
  /** `--hot-path`: only issue 11's comparison (bench/hotPath/hotPath.ts), no scenarios, baselines or cluster. */
  hotPathOnly: boolean;
  /** Sizes of issue 11's comparison. */
  hotPath: {
    seconds: number;
    rounds: number;
    warmupSeconds: number;
    warmupRequests: number;
    connections: number;
    redisRequests: number;
    compareDist?: string;
    apiNodeFlags?: string[];
  };
  /** Write a CPU profile of one API process under peak load and summarise it. */
  profile: boolean;
  /** Customer lines of the launch product, loaded through the bulk import. */
  customers: number;
  /** Seconds of load before each measured HTTP run (not counted). */
  warmupSeconds: number;
  /** Seconds of each measured closed-loop HTTP run (peaks, cluster sizes). */
  peakSeconds: number;
  /** Connections of the closed-loop throughput runs (ours, bare route, cluster sizes). */
  peakConnections: number;
  spikeConnections: number;
  steadySeconds: number;
  steadyConnections: number;
  /** How long settlement may take to catch up after the steady run. */
  drainTimeoutSeconds: number;
  churnSeconds: number;
  churnConnections: number;
  manyProducts: number;
  linesPerProduct: number;
  manySeconds: number;
  manyConnections: number;
  /** redis-benchmark -n for -P 16 (-P 1 runs use a quarter). */
  redisBenchmarkRequests: number;
  engineSeconds: number;
  postgresSeconds: number;
  /** In-flight counts of the naive GET-then-DECRBY baseline (the spike's, and the 4,000). */
  naiveInFlight: number[];
  /** Lines of the steady, churn and throughput products. */
  scenarioLines: number;
  logLevel: string;
  seed: number;
  /** Run the cluster comparison (bench/cluster/clusterComparison.ts); `--no-cluster` skips it. */
  cluster: boolean;
  /** Customers of the launch plan the cluster comparison runs on each topology (three times). */
  clusterCustomers: number;
  /** The engine-level WAIT 0 vs 1 rounds on the cluster (bench/cluster/engineWait.ts). */
  clusterEngineWait: { secondsPerRound: number; rounds: number; inFlight: number };
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions {
  const smoke = argv.includes('--smoke') || env.BENCH_SMOKE === '1';
  // --hot-path profiles only when asked: a profiled API process is slower than the one it is compared with.
  const profile = argv.includes('--no-profile')
    ? false
    : argv.includes('--profile') || (!smoke && !argv.includes('--hot-path'));
  const seedArg = argv.find((a) => a.startsWith('--seed='));
  const seed = Number(seedArg?.slice('--seed='.length) ?? env.BENCH_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const hotPathOnly = argv.includes('--hot-path');
  const hotPath = smoke
    ? { seconds: 1, rounds: 1, warmupSeconds: 0.5, warmupRequests: 1_000, connections: 100, redisRequests: 5_000 }
    : { seconds: 4, rounds: 2, warmupSeconds: 2, warmupRequests: 10_000, connections: 100, redisRequests: 30_000 };
  // --compare-dist=<dir>: another build of the service (its dist/) runs the reserve rounds too, interleaved
  // (before/after in one run).
  const compareDist = argv.find((a) => a.startsWith('--compare-dist='))?.slice('--compare-dist='.length);
  if (compareDist) Object.assign(hotPath, { compareDist });
  // --rounds=N / --seconds=N: more (or longer) interleaved rounds of the hot-path comparison on a noisy machine.
  const numberArg = (name: string) => {
    const v = argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
    return v === undefined ? undefined : Number(v);
  };
  const rounds = numberArg('rounds');
  const seconds = numberArg('seconds');
  if (rounds !== undefined) hotPath.rounds = Math.max(1, Math.floor(rounds));
  if (seconds !== undefined) hotPath.seconds = Math.max(1, seconds);
  // --api-node-flags="--max-semi-space-size=2 ...": Node flags for our API process in the hot-path comparison.
  const apiNodeFlags = argv.find((a) => a.startsWith('--api-node-flags='))?.slice('--api-node-flags='.length);
  if (apiNodeFlags) Object.assign(hotPath, { apiNodeFlags: apiNodeFlags.split(' ').filter((f) => f !== '') });
  const common = {
    smoke,
    profile,
    seed,
    hotPathOnly,
    hotPath,
    logLevel: env.BENCH_LOG_LEVEL ?? 'info',
    cluster: !argv.includes('--no-cluster'),
  };
  if (smoke) {
    return {
      ...common,
      customers: 3_000,
      warmupSeconds: 0.5,
      peakSeconds: 1,
      peakConnections: 64,
      spikeConnections: 100,
      steadySeconds: 1.5,
      steadyConnections: 32,
      drainTimeoutSeconds: 30,
      churnSeconds: 2,
      churnConnections: 32,
      manyProducts: 100,
      linesPerProduct: 20,
      manySeconds: 1,
      manyConnections: 64,
      redisBenchmarkRequests: 10_000,
      engineSeconds: 0.5,
      postgresSeconds: 0.5,
      naiveInFlight: [100, 4_000],
      scenarioLines: 1_000,
      clusterCustomers: 1_000,
      clusterEngineWait: { secondsPerRound: 1, rounds: 1, inFlight: 32 },
    };
  }
  return {
    ...common,
    customers: 100_000,
    warmupSeconds: 3,
    peakSeconds: 10,
    peakConnections: 64,
    spikeConnections: 500,
    steadySeconds: 20,
    steadyConnections: 64,
    drainTimeoutSeconds: 90,
    churnSeconds: 15,
    churnConnections: 64,
    manyProducts: 100,
    linesPerProduct: 500,
    manySeconds: 15,
    manyConnections: 128,
    redisBenchmarkRequests: 200_000,
    engineSeconds: 5,
    postgresSeconds: 5,
    naiveInFlight: [500, 4_000],
    scenarioLines: 10_000,
    clusterCustomers: 30_000,
    clusterEngineWait: { secondsPerRound: 3, rounds: 2, inFlight: 32 },
  };
}
