/**
 * Loads credit lines through the service's bulk import (POST
 * …/customers:bulk), as an operator would: one streamed NDJSON body per
 * product, written in chunks with back-pressure, with a progress bar over
 * the rows sent. The service answers once every row has landed.
 */
import { once } from 'node:events';
import { request } from 'node:http';
import cliProgress from 'cli-progress';
import { ADMIN_KEY } from './api.js';

export interface LineRow {
  customerId: string;
  limit: number;
}

export interface ImportJob {
  productId: string;
  rows: LineRow[];
}

export interface ImportResult {
  rows: number;
  upserted: number;
  rejected: number;
  seconds: number;
  rowsPerSecond: number;
}

const ROWS_PER_CHUNK = 1_000;

export async function bulkImport(baseUrl: string, jobs: ImportJob[], title: string): Promise<ImportResult> {
  const total = jobs.reduce((s, j) => s + j.rows.length, 0);
  const bar = new cliProgress.SingleBar(
    {
      format: `  ${title} [{bar}] {percentage}% | {value}/{total} lines | {rate} lines/s`,
      noTTYOutput: true,
      notTTYSchedule: 2_000,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  bar.start(total, 0, { rate: 0 });
  let sent = 0;
  let upserted = 0;
  let rejected = 0;
  try {
    for (const job of jobs) {
      const answer = await streamOne(baseUrl, job, (n) => {
        sent += n;
        bar.update(sent, { rate: Math.round(sent / ((performance.now() - started) / 1000)) });
      });
      upserted += Number(answer.upserted);
      rejected += Number(answer.rejectedCount);
    }
  } finally {
    bar.update(sent, { rate: Math.round(sent / ((performance.now() - started) / 1000)) });
    bar.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  return { rows: total, upserted, rejected, seconds, rowsPerSecond: Math.round(total / seconds) };
}

async function streamOne(
  baseUrl: string,
  job: ImportJob,
  progress: (rows: number) => void,
): Promise<{ upserted: number; rejectedCount: number }> {
  const url = new URL(`/v1/products/${job.productId}/customers:bulk`, baseUrl);
  const req = request(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${ADMIN_KEY}`,
      'content-type': 'application/x-ndjson',
      'transfer-encoding': 'chunked',
    },
  });
  const answered = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
  for (let i = 0; i < job.rows.length; i += ROWS_PER_CHUNK) {
    const slice = job.rows.slice(i, i + ROWS_PER_CHUNK);
    const chunk = slice.map((r) => JSON.stringify(r)).join('\n') + '\n';
    if (!req.write(chunk)) await once(req, 'drain');
    progress(slice.length);
  }
  req.end();
  const { status, text } = await answered;
  if (status !== 200) throw new Error(`bulk import of ${job.productId}: ${status} ${text.slice(0, 500)}`);
  const body = JSON.parse(text) as { upserted: number; rejectedCount: number; rejected: unknown[] };
  if (body.rejectedCount > 0)
    throw new Error(
      `bulk import of ${job.productId}: ${body.rejectedCount} rows ` +
        `rejected, e.g. ${JSON.stringify(body.rejected.slice(0, 3))}`,
    );
  return body;
}
