/**
 * `quota import`'s progress bar, as an operator sees it: the built bin run
 * under a pseudo-terminal (util-linux's `script`), since the bar is drawn only
 * when stderr is a terminal. Each frame shows rows, rows/s and an ETA; the
 * last one is 100%. The same import through a pipe draws no bar and prints
 * checkpoint lines instead.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { QuotaClient } from '@quota-allocator/client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { uniqueId } from '../../support/engineContext.js';
import { ADMIN_KEY, startServiceContext, type ServiceContext } from '../../support/serviceContext.js';

const execFileAsync = promisify(execFile);
const BIN = 'packages/cli/bin/quota.js';
const ROWS = 50_000;

let svc: ServiceContext;
let api: QuotaClient;
const tmp = mkdtempSync(join(tmpdir(), 'qa-progress-'));
beforeAll(async () => {
  svc = await startServiceContext({ ROLE: 'api' });
  api = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: ADMIN_KEY });
});
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await svc?.stop();
});

const env = () => ({ ...process.env, QUOTA_URL: svc.baseUrl, QUOTA_API_KEY: ADMIN_KEY });
const shellQuote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

/** The bin under a pseudo-terminal: `script` runs it on a pty and copies what it draws to stdout. */
async function quotaOnATerminal(args: string[]): Promise<string> {
  // Missing `script` must fail this test, not skip it (Debian: package bsdutils, from util-linux).
  await execFileAsync('script', ['--version']).catch((err: unknown) => {
    throw new Error(
      `util-linux's \`script\` (Debian: bsdutils) is needed to run the CLI on a pseudo-terminal: ${String(err)}`,
    );
  });
  const command = [process.execPath, BIN, ...args].map(shellQuote).join(' ');
  // -q: no "Script started" lines; -f: flush each write; -e: the bin's exit code; -c: the command.
  const { stdout } = await execFileAsync('script', ['-qfec', command, '/dev/null'], { env: env(), timeout: 120_000 });
  return stdout;
}

interface Frame {
  percent: number;
  value: number;
  total: number;
  speed: number;
  eta: string;
}

/** Each redraw of the bar (cli-progress moves to column 1 and rewrites the line), escape sequences removed. */
function framesOf(output: string): Frame[] {
  const frames: Frame[] = [];
  for (const part of output.split('\x1b[1G')) {
    // eslint-disable-next-line no-control-regex
    const text = part.replace(/\x1b(\[[0-9;?]*[A-Za-z]|[78])/g, '');
    const m = /(\d+)% \| (\d+)\/(\d+) rows \| (\d+) rows\/s \| ETA (\S+)/.exec(text);
    if (m) frames.push({ percent: +m[1]!, value: +m[2]!, total: +m[3]!, speed: +m[4]!, eta: m[5]! });
  }
  return frames;
}

it('on a terminal the import draws a bar with rows/s and an ETA that reaches 100%', async () => {
  const p = uniqueId('imp');
  expect((await api.admin.putProduct(p, { capacity: 1_000_000_000 })).ok).toBe(true);
  const file = join(tmp, 'progress.ndjson');
  const lines: string[] = [];
  for (let i = 1; i <= ROWS; i++) lines.push(JSON.stringify({ customerId: `c${i}`, limit: 1_000 + i }));
  writeFileSync(file, `${lines.join('\n')}\n`);

  // Small chunks, one at a time: many updates, so the bar is redrawn while the import runs.
  const output = await quotaOnATerminal(['import', p, file, '--chunk-rows', '500', '--parallel', '1']);
  const frames = framesOf(output);
  expect(frames.length, output.slice(-2_000)).toBeGreaterThanOrEqual(3);
  expect(frames.every((f) => f.total === ROWS)).toBe(true);
  const values = frames.map((f) => f.value);
  expect(values).toEqual([...values].sort((a, b) => a - b)); // never goes back

  // While running: a measured rate and an estimate of the time left.
  const running = frames.filter((f) => f.value > 0 && f.value < ROWS);
  expect(running.length, output.slice(-2_000)).toBeGreaterThanOrEqual(1);
  for (const f of running) {
    expect(f.speed).toBeGreaterThan(0);
    expect(f.eta).toMatch(/^(\d+h)?(\d+m)?\d+s$/);
  }
  expect(frames.at(-1)).toMatchObject({ percent: 100, value: ROWS, speed: expect.any(Number), eta: '0s' });
  expect(frames.at(-1)!.speed).toBeGreaterThan(0);

  // On a terminal the bar replaces the checkpoint lines; the summary follows it; the rows landed.
  expect(output).not.toMatch(/checkpoint: /);
  expect(output).toMatch(/imported\s+50,000 rows into/);
  expect(await api.getLine(p, `c${ROWS}`)).toMatchObject({ ok: true, value: { limit: 1_000 + ROWS } });
});

it('through a pipe the same import draws no bar and prints checkpoint lines instead', async () => {
  const p = uniqueId('imp');
  expect((await api.admin.putProduct(p, { capacity: 1_000_000 })).ok).toBe(true);
  const file = join(tmp, 'piped.ndjson');
  writeFileSync(file, '{"customerId":"a","limit":1}\n{"customerId":"b","limit":2}\n{"customerId":"c","limit":3}\n');
  const { stderr } = await execFileAsync(process.execPath, [BIN, 'import', p, file, '--chunk-rows', '2'], {
    env: env(),
  });
  expect(framesOf(stderr)).toEqual([]);
  expect(stderr).toMatch(/^checkpoint: 2 rows sent, resume with --from-line 3$/m);
});
