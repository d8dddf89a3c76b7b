import type { Command } from 'commander';
import { connect, type Connection, type ConnectionOptions } from '../connection.js';
import { CliError, EXIT } from '../exitCodes.js';
import type { Io } from '../io.js';

export interface GlobalOptions extends ConnectionOptions {
  json?: boolean;
  lang: string;
}

/** The options of a command merged with the program's (--url, --key, --json…). */
export function optionsOf<T>(command: Command): T & GlobalOptions {
  return command.optsWithGlobals() as T & GlobalOptions;
}

export function connectFrom(command: Command, io: Io): Connection {
  return connect(optionsOf(command), io);
}

/** An ISO time with a zone, or a duration from now such as 30m, 2h, 1d. */
export function parseWhen(value: string, option: string): string {
  const relative = /^(\d+)([smhd])$/.exec(value);
  if (relative) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(Date.now() + Number(relative[1]) * unit).toISOString();
  }
  const at = Date.parse(value);
  if (Number.isNaN(at) || !/(Z|[+-]\d\d:?\d\d)$/.test(value)) {
    throw new CliError(
      `${option} must be an ISO time with a zone (2026-06-18T12:00:00Z) or a duration (30m, 2h, 1d); got "${value}"`,
      EXIT.USAGE,
    );
  }
  return new Date(at).toISOString();
}

export function positiveInt(value: string, option: string, min = 1): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min)
    throw new CliError(`${option} must be a whole number of at least ${min}; got "${value}"`, EXIT.USAGE);
  return n;
}
