/**
 * NDJSON bulk import of credit lines. The body is streamed line by line and
 * never held whole; valid rows go to Redis in batches (one atomic script call
 * per batch, a few batches in flight); each bad row is reported with its line
 * number while the good rows land.
 */
import { Transform } from 'node:stream';
import { createInterface } from 'node:readline';
import { Router, type Request } from 'express';
import type { QuotaEngine } from '../../engine/quotaEngine.js';
import type { LineConfig } from '../../engine/types.js';
import type { RequireRole } from '../auth.js';
import { MAX_JSON_DEPTH, jsonDepthExceeds } from '../jsonDepth.js';
import { problem } from '../problems.js';
import { bodyTimedOut, DEFAULT_BODY_TIMEOUT_MS, HttpProblem, parse, sendRefusal } from '../respond.js';
import { bulkLineRow, productParams } from '../schemas.js';

const BATCH_SIZE = 500;
const BATCHES_IN_FLIGHT = 4;
/** The answer lists at most this many rejected rows (rejectedCount is always exact). */
const MAX_REPORTED_REJECTIONS = 10_000;

interface Rejection {
  line: number;
  code: string;
  detail: string;
}

export function bulkImportRoutes(
  engine: QuotaEngine,
  requireRole: RequireRole,
  bulkLimitBytes: number,
  bodyTimeoutMs: number = DEFAULT_BODY_TIMEOUT_MS,
): Router {
  const router = Router();

  router.post('/v1/products/:productId/customers\\:bulk', requireRole('admin'), async (req, res) => {
    const { productId } = parse(productParams, req.params, 'path');
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > bulkLimitBytes) throw tooLarge(bulkLimitBytes);
    const pool = await engine.readPool(productId);
    if (!pool.ok) return sendRefusal(res, pool);

    let upserted = 0;
    let rejectedCount = 0;
    const rejected: Rejection[] = [];
    const reject = (r: Rejection) => {
      rejectedCount++;
      if (rejected.length < MAX_REPORTED_REJECTIONS) rejected.push(r);
    };

    const inFlight: Promise<void>[] = [];
    const flush = (batch: { line: number; row: LineConfig }[]) => {
      const landed = engine
        .upsertLines(
          productId,
          batch.map((b) => b.row),
        )
        .then((outcome) => {
          if (outcome.ok) upserted += batch.length;
          else
            for (const b of batch) reject({ line: b.line, code: outcome.code, detail: 'the product no longer exists' });
        });
      landed.catch(() => {}); // awaited below; this only keeps an early failure from being "unhandled"
      inFlight.push(landed);
    };

    let batch: { line: number; row: LineConfig }[] = [];
    let lineNumber = 0;
    for await (const line of createInterface({
      input: limitBytes(req, bulkLimitBytes, bodyTimeoutMs),
      crlfDelay: Infinity,
    })) {
      lineNumber++;
      // Spreadsheet exports often start the file with a UTF-8 byte order mark.
      const text = lineNumber === 1 && line.startsWith('\uFEFF') ? line.slice(1) : line;
      if (text.trim() === '') continue;
      const row = parseRow(text, lineNumber);
      if ('code' in row) {
        reject(row);
        continue;
      }
      batch.push({ line: lineNumber, row });
      if (batch.length === BATCH_SIZE) {
        flush(batch);
        batch = [];
        if (inFlight.length >= BATCHES_IN_FLIGHT) await inFlight.shift();
      }
    }
    if (batch.length > 0) flush(batch);
    await Promise.all(inFlight);
    res.status(200).json({ upserted, rejected, rejectedCount, rejectedTruncated: rejectedCount > rejected.length });
  });

  return router;
}

/**
 * One row: its own JSON value, checked like a request body (nesting limit
 * first, then the schema). Whatever goes wrong with a row makes it a rejected
 * row, never an error for the whole import.
 */
function parseRow(text: string, line: number): LineConfig | Rejection {
  if (jsonDepthExceeds(text))
    return { line, code: 'INVALID_REQUEST', detail: `the line is nested deeper than ${MAX_JSON_DEPTH} levels` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { line, code: 'INVALID_REQUEST', detail: 'the line is not valid JSON' };
  }
  try {
    return parse(bulkLineRow, value, 'body');
  } catch (err) {
    const detail = err instanceof HttpProblem ? err.message.replace(/body\./g, '') : 'the line could not be read';
    return { line, code: 'INVALID_REQUEST', detail };
  }
}

function tooLarge(limit: number): HttpProblem {
  return new HttpProblem(
    problem('PAYLOAD_TOO_LARGE', { message: `a bulk import body may be at most ${limit} bytes`, limitBytes: limit }),
  );
}

/**
 * Passes the body through, failing with 413 once more than `limit` bytes
 * arrived, and with 408 when no byte arrived for `idleMs` (a bulk body may
 * stream for long, but not stall: rows before the stall have landed and are
 * safe to send again, an upsert being idempotent).
 */
function limitBytes(req: Request, limit: number, idleMs: number): Transform {
  let seen = 0;
  let idle: NodeJS.Timeout | undefined;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      armIdle();
      seen += chunk.length;
      if (seen > limit) return done(tooLarge(limit));
      done(null, chunk);
    },
    flush(done) {
      clearTimeout(idle);
      done();
    },
  });
  const armIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      req.res?.setHeader('Connection', 'close');
      counter.destroy(bodyTimedOut(idleMs));
    }, idleMs);
  };
  armIdle();
  counter.on('close', () => clearTimeout(idle));
  req.on('error', (err) => counter.destroy(err));
  return req.pipe(counter);
}
