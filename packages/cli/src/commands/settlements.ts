/**
 * `quota settlements unknown <product>`: the draws whose settlement outcome
 * is not known; `quota settlements resolve <product> <id> --outcome …`, or
 * many at once with `--file` (one reservation id per line, or NDJSON
 * `{ reservationId, outcome?, reason? }` rows overriding the options).
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { QuotaClient, Reservation } from '@quota-allocator/client';
import type { Command } from 'commander';
import { valueOf } from '../connection.js';
import { CliError, EXIT } from '../exitCodes.js';
import { emit, money } from '../io.js';
import type { Registrar } from '../main.js';
import { connectFrom, optionsOf } from './common.js';

type Outcome = 'settled' | 'reversed';

interface ResolveRequest {
  reservationId: string;
  outcome: Outcome;
  reason?: string;
}

interface ResolveResult extends ResolveRequest {
  ok: boolean;
  status?: string;
  code?: string;
  detail?: string;
}

export function registerSettlements(program: Command, { io, wrap }: Registrar): void {
  const settlements = program
    .command('settlements')
    .description('draws whose settlement outcome is unknown, and resolving them');

  settlements
    .command('unknown <product>')
    .description('list the reservations in settlement_unknown (oldest first)')
    .action(
      wrap(async (productId: string, _opts: unknown, command: Command) => {
        const { client } = connectFrom(command, io);
        const items = await listAll(client, productId);
        emit(io, !!optionsOf(command).json, { productId, count: items.length, items }, () =>
          items.length === 0
            ? `no unknown settlements in ${productId}`
            : [`${items.length} unknown settlement(s) in ${productId}:`, ...items.map(describe)].join('\n'),
        );
      }),
    );

  settlements
    .command('resolve <product> [reservationId]')
    .description(
      'record what the ledger really did: settled (it took the money) or reversed (it never did; quota returned)',
    )
    .option('--outcome <outcome>', 'settled or reversed')
    .option('--reason <text>', 'why (kept in the reservation’s events)')
    .option('--file <path>', 'batch: one reservation id per line, or NDJSON {reservationId, outcome?, reason?}')
    .action(
      wrap(
        async (
          productId: string,
          reservationId: string | undefined,
          opts: { outcome?: string; reason?: string; file?: string },
          command: Command,
        ) => {
          const { client } = connectFrom(command, io);
          if (!reservationId && !opts.file) throw new CliError('give a reservation id or --file', EXIT.USAGE);
          if (reservationId && opts.file)
            throw new CliError('give either a reservation id or --file, not both', EXIT.USAGE);
          const defaults = { outcome: opts.outcome, reason: opts.reason };
          const requests = opts.file
            ? await readBatch(opts.file, defaults)
            : [request({ reservationId: reservationId! }, defaults, 'the command line')];
          // Check the product first, so a wrong product is one clear error, not one per row.
          valueOf(await client.getProduct(productId), `product ${productId}`);

          const results: ResolveResult[] = [];
          for (const r of requests) {
            const answer = await client.admin.resolve(productId, r.reservationId, r.outcome, r.reason);
            if (answer.ok) results.push({ ...r, ok: true, status: answer.value.status });
            else if (answer.problem.status === 401 || answer.problem.status === 403)
              valueOf(answer, `resolve ${r.reservationId}`);
            else results.push({ ...r, ok: false, code: answer.problem.code, detail: answer.problem.detail });
          }
          const failed = results.filter((r) => !r.ok).length;
          emit(io, !!optionsOf(command).json, { productId, resolved: results.length - failed, failed, results }, () =>
            results
              .map((r) =>
                r.ok ? `${r.reservationId}: ${r.status}` : `${r.reservationId}: not resolved, ${r.code}: ${r.detail}`,
              )
              .join('\n'),
          );
          if (failed > 0)
            return requests.length === 1 && results[0]?.code?.endsWith('NOT_FOUND') ? EXIT.NOT_FOUND : EXIT.FAILURE;
        },
      ),
    );
}

async function listAll(client: QuotaClient, productId: string): Promise<Reservation[]> {
  const items: Reservation[] = [];
  let cursor: string | undefined;
  do {
    const page = valueOf(
      await client.admin.listReservations(productId, 'settlement_unknown', {
        limit: 500,
        ...(cursor ? { cursor } : {}),
      }),
      `unknown settlements of ${productId}`,
    );
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return items;
}

function describe(r: Reservation): string {
  return (
    `  ${r.reservationId}  customer ${r.customerId}  ${money(r.committedAmount)}  committed ` +
    `${String(r.committedAt ?? '-')}  attempts ${r.attempts}  ${r.lastError ?? ''}`
  );
}

async function readBatch(
  path: string,
  defaults: { outcome?: string | undefined; reason?: string | undefined },
): Promise<ResolveRequest[]> {
  const requests: ResolveRequest[] = [];
  let n = 0;
  try {
    for await (const text of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
      n++;
      const line = text.trim();
      if (line === '' || line.startsWith('#')) continue;
      let row: Partial<ResolveRequest>;
      try {
        row = line.startsWith('{') ? (JSON.parse(line) as Partial<ResolveRequest>) : { reservationId: line };
      } catch {
        throw new CliError(`${path}:${n}: not valid JSON`, EXIT.USAGE);
      }
      requests.push(request(row, defaults, `${path}:${n}`));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CliError(`no such file: ${path}`, EXIT.USAGE);
    throw err;
  }
  return requests;
}

function request(
  row: Partial<ResolveRequest>,
  defaults: { outcome?: string | undefined; reason?: string | undefined },
  where: string,
): ResolveRequest {
  const outcome = row.outcome ?? defaults.outcome;
  if (typeof row.reservationId !== 'string' || row.reservationId === '')
    throw new CliError(`${where}: no reservation id`, EXIT.USAGE);
  if (outcome !== 'settled' && outcome !== 'reversed')
    throw new CliError(`${where}: --outcome must be settled or reversed`, EXIT.USAGE);
  const reason = row.reason ?? defaults.reason;
  return { reservationId: row.reservationId, outcome, ...(reason ? { reason } : {}) };
}
