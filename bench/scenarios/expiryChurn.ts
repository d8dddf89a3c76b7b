/**
 * Expiry churn: holds of 1 second (ttlSeconds 1) are never committed; the
 * pool (2,000,000) fills within a fraction of a second and is refilled as
 * holds expire (lazily inside each reserve, and by the sweeper), while new
 * draws keep arriving. After the load every hold must have expired, the
 * counters be back to zero, and the expired records add up to exactly what
 * the answers granted.
 */
import { bulkImport } from '../lib/bulkImport.js';
import { createGrantBook, reserveRequest } from '../lib/grants.js';
import { runAutocannon } from '../lib/httpLoad.js';
import { checkProducts } from '../lib/invariants.js';
import { cpuMeter } from '../lib/processes.js';
import { readPools, samplePools, statusIndexSizes } from '../lib/redisState.js';
import { prng, randomInt } from '../lib/stats.js';
import type { ScenarioContext, ScenarioResult } from './scenario.js';
import { sleep } from '../../test/support/wait.js';

const PRODUCT = 'churn';
const CAPACITY = 2_000_000;

export async function runExpiryChurn(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { stack, options } = ctx;
  const random = prng(options.seed + 2);
  const customers = options.scenarioLines;
  await ctx.api.putProduct(PRODUCT, { capacity: CAPACITY, holdTtlSeconds: 60 });
  await bulkImport(
    ctx.baseUrl,
    [{ productId: PRODUCT, rows: Array.from({ length: customers }, (_, i) => ({ customerId: `x${i}`, limit: 1e10 })) }],
    'churn lines',
  );

  const book = createGrantBook();
  let n = 0;
  const sampler = samplePools(stack.redis, stack.keys, [PRODUCT], 100);
  const cpu = cpuMeter({ api: ctx.apiPids, redis: [stack.server.process.pid!] });
  const load = await runAutocannon({
    title: 'expiry churn',
    baseUrl: ctx.baseUrl,
    connections: options.churnConnections,
    duration: options.churnSeconds,
    requests: [
      reserveRequest(book, () => ({
        productId: PRODUCT,
        customerId: `x${randomInt(random, 0, customers - 1)}`,
        amount: randomInt(random, 10, 100) * 100,
        ttlSeconds: 1,
        key: `${ctx.runId}-x-${n++}`,
      })),
    ],
  });
  const cpuUse = cpu.stop();
  await book.replayOutstanding(ctx.api);

  // Nothing touches the product now: the sweeper alone ends the last holds.
  const waitStarted = performance.now();
  let pool = (await readPools(stack.redis, stack.keys, [PRODUCT])).get(PRODUCT)!;
  let index = await statusIndexSizes(stack.redis, stack.keys, PRODUCT);
  while ((pool.held !== 0 || index.held !== 0) && performance.now() - waitStarted < 20_000) {
    await sleep(200);
    pool = (await readPools(stack.redis, stack.keys, [PRODUCT])).get(PRODUCT)!;
    index = await statusIndexSizes(stack.redis, stack.keys, PRODUCT);
  }
  const lastHoldsGoneAfter = Math.round(performance.now() - waitStarted) / 1000;
  const sampled = await sampler.stop();

  const granted = book.product(PRODUCT);
  const { checks, audits } = await checkProducts({
    redis: stack.redis,
    keys: stack.keys,
    productIds: [PRODUCT],
    // Every grant has expired: nothing held, nothing drawn.
    expected: new Map([[PRODUCT, { held: 0, committed: 0, lineHeld: new Map(), lineDrawn: new Map() }]]),
    sampledOvers: sampled.overs,
    samples: sampled.samples,
    unexpectedAnswers: book.unexpected,
  });
  const a = audits.get(PRODUCT)!;
  const expired = a.byStatus.expired ?? 0;
  const expiredAmount = a.amountByStatus.expired ?? 0;
  checks.push({
    name: 'expired-equals-granted',
    ok: expired === granted.holds && expiredAmount === granted.granted && a.records === granted.holds,
    detail:
      `${granted.holds} holds granted for ${granted.granted}; ${expired} records expired for ` +
      `${expiredAmount}, ${a.records} records in all; last holds gone ${lastHoldsGoneAfter} s after the load`,
  });
  const exhausted = book.refusals.POOL_EXHAUSTED ?? 0;
  checks.push({
    name: 'pool-churned',
    ok: exhausted > 0 && granted.granted > CAPACITY,
    detail:
      `granted ${granted.granted} in all, ${Math.round((granted.granted / CAPACITY) * 10) / 10}× ` +
      `the pool, as holds expired; ${exhausted} draws refused POOL_EXHAUSTED meanwhile`,
  });
  return {
    name: 'expiry-churn',
    title: 'Expiry churn: 1-second holds left to expire while new ones arrive',
    description:
      `${options.churnConnections} connections for ${options.churnSeconds} s, holds ` +
      `of 1 s never committed, pool of ${CAPACITY.toLocaleString('en')}`,
    load,
    poolPoints: sampled.points,
    capacity: CAPACITY,
    totals: { ...book.totals(), expired, expiredAmount, lastHoldsGoneAfterSeconds: lastHoldsGoneAfter },
    cpu: cpuUse,
    checks,
  };
}
