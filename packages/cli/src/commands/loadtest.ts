/**
 * `quota loadtest`: realistic draws against a deployment with autocannon,
 * then a verdict from the service's own snapshots. It creates its own product
 * and customer lines (refusing an existing product unless --existing-product),
 * releases its holds by default, commits only with --commit-ratio (commits
 * reach the deployment's ledger), and with --cleanup closes its product.
 */
import { randomBytes } from 'node:crypto';
import type { LineRow, QuotaClient } from '@quota-allocator/client';
import autocannon from 'autocannon';
import type { Command } from 'commander';
import { valueOf } from '../connection.js';
import { CliError, EXIT } from '../exitCodes.js';
import { emit, money, type Io } from '../io.js';
import type { Registrar } from '../main.js';
import {
  apiSnapshotSource,
  checkInvariants,
  type InvariantReport,
  type PoolCounters,
  type SnapshotSource,
} from '../loadtest/invariants.js';
import { createBook, trafficRequests, type Book, type Customer } from '../loadtest/traffic.js';
import { connectFrom, optionsOf, positiveInt } from './common.js';

interface LoadtestOptions {
  product?: string;
  rate: string;
  duration: string;
  connections: string;
  customers: string;
  capacity: string;
  minAmount: string;
  maxAmount: string;
  commitRatio: string;
  existingProduct?: boolean;
  cleanup?: boolean;
}

export function registerLoadtest(program: Command, { io, wrap }: Registrar): void {
  program
    .command('loadtest')
    .description(
      'load-test a deployment with realistic draws; report throughput, latency, answers by code and an invariant check',
    )
    .option('--product <id>', 'the product to create for the run (default loadtest-<time>-<random>)')
    .option('--rate <n>', 'requests per second, all connections together', '200')
    .option('--duration <seconds>', 'how long to send', '10')
    .option('--connections <n>', 'concurrent connections', '10')
    .option(
      '--customers <n>',
      'customer lines in the mix (5% pending activation, 3% frozen, a hot few drawing most)',
      '200',
    )
    .option('--capacity <n>', "the product's capacity (minor units)", '5000000')
    .option('--min-amount <n>', 'smallest draw', '100')
    .option('--max-amount <n>', 'largest draw', '5000')
    .option(
      '--commit-ratio <r>',
      'share of granted draws committed instead of released (commits reach the ledger!)',
      '0',
    )
    .option('--existing-product', 'run against a product that already exists (adds loadtest customer lines to it)')
    .option('--cleanup', 'afterwards close the product it created (holds are always released)')
    .action(
      wrap(async (opts: LoadtestOptions, command: Command) => {
        const options = optionsOf<LoadtestOptions>(command);
        const { client, url } = connectFrom(command, io);
        const settings = parseSettings(opts);
        const result = await runLoadtest({
          client,
          url,
          apiKey: options.key ?? io.env.QUOTA_API_KEY ?? '',
          io,
          ...settings,
        });
        emit(io, !!options.json, result, () => describe(result));
        return result.invariants.ok ? EXIT.OK : EXIT.FAILURE;
      }),
    );
}

function parseSettings(opts: LoadtestOptions) {
  const commitRatio = Number(opts.commitRatio);
  if (!(commitRatio >= 0 && commitRatio <= 1)) throw new CliError('--commit-ratio must be between 0 and 1', EXIT.USAGE);
  const minAmount = positiveInt(opts.minAmount, '--min-amount');
  const maxAmount = positiveInt(opts.maxAmount, '--max-amount');
  if (maxAmount < minAmount) throw new CliError('--max-amount must be at least --min-amount', EXIT.USAGE);
  return {
    productId: opts.product,
    rate: positiveInt(opts.rate, '--rate'),
    duration: positiveInt(opts.duration, '--duration'),
    connections: positiveInt(opts.connections, '--connections'),
    customers: positiveInt(opts.customers, '--customers'),
    capacity: positiveInt(opts.capacity, '--capacity', 0),
    minAmount,
    maxAmount,
    commitRatio,
    existingProduct: !!opts.existingProduct,
    cleanup: !!opts.cleanup,
  };
}

export interface LoadtestRun extends ReturnType<typeof parseSettings> {
  client: QuotaClient;
  url: string;
  apiKey: string;
  io: Io;
  /** Where the verdict's snapshots come from (default: the API); a test can plant a fault here. */
  snapshotSource?: (customerIds: string[]) => SnapshotSource;
}

export async function runLoadtest(run: LoadtestRun) {
  const { client, io } = run;
  const runId = `lt${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const productId =
    run.productId ??
    `loadtest-${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}-${randomBytes(2).toString('hex')}`;

  // Our own product, unless told to use an existing one.
  const existing = await client.getProduct(productId);
  if (existing.ok && !run.existingProduct) {
    throw new CliError(
      `product ${productId} already exists and was not created by this ` +
        `run: pass --existing-product to load-test it anyway`,
      EXIT.USAGE,
    );
  }
  if (!existing.ok && existing.problem.code !== 'PRODUCT_NOT_FOUND') valueOf(existing, `product ${productId}`);
  if (!existing.ok && run.existingProduct) throw new CliError(`product ${productId} does not exist`, EXIT.NOT_FOUND);
  const ownsProduct = !existing.ok;
  if (ownsProduct) {
    valueOf(
      await client.admin.putProduct(productId, {
        capacity: run.capacity,
        minAmount: run.minAmount,
        maxAmount: run.maxAmount,
        holdTtlSeconds: 300,
      }),
      `create ${productId}`,
    );
  }
  const customers = customerMix(runId, run.customers);
  const imported = valueOf(await client.admin.bulkImport(productId, customers.rows), `customer lines for ${productId}`);
  if (imported.rejected.length > 0)
    throw new CliError(
      `the service rejected ${imported.rejected.length} loadtest lines: ${imported.rejected[0]!.detail}`,
      EXIT.FAILURE,
    );
  const baselinePool = valueOf(await client.getProduct(productId), `product ${productId}`);

  const book = createBook();
  const samples: PoolCounters[] = [];
  const sampler = startSampler(client, productId, samples);
  const started = performance.now();
  const progress = setInterval(() => progressLine(io, book, started, run.duration), 1000);
  let result: autocannon.Result;
  try {
    result = await new Promise<autocannon.Result>((resolve, reject) => {
      autocannon(
        {
          url: run.url.replace(/\/+$/, ''),
          connections: run.connections,
          overallRate: run.rate,
          duration: run.duration,
          timeout: 10,
          headers: { authorization: `Bearer ${run.apiKey}` },
          requests: trafficRequests(
            {
              productId,
              runId,
              customers: customers.mix,
              minAmount: run.minAmount,
              maxAmount: run.maxAmount,
              commitRatio: run.commitRatio,
              ttlSeconds: 120,
            },
            book,
          ),
        },
        (err, res) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(res)),
      );
    });
  } finally {
    clearInterval(progress);
    await sampler.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  if (io.stderr.isTTY) io.stderr.write('\n');

  const settledLate = await settleUnanswered(client, productId, book);
  const released = await releaseOutstanding(client, productId, book);

  const source = run.snapshotSource?.(customers.ids) ?? apiSnapshotSource(client, productId, customers.ids);
  const reversed = book.committedCount > 0 ? await reversedAmount(client, productId, new Set(customers.ids)) : 0;
  const invariants: InvariantReport = await checkInvariants(
    source,
    {
      held: [...book.outstanding.values()].reduce((s, a) => s + a, 0),
      committed: book.committedAmount,
      reversed,
      baseline: { held: baselinePool.held, committed: baselinePool.committed },
      ownsProduct,
    },
    samples,
  );

  let closed = false;
  if (run.cleanup && ownsProduct)
    closed =
      valueOf(await client.admin.patchProduct(productId, { status: 'closed' }), `close ${productId}`).status ===
      'closed';

  return {
    productId,
    createdProduct: ownsProduct,
    url: run.url,
    seconds: round(seconds),
    settings: {
      rate: run.rate,
      duration: run.duration,
      connections: run.connections,
      customers: run.customers,
      commitRatio: run.commitRatio,
    },
    requests: result.requests.total,
    throughputPerSecond: round(book.answers / seconds),
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      p99_9: result.latency.p99_9,
      max: result.latency.max,
      mean: round(result.latency.mean),
    },
    answersByCode: Object.fromEntries(Object.entries(book.answersByCode).sort(([a], [b]) => a.localeCompare(b))),
    draws: {
      sent: book.drawsSent,
      granted: book.granted,
      refused: book.refused,
      released: book.released,
      committed: book.committedCount,
      committedAmount: book.committedAmount,
    },
    errors: result.errors,
    timeouts: result.timeouts,
    answeredAfterRun: settledLate,
    releasedAfterRun: released,
    snapshots: samples.length + 1,
    invariants,
    cleanup: { holdsLeft: book.outstanding.size, productClosed: closed },
  };
}

export type LoadtestResult = Awaited<ReturnType<typeof runLoadtest>>;

/** 5% pending activation, 3% frozen, the first 5% "hot" (half the draws): some refusals by line and limit. */
function customerMix(runId: string, n: number): { rows: LineRow[]; mix: Customer[]; ids: string[] } {
  const rows: LineRow[] = [];
  const mix: Customer[] = [];
  const hot = Math.max(1, Math.round(n * 0.05));
  for (let i = 0; i < n; i++) {
    const customerId = `${runId}-c${i}`;
    const roll = (i * 7919) % 100; // spread deterministically over the ids
    const status = roll < 5 ? 'pending_activation' : roll < 8 ? 'frozen' : 'active';
    const statusReason =
      status === 'pending_activation' ? 'KYC in review' : status === 'frozen' ? 'risk control review' : null;
    rows.push({ customerId, limit: 20_000 + ((i * 104_729) % 480_001), status, statusReason });
    mix.push({ customerId, weight: i < hot ? (n - hot) / hot : 1 });
  }
  return { rows, mix, ids: rows.map((r) => r.customerId) };
}

/** Pool snapshots every 250 ms while the load runs. */
function startSampler(client: QuotaClient, productId: string, samples: PoolCounters[]) {
  let running = true;
  const loop = (async () => {
    while (running) {
      const answer = await client.getProduct(productId).catch(() => undefined);
      if (answer?.ok)
        samples.push({ capacity: answer.value.capacity, held: answer.value.held, committed: answer.value.committed });
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** Requests whose answer never came, repeated to learn their outcome (same key; idempotent by state). */
async function settleUnanswered(client: QuotaClient, productId: string, book: Book): Promise<number> {
  let n = 0;
  for (const [key, draw] of book.reservesInFlight) {
    const answer = await client.reserve(
      productId,
      { customerId: draw.customerId, amount: draw.amount, ttlSeconds: 120, metadata: { loadtest: key.split('-')[0] } },
      { idempotencyKey: key },
    );
    n++;
    if (answer.ok) book.recordGrant(answer.value.reservationId, draw.amount);
  }
  book.reservesInFlight.clear();
  for (const [reservationId, { op, amount }] of book.followUpsInFlight) {
    const answer =
      op === 'commit' ? await client.commit(productId, reservationId) : await client.release(productId, reservationId);
    n++;
    if (answer.ok) book.recordFollowUp(op, reservationId, amount);
  }
  book.followUpsInFlight.clear();
  return n;
}

/** What the deployment's ledger rejected of this run's commits (reversed: the quota came back). */
async function reversedAmount(client: QuotaClient, productId: string, customers: Set<string>): Promise<number> {
  let sum = 0;
  let cursor: string | undefined;
  do {
    const page = valueOf(
      await client.admin.listReservations(productId, 'reversed', { limit: 500, ...(cursor ? { cursor } : {}) }),
      `reversed reservations of ${productId}`,
    );
    for (const r of page.items) if (customers.has(r.customerId)) sum += r.committedAmount;
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return sum;
}

/** The holds still held when the run stopped: released, so the run leaves no quota behind. */
async function releaseOutstanding(client: QuotaClient, productId: string, book: Book): Promise<number> {
  const ids = [...book.outstanding.keys()];
  for (const reservationId of ids) {
    const answer = await client.release(productId, reservationId);
    if (answer.ok && answer.value.status !== 'held') book.recordFollowUp('release', reservationId, 0);
  }
  return ids.length;
}

function progressLine(io: Io, book: Book, started: number, duration: number): void {
  const s = (performance.now() - started) / 1000;
  const text =
    `loadtest ${Math.min(s, duration).toFixed(0)}/${duration}s  answers ${book.answers}  ` +
    `${Math.round(book.answers / s)}/s  granted ${book.granted}  refused ${book.refused}`;
  io.stderr.write(io.stderr.isTTY ? `\r${text}   ` : `${text}\n`);
}

const round = (n: number) => Math.round(n * 100) / 100;

function describe(r: LoadtestResult): string {
  return [
    `loadtest of ${r.productId} at ${r.url}: ${r.seconds} s, ` +
      `${r.settings.connections} connections, target ${r.settings.rate} req/s`,
    `throughput  ${money(r.throughputPerSecond)} answers/s (${money(r.requests)} requests)`,
    `latency     p50 ${r.latencyMs.p50} ms, p90 ${r.latencyMs.p90} ms, ` +
      `p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms`,
    `draws       ${r.draws.sent} sent, ${r.draws.granted} granted, ${r.draws.refused} ` +
      `refused, ${r.draws.released} released, ${r.draws.committed} committed`,
    `answers     ${Object.entries(r.answersByCode)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ')}`,
    `errors      ${r.errors} connection errors, ${r.timeouts} timeouts, ${r.answeredAfterRun} repeated after the run`,
    `invariants  ${r.invariants.ok ? 'OK' : 'FAILED'}`,
    ...r.invariants.checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`),
    `cleanup     ${r.cleanup.holdsLeft} holds left${r.cleanup.productClosed ? `, ${r.productId} closed` : ''}`,
  ].join('\n');
}
