/**
 * Many products: load spread over 100 products (each its own hash tag, so
 * its own slot on a Redis Cluster), random product and customer per draw.
 * Each pool covers about 40% of the demand expected over the run (from the
 * spike's rate), so most run out near the end; exact accounting and the
 * audit per product.
 */
import { bulkImport, type ImportJob } from '../lib/bulkImport.js';
import { createGrantBook, reserveRequest } from '../lib/grants.js';
import { runAutocannon } from '../lib/httpLoad.js';
import { checkProducts, type ExpectedCounters } from '../lib/invariants.js';
import { cpuMeter } from '../lib/processes.js';
import { samplePools } from '../lib/redisState.js';
import { prng, randomInt } from '../lib/stats.js';
import type { ScenarioContext, ScenarioResult } from './scenario.js';

const AMOUNT_MIN = 10;
const AMOUNT_MAX = 500;

/** The scenario's product ids (the cluster comparison counts how they spread over the masters). */
export const manyProductIds = (count: number) =>
  Array.from({ length: count }, (_, i) => `mp-${String(i).padStart(3, '0')}`);

export async function runManyProducts(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { options } = ctx;
  const random = prng(options.seed + 3);
  const products = manyProductIds(options.manyProducts);
  const perProduct = options.linesPerProduct;
  const jobs: ImportJob[] = [];
  let capacity = 0;
  const meanAmount = ((AMOUNT_MIN + AMOUNT_MAX) / 2) * 100;
  const expectedDemand = (((ctx.expectedRps ?? 1_000) * options.manySeconds) / products.length) * meanAmount;
  for (const p of products) {
    const rows = Array.from({ length: perProduct }, (_, i) => ({
      customerId: `m${i}`,
      limit: randomInt(random, 100, 1_000) * 100,
    }));
    const productCapacity = Math.round(Math.min(rows.reduce((s, r) => s + r.limit, 0) / 4, expectedDemand * 0.4));
    capacity += productCapacity;
    await ctx.api.putProduct(p, { capacity: productCapacity, holdTtlSeconds: 3600 });
    jobs.push({ productId: p, rows });
  }
  const imported = await bulkImport(ctx.baseUrl, jobs, `${products.length} products' lines`);

  const book = createGrantBook();
  let n = 0;
  await ctx.onLoadStart?.();
  const sampler = samplePools(ctx.redis, ctx.keys, products, 250);
  const cpu = cpuMeter({ api: ctx.apiPids, redis: ctx.redisPids });
  const load = await runAutocannon({
    title: 'many products',
    baseUrl: ctx.baseUrl,
    connections: options.manyConnections,
    duration: options.manySeconds,
    requests: [
      reserveRequest(book, () => ({
        productId: products[randomInt(random, 0, products.length - 1)]!,
        customerId: `m${randomInt(random, 0, perProduct - 1)}`,
        amount: randomInt(random, AMOUNT_MIN, AMOUNT_MAX) * 100,
        key: `${ctx.runId}-m-${n++}`,
      })),
    ],
  });
  const cpuUse = cpu.stop();
  await book.replayOutstanding(ctx.api);
  const sampled = await sampler.stop();

  const expected = new Map<string, ExpectedCounters>();
  for (const p of products) {
    const g = book.product(p);
    expected.set(p, { held: g.granted, committed: 0, lineHeld: g.perLine, lineDrawn: new Map() });
  }
  const { checks } = await checkProducts({
    redis: ctx.redis,
    keys: ctx.keys,
    productIds: products,
    expected,
    sampledOvers: sampled.overs,
    samples: sampled.samples,
    unexpectedAnswers: book.unexpected,
  });
  return {
    name: 'many-products',
    title: `Many products: load spread over ${products.length} products`,
    description:
      `${options.manyConnections} connections for ${options.manySeconds} s, random product and customer ` +
      `(${perProduct} lines each); each pool covers about 40% of the demand expected at the spike's rate`,
    load,
    poolPoints: sampled.points,
    capacity,
    totals: { ...book.totals(), products: products.length, linesImported: imported.upserted },
    cpu: cpuUse,
    checks,
  };
}
