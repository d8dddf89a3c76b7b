/**
 * `npm run ledger`: the test ledger as a process, for demos, benchmarks and
 * docker-compose (node dist/testLedger/main.js).
 * Configured by the environment only (checked by zod; a bad value stops the
 * start naming the variable), one log line per settlement request, stops on
 * SIGTERM/SIGINT. Faults can still be changed at run time: POST /_control.
 */
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { z } from 'zod';
import { createLedgerServer, type LedgerServerOptions } from './ledgerServer.js';

const rate = z.coerce.number().min(0).max(1);

const schema = z.object({
  LEDGER_PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  LEDGER_HOST: z.string().min(1).default('0.0.0.0'),
  SETTLEMENT_SECRET: z.string().min(16),
  LEDGER_FAIL_RATE: rate.default(0),
  LEDGER_REJECT_RATE: rate.default(0),
  LEDGER_HANG_RATE: rate.optional(),
  LEDGER_HANG_MS: z.coerce.number().int().min(0).max(3_600_000).optional(),
  LEDGER_SEED: z.coerce.number().int().default(1),
  LEDGER_DUPLICATE_STATUS: z.enum(['200', '409']).default('200'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export class LedgerConfigError extends Error {}

export interface LedgerConfig {
  options: Omit<LedgerServerOptions, 'onEvent'>;
  logLevel: string;
}

export function parseLedgerEnv(env: Record<string, string | undefined>): LedgerConfig {
  // As in src/config.ts: an empty variable is an unset one.
  const set = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(set);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new LedgerConfigError(`invalid ledger configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    logLevel: e.LOG_LEVEL,
    options: {
      secret: e.SETTLEMENT_SECRET,
      port: e.LEDGER_PORT,
      host: e.LEDGER_HOST,
      seed: e.LEDGER_SEED,
      duplicateStatus: e.LEDGER_DUPLICATE_STATUS === '409' ? 409 : 200,
      failRate: e.LEDGER_FAIL_RATE,
      rejectRate: e.LEDGER_REJECT_RATE,
      // A hang rate alone means "hang long enough for any client timeout"; a hang time alone hangs every delivery.
      hangRate: e.LEDGER_HANG_RATE ?? 1,
      hangAfterRecordMs: e.LEDGER_HANG_MS ?? (e.LEDGER_HANG_RATE ? 30_000 : 0),
    },
  };
}

export async function main(): Promise<void> {
  let config: LedgerConfig;
  try {
    config = parseLedgerEnv(process.env);
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  }
  const logger = pino({
    level: config.logLevel,
    base: { service: 'ledger' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
  const ledger = createLedgerServer({
    ...config.options,
    onEvent: (event) => logger.info(event, event.method === 'POST' ? 'delivery' : 'lookup'),
  });
  try {
    await ledger.start();
  } catch (err) {
    logger.fatal({ err }, 'ledger could not start');
    process.exit(1);
  }
  const { seed, duplicateStatus } = config.options;
  logger.info({ url: ledger.url, seed, duplicateStatus, faults: ledger.control({}) }, 'ledger listening');

  const shutdown = (signal: string) => {
    logger.info({ signal, stats: ledger.stats() }, 'ledger stopping');
    ledger.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'ledger stop failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
