/** What every scenario gets, and what it answers. */
import type { BenchOptions } from '../options.js';
import type { ApiClient } from '../lib/api.js';
import type { Check } from '../lib/invariants.js';
import type { LoadResult } from '../lib/httpLoad.js';
import type { LedgerProcess, RedisStack } from '../lib/stack.js';
import type { Keys } from '../../src/redis/keys.js';
import type { RedisClient } from '../../src/redis/topology.js';

export interface ScenarioContext {
  options: BenchOptions;
  stack: RedisStack;
  /**
   * Where the service under load keeps its quota state: the stack's node, or
   * a Redis Cluster (the cluster comparison). Spike and many products read it
   * here; the others run on the stack's node only.
   */
  redis: RedisClient;
  keys: Keys;
  /** The redis-server processes serving it (one, or the Cluster's masters): their CPU use during the load. */
  redisPids: number[];
  api: ApiClient;
  baseUrl: string;
  ledger: LedgerProcess;
  /** Unique per run: idempotency keys never collide with an earlier run's. */
  runId: string;
  /** API process ids (CPU use during the load). */
  apiPids: number[];
  /**
   * Called right before the measured load starts (after the scenario's own set-up): the cluster comparison resets
   * Redis's command stats here.
   */
  onLoadStart?: () => Promise<void>;
  /** Answers/s the spike reached: sizes later pools so that they run out during the load. */
  expectedRps?: number;
}

export interface ScenarioResult {
  name: string;
  title: string;
  /** One sentence: what was done. */
  description: string;
  load: LoadResult;
  /** Summed remaining capacity of the scenario's pools over time. */
  poolPoints: { t: number; remaining: number }[];
  capacity: number;
  totals: Record<string, unknown>;
  cpu: Record<string, number[]>;
  checks: Check[];
}

export const failed = (checks: Check[]) => checks.filter((c) => !c.ok);
