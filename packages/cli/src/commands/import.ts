/**
 * `quota import <product> <file>`: credit lines from NDJSON or CSV, streamed
 * through the bulk route in chunks. After each chunk lands, a checkpoint
 * (the next line to send) is written to `<file>.checkpoint.json` and printed,
 * so an interrupted import resumes with `--from-line`; rows are upserts, so
 * resending a chunk that had landed is harmless. Rejected rows go to
 * `<file>.rejected.ndjson` with their line numbers in the file.
 */
import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
import { QuotaClientError, type QuotaClient } from '@quota-allocator/client';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { brokenCallError, valueOf } from '../connection.js';
import { CliError, EXIT } from '../exitCodes.js';
import { emit, money, table, type Io } from '../io.js';
import type { Registrar } from '../main.js';
import { checkRow, countLines, formatOf, readRows, type FileRow } from '../rows.js';
import { connectFrom, optionsOf, positiveInt } from './common.js';

interface ImportOptions {
  format?: string;
  fromLine: string;
  chunkRows: string;
  parallel: string;
  rejects?: string;
  checkpoint?: string;
  dryRun?: boolean;
}

interface Rejection {
  line: number;
  code: string;
  detail: string;
}

export function registerImport(program: Command, { io, wrap }: Registrar): void {
  program
    .command('import <product> <file>')
    .description(
      'import credit lines (NDJSON or CSV with a header row) through the bulk route, with progress and resume',
    )
    .option('--format <format>', 'ndjson or csv (default: from the file name)')
    .option('--from-line <n>', 'resume: start at this line of the file (from the last checkpoint)', '1')
    .option('--chunk-rows <n>', 'rows per bulk request (each chunk is one checkpoint)', '5000')
    .option('--parallel <n>', 'bulk requests in flight at once', '2')
    .option('--rejects <path>', 'where rejected rows are written (default <file>.rejected.ndjson)')
    .option('--checkpoint <path>', 'where the checkpoint is written (default <file>.checkpoint.json)')
    .option('--dry-run', 'check every row locally as the service would; send nothing')
    .action(
      wrap(async (productId: string, file: string, opts: ImportOptions, command: Command) => {
        if (!existsSync(file)) throw new CliError(`no such file: ${file}`, EXIT.USAGE);
        const json = !!optionsOf(command).json;
        const run = {
          productId,
          file,
          format: formatOf(file, opts.format),
          fromLine: positiveInt(opts.fromLine, '--from-line'),
          chunkRows: positiveInt(opts.chunkRows, '--chunk-rows'),
          parallel: positiveInt(opts.parallel, '--parallel'),
          rejectsFile: opts.rejects ?? `${file}.rejected.ndjson`,
          checkpointFile: opts.checkpoint ?? `${file}.checkpoint.json`,
        };
        // A fresh import starts a fresh rejects file; a resumed one adds to it.
        if (run.fromLine === 1) writeFileSync(run.rejectsFile, '');
        const client = opts.dryRun ? undefined : connectFrom(command, io).client;
        if (client) valueOf(await client.getProduct(productId), `product ${productId}`);

        const total = Math.max(0, (await countLines(file)) - (run.format === 'csv' ? 1 : 0) - (run.fromLine - 1));
        const progress = createProgress(io, total);
        const started = performance.now();
        let sent = 0;
        let upserted = 0;
        let rejected = 0;
        let nextLine = run.fromLine;
        const reject = (r: Rejection) => {
          rejected++;
          appendFileSync(run.rejectsFile, `${JSON.stringify(r)}\n`);
        };

        // A chunk's result is booked, and the checkpoint moved past it, only once every
        // earlier chunk is booked too: chunks go out `--parallel` at a time, but the
        // checkpoint never skips a chunk that has not landed.
        const book = (chunk: FileRow[], summary: { upserted: number; rejected: Rejection[] }) => {
          upserted += summary.upserted;
          for (const r of summary.rejected) reject(r);
          sent += chunk.length;
          nextLine = chunk[chunk.length - 1]!.line + 1;
          if (client) {
            writeFileSync(
              run.checkpointFile,
              `${JSON.stringify({ productId, file, nextLine, upserted, rejected, at: new Date().toISOString() })}\n`,
            );
            if (!progress) io.stderr.write(`checkpoint: ${sent} rows sent, resume with --from-line ${nextLine}\n`);
          }
          progress?.update(sent);
        };
        const inFlight: { chunk: FileRow[]; answer: Promise<{ upserted: number; rejected: Rejection[] }> }[] = [];
        const bookOldest = async () => {
          const oldest = inFlight.shift()!;
          book(oldest.chunk, await oldest.answer);
        };
        const send = async (chunk: FileRow[]) => {
          if (chunk.length === 0) return;
          const answer = client ? sendChunk(client, productId, chunk) : Promise.resolve(checkLocally(chunk));
          // awaited in order by bookOldest; this only keeps a later chunk's failure from being "unhandled" meanwhile
          answer.catch(() => {});
          inFlight.push({ chunk, answer });
          if (inFlight.length >= run.parallel) await bookOldest();
        };

        try {
          let chunk: FileRow[] = [];
          for await (const row of readRows(file, run.format)) {
            if (row.line < run.fromLine) continue;
            chunk.push(row);
            if (chunk.length >= run.chunkRows) {
              await send(chunk);
              chunk = [];
            }
          }
          await send(chunk);
          while (inFlight.length > 0) await bookOldest();
        } catch (err) {
          // Whatever stopped the import, say where to pick it up.
          const failure =
            err instanceof CliError ? err : err instanceof QuotaClientError ? brokenCallError(err) : undefined;
          if (!failure || opts.dryRun) throw err;
          throw new CliError(
            `${failure.message}; rows before line ${nextLine} are in: resume with --from-line ${nextLine}`,
            failure.exitCode,
            { ...failure.details, nextLine },
          );
        } finally {
          progress?.stop();
        }

        const seconds = (performance.now() - started) / 1000;
        const summary = {
          productId,
          file,
          dryRun: !!opts.dryRun,
          fromLine: run.fromLine,
          rows: sent,
          [opts.dryRun ? 'valid' : 'upserted']: upserted,
          rejected,
          rejectsFile: rejected > 0 ? run.rejectsFile : null,
          checkpointFile: client ? run.checkpointFile : null,
          nextLine,
          seconds: Number(seconds.toFixed(3)),
          rowsPerSecond: Math.round(sent / Math.max(seconds, 0.001)),
        };
        emit(io, json, summary, () =>
          table([
            [opts.dryRun ? 'checked' : 'imported', `${money(sent)} rows into ${productId} (from line ${run.fromLine})`],
            [opts.dryRun ? 'valid' : 'upserted', money(upserted)],
            ['rejected', rejected > 0 ? `${money(rejected)} (see ${run.rejectsFile})` : '0'],
            ['rate', `${money(summary.rowsPerSecond)} rows/s over ${seconds.toFixed(1)} s`],
          ]),
        );
        return rejected > 0 ? EXIT.FAILURE : EXIT.OK;
      }),
    );
}

/** --dry-run: the contract's row rules, checked here. */
function checkLocally(chunk: FileRow[]): { upserted: number; rejected: Rejection[] } {
  const rejected: Rejection[] = [];
  for (const row of chunk) {
    const problem = checkRow(row.text);
    if (problem) rejected.push({ line: row.line, code: 'INVALID_REQUEST', detail: problem });
  }
  return { upserted: chunk.length - rejected.length, rejected };
}

/** One chunk through the bulk route; the answer's line numbers (of the body) mapped back to the file's. */
async function sendChunk(
  client: QuotaClient,
  productId: string,
  chunk: FileRow[],
): Promise<{ upserted: number; rejected: Rejection[] }> {
  const body = chunk.map((row) => `${row.text}\n`);
  const answer = valueOf(await client.admin.bulkImport(productId, body), `bulk import into ${productId}`);
  const rejected = answer.rejected.map((r) => ({ ...r, line: chunk[r.line - 1]?.line ?? r.line }));
  // A chunk is far below the service's report cap, but say so if rows went unlisted.
  const unlisted = (answer.rejectedCount ?? answer.rejected.length) - answer.rejected.length;
  for (let i = 0; i < unlisted; i++)
    rejected.push({ line: 0, code: 'UNLISTED', detail: 'rejected; the service did not list the row' });
  return { upserted: answer.upserted, rejected };
}

function createProgress(io: Io, total: number): cliProgress.SingleBar | undefined {
  // Only on a terminal: in a pipe or a log, the checkpoint lines are the progress.
  if (!io.stderr.isTTY) return undefined;
  const bar = new cliProgress.SingleBar(
    {
      stream: io.stderr as NodeJS.WritableStream,
      format: ' {bar} {percentage}% | {value}/{total} rows | {speed} rows/s | ETA {eta_formatted}',
      etaBuffer: 50,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  bar.start(total, 0, { speed: 0 });
  const update = bar.update.bind(bar);
  bar.update = ((value: number) =>
    update(value, {
      speed: Math.round(value / Math.max((performance.now() - started) / 1000, 0.001)),
    })) as typeof bar.update;
  return bar;
}
