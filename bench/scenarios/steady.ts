/**
 * Steady: each connection reserves, then commits (45% in full, 15% in part)
 * or releases (40%) what it got, over and over; committed draws settle
 * through the jobs process against the test ledger, which fails 20% of
 * attempts (retried) and rejects 2% of customers (reversed). After the load,
 * a drain period lets settlement finish; then every commit must be settled
 * (and in the ledger, once, for its amount) or reversed (and not in it).
 */
import type autocannon from 'autocannon';
import { createGrantBook, jsonHeaders, reserveRequest, type Grant } from '../lib/grants.js';
import { bulkImport } from '../lib/bulkImport.js';
import { runAutocannon } from '../lib/httpLoad.js';
import { checkProducts, type Check } from '../lib/invariants.js';
import { cpuMeter } from '../lib/processes.js';
import { samplePools, statusIndexSizes } from '../lib/redisState.js';
import { prng, randomInt } from '../lib/stats.js';
import type { ScenarioContext, ScenarioResult } from './scenario.js';
import { sleep } from '../../test/support/wait.js';

const PRODUCT = 'steady';
const CAPACITY = 1e13;

interface Action {
  grant: Grant;
  kind: 'commit' | 'release';
  /** Sent in the commit body when partial. */
  partialAmount?: number;
  outcome?: { status: string; committedAmount: number };
}

interface ChainContext {
  key?: string;
  grant?: Grant;
}

export async function runSteady(ctx: ScenarioContext): Promise<ScenarioResult> {
  const { stack, options } = ctx;
  const random = prng(options.seed + 1);
  const customers = options.scenarioLines;
  await ctx.api.putProduct(PRODUCT, { capacity: CAPACITY, holdTtlSeconds: 600 });
  const imported = await bulkImport(
    ctx.baseUrl,
    [{ productId: PRODUCT, rows: Array.from({ length: customers }, (_, i) => ({ customerId: `s${i}`, limit: 1e10 })) }],
    'steady lines',
  );

  const book = createGrantBook();
  const actions = new Map<string, Action>();
  const unexpected: string[] = [];
  let lostActionAnswers = 0;
  let n = 0;

  const actionPath = (a: Action) => `/v1/products/${PRODUCT}/reservations/${a.grant.reservationId}/${a.kind}`;
  const actionBody = (a: Action) =>
    a.partialAmount === undefined ? '{}' : JSON.stringify({ amount: a.partialAmount });
  /** Books a commit/release answer; false when the outcome is unknown (replay it). */
  const bookAction = (a: Action, status: number, text: string): boolean => {
    if (status >= 500 || status === 0) return false;
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const wanted = a.kind === 'commit' ? (a.partialAmount ?? a.grant.amount) : 0;
    // A replayed commit may find the reservation already settled or reversed: still this commit's answer.
    const okStatuses = a.kind === 'commit' ? ['committed', 'settled', 'reversed', 'settlement_unknown'] : ['released'];
    if (status === 200 && okStatuses.includes(body?.status) && body.committedAmount === wanted) {
      a.outcome = { status: body.status, committedAmount: body.committedAmount };
    } else {
      unexpected.push(`${a.kind} ${a.grant.reservationId}: ${status} ${text.slice(0, 300)}`);
      a.outcome = { status: 'unexpected', committedAmount: 0 };
    }
    return true;
  };

  const requests: autocannon.Request[] = [
    reserveRequest(
      book,
      () => ({
        productId: PRODUCT,
        customerId: `s${randomInt(random, 0, customers - 1)}`,
        amount: randomInt(random, 1, 1_000) * 100,
        key: `${ctx.runId}-t-${n++}`,
      }),
      (grant, context) => {
        (context as ChainContext).grant = grant;
      },
    ),
    {
      method: 'POST',
      setupRequest(req, context) {
        const grant = (context as ChainContext).grant;
        // Refused: nothing to commit; back to a new reserve.
        if (!grant) return undefined as unknown as autocannon.Request;
        const roll = random();
        const kind = roll < 0.6 ? 'commit' : 'release';
        const partialAmount = roll < 0.15 && grant.amount > 1 ? randomInt(random, 1, grant.amount - 1) : undefined;
        const a: Action = { grant, kind, partialAmount };
        actions.set(grant.reservationId, a);
        return {
          ...req,
          method: 'POST',
          path: actionPath(a),
          headers: { ...req.headers, ...jsonHeaders },
          body: actionBody(a),
        };
      },
      onResponse(status, body, context) {
        const grant = (context as ChainContext).grant;
        const a = grant && actions.get(grant.reservationId);
        if (a && !bookAction(a, status, body)) lostActionAnswers++;
      },
    },
  ];

  const sampler = samplePools(stack.redis, stack.keys, [PRODUCT], 100);
  const cpu = cpuMeter({ api: ctx.apiPids, redis: [stack.server.process.pid!] });
  const load = await runAutocannon({
    title: 'steady',
    baseUrl: ctx.baseUrl,
    connections: options.steadyConnections,
    duration: options.steadySeconds,
    requests,
  });
  const cpuUse = cpu.stop();
  await book.replayOutstanding(ctx.api);
  // Commits and releases whose answer was lost: sent again (both are idempotent by state).
  for (const a of actions.values()) {
    for (let attempt = 0; !a.outcome && attempt < 5; attempt++) {
      const res = await fetch(ctx.baseUrl + actionPath(a), {
        method: 'POST',
        headers: jsonHeaders,
        body: actionBody(a),
      }).catch(() => undefined);
      if (res && bookAction(a, res.status, await res.text())) break;
      await sleep(500);
    }
    if (!a.outcome) unexpected.push(`${a.kind} ${a.grant.reservationId}: no definite answer after replays`);
  }
  const sampled = await sampler.stop();

  // Drain: settlement (with its retries) catches up.
  const drainStarted = performance.now();
  let index = await statusIndexSizes(stack.redis, stack.keys, PRODUCT);
  while (index.committed! > 0 && performance.now() - drainStarted < options.drainTimeoutSeconds * 1000) {
    await sleep(250);
    index = await statusIndexSizes(stack.redis, stack.keys, PRODUCT);
  }
  const drainSeconds = Math.round(performance.now() - drainStarted) / 1000;

  // What the answers and the ledger say the counters must be.
  const deliveries = await ctx.ledger.deliveries();
  const applied = new Map(Object.entries(deliveries).filter(([, d]) => d.body.productId === PRODUCT));
  const lineHeld = new Map<string, number>();
  const lineDrawn = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  let held = 0;
  let committed = 0;
  let commits = 0;
  let releases = 0;
  const committedIds = new Map<string, number>();
  for (const g of book.grants) {
    const a = actions.get(g.reservationId);
    if (!a) {
      held += g.amount;
      add(lineHeld, g.customerId, g.amount);
    } else if (a.kind === 'commit' && a.outcome && a.outcome.status !== 'unexpected') {
      commits++;
      committedIds.set(g.reservationId, a.outcome.committedAmount);
      if (applied.has(g.reservationId)) {
        committed += a.outcome.committedAmount;
        add(lineDrawn, g.customerId, a.outcome.committedAmount);
      }
    } else if (a.kind === 'release') releases++;
  }

  const { checks, audits } = await checkProducts({
    redis: stack.redis,
    keys: stack.keys,
    productIds: [PRODUCT],
    expected: new Map([[PRODUCT, { held, committed, lineHeld, lineDrawn }]]),
    sampledOvers: sampled.overs,
    samples: sampled.samples,
    unexpectedAnswers: [...book.unexpected, ...unexpected],
  });

  // Every commit settled (in the ledger once, for its amount) or reversed (not in it).
  const records = audits.get(PRODUCT)!;
  const settlement: string[] = [];
  let settled = 0;
  let reversed = 0;
  for (const [id, amount] of committedIds) {
    const status = records.statusOf.get(id);
    const delivery = applied.get(id);
    if (status === 'settled') {
      settled++;
      if (!delivery) settlement.push(`${id}: settled, but not in the ledger`);
      else if (delivery.body.amount !== amount)
        settlement.push(`${id}: settled ${amount}, ledger has ${delivery.body.amount}`);
    } else if (status === 'reversed') {
      reversed++;
      if (delivery) settlement.push(`${id}: reversed, but the ledger applied it`);
    } else settlement.push(`${id}: ${status} after ${drainSeconds} s of drain`);
  }
  for (const id of applied.keys())
    if (!committedIds.has(id)) settlement.push(`${id}: in the ledger, but never committed by an answer`);
  const settleCheck: Check = {
    name: 'commits-settled-or-reversed',
    ok: settlement.length === 0,
    detail:
      settlement.length === 0
        ? `${commits} commits: ${settled} settled (each in the ledger once, same ` +
          `amount), ${reversed} reversed; drained in ${drainSeconds} s`
        : `${settlement.length} failure(s): ${settlement.slice(0, 5).join('; ')}`,
  };
  checks.push(settleCheck);

  return {
    name: 'steady',
    title: 'Steady: reserve, then commit or release, with settlement',
    description:
      `${options.steadyConnections} connections for ${options.steadySeconds} s over ` +
      `${customers.toLocaleString('en')} lines; ledger fails 20% of attempts and rejects 2% of customers`,
    load,
    poolPoints: sampled.points,
    capacity: CAPACITY,
    totals: {
      ...book.totals(),
      linesImported: imported.upserted,
      commits,
      releases,
      leftHeld: book.grants.length - commits - releases,
      lostActionAnswers,
      settled,
      reversed,
      drainSeconds,
      ledger: await ctx.ledger.stats(),
    },
    cpu: cpuUse,
    checks,
  };
}
