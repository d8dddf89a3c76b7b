/**
 * `quota`: the operators' command line. `run` is the whole program: it parses
 * argv with commander, runs one command and answers its exit code, writing
 * only to the Io it is given (so tests can call it in-process).
 */
import { createRequire } from 'node:module';
import { QuotaClientError } from '@quota-allocator/client';
import { Command, CommanderError } from 'commander';
import { brokenCallError } from './connection.js';
import { CliError, EXIT } from './exitCodes.js';
import { processIo, type Io } from './io.js';
import { registerImport } from './commands/import.js';
import { registerProduct } from './commands/product.js';
import { registerWhy } from './commands/why.js';
import { registerSettlements } from './commands/settlements.js';
import { registerLoadtest } from './commands/loadtest.js';

/** What each command's action answers: its exit code (0 when it returns nothing). */
export type Action = (...args: any[]) => Promise<number | void>;

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

const EXIT_CODES_HELP = `
Exit codes: 0 ok, 1 failure (a refusal, rejected rows, a failed invariant), 2 usage,
3 auth (missing/unknown key, or the key's role may not), 4 not found, 5 unreachable or 503.
Connection: --url/--key or QUOTA_URL/QUOTA_API_KEY. Every command takes --json.`;

export async function run(argv: string[], io: Io = processIo()): Promise<number> {
  let exitCode: number = EXIT.OK;
  const program = new Command('quota')
    .description(
      'Operate a quota-allocator deployment: import lines, pause ' +
        'products, explain refusals, resolve settlements, load-test.',
    )
    .option('--url <url>', 'the deployment base URL (env QUOTA_URL)')
    .option('--key <key>', 'API key (env QUOTA_API_KEY)')
    .option('--json', 'print one JSON document instead of text')
    .option('--lang <lang>', 'language of refusal texts: en or zh (Accept-Language)', 'en')
    .option('--retries <n>', 'retries after a lost connection, timeout or 503', '3')
    .version(VERSION, '-V, --version')
    .addHelpText('after', EXIT_CODES_HELP)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .showHelpAfterError();

  // Every action runs through here: its answer is the exit code; a CliError is explained in one line.
  const wrap =
    (fn: Action) =>
    async (...args: unknown[]) => {
      exitCode = (await fn(...args)) ?? EXIT.OK;
    };
  const register = { io, wrap };
  registerImport(program, register);
  registerProduct(program, register);
  registerWhy(program, register);
  registerSettlements(program, register);
  registerLoadtest(program, register);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    return report(err, io, argv.includes('--json'));
  }
}

function report(err: unknown, io: Io, json: boolean): number {
  if (err instanceof CommanderError) {
    // --help and --version end through here too, with code 0.
    return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  }
  const failure = err instanceof CliError ? err : err instanceof QuotaClientError ? brokenCallError(err) : undefined;
  if (!failure) throw err;
  if (json)
    io.stdout.write(
      `${JSON.stringify({ error: failure.message, exitCode: failure.exitCode, ...failure.details }, null, 2)}\n`,
    );
  io.stderr.write(`quota: ${failure.message}\n`);
  return failure.exitCode;
}

export interface Registrar {
  io: Io;
  wrap: (fn: Action) => (...args: unknown[]) => Promise<void>;
}
