/**
 * Waiting in tests and the bench: a pause, and polling with a deadline that
 * says what it waited for (and why it may not have come) when it gives up.
 * No vitest here: bench/ uses it too.
 */

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Probe this often (default 100 ms). */
  everyMs?: number;
  /** What explains a timeout (logs, state); added to the error. */
  explain?: () => string | Promise<string>;
}

/**
 * Calls `probe` until it answers a value (not undefined, not false) and
 * returns that value. A probe that throws is tried again (a service not up
 * yet); the last error is named if the deadline passes.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: WaitOptions = {},
): Promise<T> {
  const { timeoutMs = 30_000, everyMs = 100, explain } = options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError ? ` (last error: ${(lastError as Error).message ?? String(lastError)})` : '';
      const more = explain ? `\n${await explain()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${more}`);
    }
    await sleep(everyMs);
  }
}

/** Reads until `done` holds for what was read; a timeout names the last value read. */
export async function waitUntil<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  options: Omit<WaitOptions, 'explain'> = {},
): Promise<T> {
  let last: T | undefined;
  return waitFor(what, async () => ((last = await read()), done(last) ? { value: last } : undefined), {
    ...options,
    explain: () => `last value: ${JSON.stringify(last)?.slice(0, 2_000)}`,
  }).then((hit) => hit.value);
}
