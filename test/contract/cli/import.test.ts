/**
 * `quota import` of 100,000 rows, as an operator runs it: the built bin in a
 * child process, killed (SIGKILL) after a few checkpoints, then resumed with
 * --from-line from the checkpoint it wrote. Every row lands; the three bad
 * rows planted in the file are reported with their line numbers.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QuotaClient } from '@quota-allocator/client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createEngineContext, uniqueId, type EngineContext } from '../../support/engineContext.js';
import { ADMIN_KEY, startServiceContext, type ServiceContext } from '../../support/serviceContext.js';

const ROWS = 100_000;
const BAD_LINES = new Set([7, 50_001, 99_999]);
const BIN = 'packages/cli/bin/quota.js';

let svc: ServiceContext;
let engineContext: EngineContext;
const tmp = mkdtempSync(join(tmpdir(), 'qa-import-'));
beforeAll(async () => {
  svc = await startServiceContext({ ROLE: 'api' });
  engineContext = await createEngineContext(svc.keyPrefix);
});
afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await engineContext?.close();
  await svc?.stop();
});

const customer = (line: number) => `cust-${line}`;
const limitOf = (line: number) => 1_000 + (line % 997) * 100;

interface Child {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin; `onStderr` may kill it. */
function quotaBin(args: string[], onStderr?: (text: string, kill: () => void) => void): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, QUOTA_URL: svc.baseUrl, QUOTA_API_KEY: ADMIN_KEY },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      onStderr?.(stderr, () => child.kill('SIGKILL'));
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

it(
  '100,000 rows: killed mid-way, resumed from its checkpoint with ' +
    '--from-line; every row lands once the run completes',
  async () => {
    const p = uniqueId('imp');
    const api = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: ADMIN_KEY });
    expect((await api.admin.putProduct(p, { capacity: 1_000_000_000 })).ok).toBe(true);

    const file = join(tmp, 'launch-lines.ndjson');
    const lines: string[] = [];
    for (let line = 1; line <= ROWS; line++) {
      lines.push(
        BAD_LINES.has(line)
          ? `{"customerId":"${customer(line)}","limit":"lots"}`
          : JSON.stringify({ customerId: customer(line), limit: limitOf(line), tier: line % 10 === 0 ? 'gold' : null }),
      );
    }
    writeFileSync(file, `${lines.join('\n')}\n`);

    // First run: killed once three chunks (15,000 rows) have been checkpointed.
    const started = performance.now();
    const first = await quotaBin(['import', p, file, '--chunk-rows', '5000'], (text, kill) => {
      if ((text.match(/^checkpoint: /gm) ?? []).length >= 3) kill();
    });
    expect(first.signal, first.stderr).toBe('SIGKILL');
    const printed = [...first.stderr.matchAll(/resume with --from-line (\d+)/g)].map((m) => Number(m[1]));
    const checkpoint = JSON.parse(readFileSync(`${file}.checkpoint.json`, 'utf8')) as {
      nextLine: number;
      upserted: number;
    };
    expect(printed.slice(0, 3)).toEqual([5_001, 10_001, 15_001]);
    expect(checkpoint.nextLine).toBeGreaterThanOrEqual(printed[printed.length - 1]!);
    expect(checkpoint.nextLine).toBeLessThan(ROWS);

    // Resume where the checkpoint says.
    const second = await quotaBin([
      'import',
      p,
      file,
      '--chunk-rows',
      '5000',
      '--from-line',
      String(checkpoint.nextLine),
      '--json',
    ]);
    const seconds = (performance.now() - started) / 1000;
    expect(second.code, second.stderr).toBe(1); // rows were rejected: exit 1, listed in the rejects file
    const summary = JSON.parse(second.stdout);
    expect(summary).toMatchObject({
      fromLine: checkpoint.nextLine,
      rows: ROWS - checkpoint.nextLine + 1,
      nextLine: ROWS + 1,
    });
    console.info(
      `import: 100,000 rows in ${seconds.toFixed(1)} s including the kill and the resume ` +
        `(~${Math.round(ROWS / seconds)} rows/s); the resumed run: ${summary.rows} rows at ` +
        `${summary.rowsPerSecond} rows/s`,
    );

    // The bad rows, with their lines in the file (a chunk resent after the kill may list one twice: rows are upserts).
    const rejected = readFileSync(`${file}.rejected.ndjson`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { line: number; code: string });
    expect(new Set(rejected.map((r) => r.line))).toEqual(BAD_LINES);
    expect(rejected.every((r) => r.code === 'INVALID_REQUEST')).toBe(true);

    // Every good row is a line in Redis (a field of the product's lines hash, all 100,000), and a sample reads back
    // right through the API.
    const { redis, keys } = engineContext;
    let missing = 0;
    for (let from = 1; from <= ROWS; from += 10_000) {
      const pipeline = redis.pipeline();
      for (let line = from; line < from + 10_000; line++) pipeline.hexists(keys.lines(p), customer(line));
      const answers = (await pipeline.exec()) ?? [];
      answers.forEach(([, exists], i) => {
        const line = from + i;
        if ((exists === 1) === BAD_LINES.has(line)) missing++;
      });
    }
    expect(missing).toBe(0);
    for (const line of [1, checkpoint.nextLine - 1, checkpoint.nextLine, 77_770, ROWS]) {
      const got = await api.getLine(p, customer(line));
      expect(got.ok && [got.value.limit, got.value.tier]).toEqual([limitOf(line), line % 10 === 0 ? 'gold' : null]);
    }
  },
  80_000,
);
