/**
 * The launch: N customers with credit lines of 1,000.00 to 10,000.00, each
 * drawing once, all at once, 100.00 to 10,000.00 each (minor units), against
 * a pool that covers 30% of the demand. Some draws are above their line's
 * limit, so both refusals happen. Seeded: the same seed gives the same plan.
 */
import { prng, randomInt } from '../lib/stats.js';

export interface LaunchPlan {
  lines: { customerId: string; limit: number }[];
  /** One draw per customer, in a shuffled order. */
  draws: { customerId: string; amount: number }[];
  capacity: number;
  demand: number;
}

export function launchPlan(customers: number, seed: number): LaunchPlan {
  const random = prng(seed);
  const lines = Array.from({ length: customers }, (_, i) => ({
    customerId: `c${i}`,
    limit: randomInt(random, 1_000, 10_000) * 100,
  }));
  const draws = lines.map((l) => ({ customerId: l.customerId, amount: randomInt(random, 100, 10_000) * 100 }));
  for (let i = draws.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [draws[i], draws[j]] = [draws[j]!, draws[i]!];
  }
  const demand = draws.reduce((s, d) => s + d.amount, 0);
  return { lines, draws, capacity: Math.round(demand * 0.3), demand };
}
