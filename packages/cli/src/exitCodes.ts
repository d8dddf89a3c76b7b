/** Exit codes scripts can rely on (documented in the README's "CLI" section and in `quota --help`). */
export const EXIT = {
  OK: 0,
  /** a refusal, rejected rows, a failed invariant, or any other failure */
  FAILURE: 1,
  /** wrong arguments or options */
  USAGE: 2,
  /** the key is missing, unknown (401) or may not do this (403) */
  AUTH: 3,
  /** no such product, line or reservation (404) */
  NOT_FOUND: 4,
  /** the deployment cannot be reached, or answers 503 after retries */
  UNREACHABLE: 5,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the CLI explains in one sentence and turns into an exit code (no stack trace). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}
