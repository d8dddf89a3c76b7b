/**
 * Readiness: ready only while Redis answers, every script is in its cache
 * (reloaded here if Redis lost them) and the instance is not draining.
 */
import type { RedisClient } from '../redis/topology.js';
import type { QuotaEngine } from '../engine/quotaEngine.js';

export interface ReadinessReport {
  ready: boolean;
  checks: { redis: boolean; scripts: boolean; draining: boolean };
}

export function createReadiness(redis: RedisClient, engine: Pick<QuotaEngine, 'scriptsLoaded' | 'loadScripts'>) {
  let draining = false;
  return {
    startDraining() {
      draining = true;
    },
    get draining() {
      return draining;
    },
    async check(): Promise<ReadinessReport> {
      let redisOk = false;
      let scriptsOk = false;
      try {
        redisOk = (await redis.ping()) === 'PONG';
        scriptsOk = await engine.scriptsLoaded();
        if (!scriptsOk) {
          await engine.loadScripts();
          scriptsOk = await engine.scriptsLoaded();
        }
      } catch {
        // reported as not ready below
      }
      return { ready: redisOk && scriptsOk && !draining, checks: { redis: redisOk, scripts: scriptsOk, draining } };
    },
  };
}

export type Readiness = ReturnType<typeof createReadiness>;
