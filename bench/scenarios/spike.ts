/**
 * Spike: every customer of the launch product draws once, all at once
 * (`spikeConnections` in flight), random amounts, demand about 3.3 times the
 * pool. Exact accounting from the answers; the pool sampled every 100 ms.
 */
import { createGrantBook, reserveRequest } from '../lib/grants.js';
import { runAutocannon } from '../lib/httpLoad.js';
import { checkProducts } from '../lib/invariants.js';
import { cpuMeter } from '../lib/processes.js';
import { samplePools } from '../lib/redisState.js';
import type { LaunchPlan } from './launchPlan.js';
import type { ScenarioContext, ScenarioResult } from './scenario.js';

export const LAUNCH_PRODUCT = 'launch';

export async function runSpike(ctx: ScenarioContext, plan: LaunchPlan): Promise<ScenarioResult> {
  const { options } = ctx;
  const book = createGrantBook();
  let next = 0;
  await ctx.onLoadStart?.();
  const sampler = samplePools(ctx.redis, ctx.keys, [LAUNCH_PRODUCT], 100);
  const cpu = cpuMeter({ api: ctx.apiPids, redis: ctx.redisPids });
  const load = await runAutocannon({
    title: 'spike',
    baseUrl: ctx.baseUrl,
    connections: options.spikeConnections,
    amount: plan.draws.length,
    requests: [
      reserveRequest(book, () => {
        const i = next++;
        const d = plan.draws[i];
        return (
          d && { productId: LAUNCH_PRODUCT, customerId: d.customerId, amount: d.amount, key: `${ctx.runId}-s-${i}` }
        );
      }),
    ],
  });
  const cpuUse = cpu.stop();
  await book.replayOutstanding(ctx.api);
  const sampled = await sampler.stop();

  const granted = book.product(LAUNCH_PRODUCT);
  const { checks } = await checkProducts({
    redis: ctx.redis,
    keys: ctx.keys,
    productIds: [LAUNCH_PRODUCT],
    expected: new Map([
      [LAUNCH_PRODUCT, { held: granted.granted, committed: 0, lineHeld: granted.perLine, lineDrawn: new Map() }],
    ]),
    sampledOvers: sampled.overs,
    samples: sampled.samples,
    unexpectedAnswers: book.unexpected,
  });
  const pooled = book.refusals.POOL_EXHAUSTED ?? 0;
  checks.push({
    name: 'pool-ran-out',
    ok: pooled > 0 && plan.demand > plan.capacity,
    detail:
      `demand ${plan.demand} vs capacity ${plan.capacity}; ${pooled} draws ` +
      `refused POOL_EXHAUSTED (the scenario did exhaust the pool)`,
  });
  const exhaustedAt = sampled.points.find((p) => p.remaining < 10_000)?.t;
  return {
    name: 'spike',
    title: 'Spike: every customer draws at once',
    description:
      `${plan.draws.length.toLocaleString('en')} customers draw once each, ${options.spikeConnections} in flight, ` +
      `100.00–10,000.00 each; the pool covers ${Math.round((plan.capacity / plan.demand) * 100)}% of the demand`,
    load,
    poolPoints: sampled.points,
    capacity: plan.capacity,
    totals: {
      ...book.totals(),
      capacity: plan.capacity,
      demand: plan.demand,
      poolExhaustedAfterSeconds: exhaustedAt ?? null,
    },
    cpu: cpuUse,
    checks,
  };
}
