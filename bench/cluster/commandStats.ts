/**
 * Redis's own account of the reserve work per node: `INFO commandstats`'
 * cmdstat_fcall line (calls, usec, usec_per_call) of each master, reset with
 * CONFIG RESETSTAT right before a load. usec is CPU time inside Redis
 * running the functions, so it shows how the work spreads over the masters
 * whatever the shared machine's other processes do. Every FCALL counts (the
 * jobs process's sweeps and audits too), but during a reserve load nearly
 * all are reserves.
 */
import { withNode } from '../../test/support/redisProcesses.js';

export interface NodeFcallStats {
  port: number;
  calls: number;
  /** Total microseconds spent in FCALL on this node. */
  usec: number;
  usecPerCall: number;
  /** This node's share of all the nodes' FCALLs. */
  callShare: number;
}

export async function resetCommandStats(ports: number[]): Promise<void> {
  await Promise.all(ports.map((port) => withNode(port, (r) => r.config('RESETSTAT'))));
}

export async function readFcallStats(ports: number[]): Promise<NodeFcallStats[]> {
  const stats = await Promise.all(
    ports.map(async (port) => {
      const info = await withNode(port, (r) => r.info('commandstats'));
      const line = /^cmdstat_fcall:(.*)$/m.exec(info)?.[1] ?? '';
      const field = (name: string) => Number(new RegExp(`(?:^|,)${name}=([0-9.]+)`).exec(line)?.[1] ?? 0);
      return { port, calls: field('calls'), usec: field('usec'), usecPerCall: field('usec_per_call') };
    }),
  );
  const all = stats.reduce((s, x) => s + x.calls, 0);
  return stats.map((s) => ({ ...s, callShare: all > 0 ? Math.round((s.calls / all) * 1000) / 1000 : 0 }));
}
