/**
 * Everything the run starts registers how to stop it here; the steps run in
 * reverse order at the end, on failure, and on SIGINT/SIGTERM. A last,
 * synchronous resort SIGKILLs any child process still alive when the
 * harness exits.
 */

type Step = { name: string; run: () => Promise<void> | void };

const steps: Step[] = [];
const childPids = new Set<number>();
let running: Promise<void> | undefined;

export function onCleanup(name: string, run: () => Promise<void> | void): () => void {
  const step = { name, run };
  steps.push(step);
  return () => {
    const i = steps.indexOf(step);
    if (i >= 0) steps.splice(i, 1);
  };
}

/** A child process to SIGKILL if the harness exits without having stopped it. */
export function trackChild(pid: number | undefined): void {
  if (pid !== undefined) childPids.add(pid);
}

export function untrackChild(pid: number | undefined): void {
  if (pid !== undefined) childPids.delete(pid);
}

export function runCleanup(): Promise<void> {
  running ??= (async () => {
    while (steps.length > 0) {
      const step = steps.pop()!;
      try {
        await withTimeout(Promise.resolve(step.run()), 20_000, step.name);
      } catch (err) {
        console.error(`cleanup: ${step.name} failed: ${(err as Error).message}`);
      }
    }
  })();
  return running;
}

function withTimeout<T>(p: Promise<T>, ms: number, name: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${name}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function installSignalHandlers(): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.error(
      `\nbench: ${signal}: stopping everything it started (the ` +
        `processes' logs stay in the work folder named at the start)`,
    );
    // Loads still running lose their connections now: that is expected, not a crash.
    process.on('unhandledRejection', () => {});
    void runCleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('exit', () => {
    for (const pid of childPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}
