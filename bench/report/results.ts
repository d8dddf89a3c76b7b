/** Everything one run measured: what bench/results/<timestamp>.json holds. */
import type { InFlightRun } from '../baselines/engineDirect.js';
import type { ClusterComparison } from '../cluster/clusterComparison.js';
import type { HttpFigures } from '../baselines/httpRoutes.js';
import type { NaiveRun } from '../baselines/naive.js';
import type { PostgresResult } from '../baselines/postgres.js';
import type { RedisBaselines } from '../baselines/redisBenchmark.js';
import type { ImportResult } from '../lib/bulkImport.js';
import type { MachineDescription, MachineLoad } from '../lib/machine.js';
import type { ScenarioResult } from '../scenarios/scenario.js';
import type { HotPathResults } from '../hotPath/hotPath.js';

export interface TargetRow {
  target: string;
  measured: string;
  goal: string;
  verdict: 'pass' | 'miss' | 'reported' | 'skipped' | 'not run';
}

export interface BenchResults {
  startedAt: string;
  finishedAt?: string;
  seconds?: number;
  command: string;
  mode: 'full' | 'smoke' | 'hot path' | 'hot path, smoke';
  seed: number;
  machine: MachineDescription;
  /** How busy the whole machine was during the run (all processes, ours and others'). */
  machineLoad?: MachineLoad;
  setup: {
    redis: { version: string; appendonly: 'yes'; appendfsync: string; autoAofRewrite: 'off' };
    scenarioApiProcesses: number;
    apiLogLevel: string;
    ledger: { failRate: number; rejectRate: number };
    loadGenerator: string;
    postgres?: string;
  };
  launchImport?: ImportResult;
  baselines: {
    redisBenchmark?: RedisBaselines;
    engineDirect: InFlightRun[];
    naive: NaiveRun[];
    postgres?: PostgresResult;
  };
  scenarios: ScenarioResult[];
  http?: HttpFigures;
  /** Issue 11: our reserve, commit and release against the minimal scripts and a bare express app (bench/hotPath/). */
  hotPath?: HotPathResults;
  /**
   * The same scenarios on one node and on a 3-master Redis Cluster, WAIT 0 and 1 (bench/cluster/clusterComparison.ts).
   */
  cluster?: ClusterComparison;
  targets: TargetRow[];
  /** Invariant violations and failures: any makes the run exit non-zero. */
  violations: string[];
  /** Problems that do not fail the run but make a figure doubtful. */
  warnings: string[];
  ok: boolean;
}
