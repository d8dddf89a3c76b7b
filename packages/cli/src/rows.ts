/**
 * Reading a file of credit lines, NDJSON or CSV, one row at a time (never
 * the whole file), each with its line number in the file; and checking a
 * row locally the way the service will (for --dry-run).
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parse as parseCsv } from 'csv-parse';

export type Format = 'ndjson' | 'csv';

export interface FileRow {
  /** 1-based line number in the file (for CSV: the line the record starts on). */
  line: number;
  /** The row as one NDJSON line (CSV records converted), exactly what is sent. */
  text: string;
}

export function formatOf(path: string, given?: string): Format {
  if (given === 'csv' || given === 'ndjson') return given;
  return /\.csv$/i.test(path) ? 'csv' : 'ndjson';
}

export async function* readRows(path: string, format: Format): AsyncGenerator<FileRow> {
  if (format === 'ndjson') {
    let line = 0;
    for await (const raw of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
      line++;
      const text = line === 1 && raw.startsWith('\uFEFF') ? raw.slice(1) : raw;
      if (text.trim() !== '') yield { line, text };
    }
    return;
  }
  const parser = createReadStream(path).pipe(
    parseCsv({ columns: true, bom: true, skip_empty_lines: true, trim: true, info: true, relax_column_count: true }),
  );
  for await (const { record, info } of parser as AsyncIterable<{
    record: Record<string, string>;
    info: { lines: number };
  }>) {
    yield { line: info.lines, text: JSON.stringify(csvRecordToRow(record)) };
  }
}

/** CSV cells are text: numbers become numbers, empty cells are left out (the service's defaults apply). */
function csvRecordToRow(record: Record<string, string>): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const [column, cell] of Object.entries(record)) {
    if (cell === '') continue;
    row[column] = column === 'limit' && /^-?\d+(\.\d+)?$/.test(cell) ? Number(cell) : cell;
  }
  return row;
}

/** Lines in the file (rows for the progress bar's total): counted by newlines, streamed. */
export async function countLines(path: string): Promise<number> {
  let count = 0;
  let last = 10;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) count++;
    last = chunk.length > 0 ? chunk[chunk.length - 1]! : last;
  }
  return last === 10 ? count : count + 1;
}

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const FIELDS = new Set(['customerId', 'limit', 'status', 'statusReason', 'tier']);
const STATUSES = new Set(['active', 'pending_activation', 'frozen', 'closed']);

/** The contract's rules for a bulk row; null when the service would take it. */
export function checkRow(text: string): string | null {
  let row: unknown;
  try {
    row = JSON.parse(text);
  } catch {
    return 'the line is not valid JSON';
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row)) return 'a row must be a JSON object';
  const r = row as Record<string, unknown>;
  const unknown = Object.keys(r).find((k) => !FIELDS.has(k));
  if (unknown !== undefined) return `${unknown}: unknown field`;
  if (typeof r.customerId !== 'string' || !ID.test(r.customerId))
    return 'customerId: must be 1 to 64 characters of [A-Za-z0-9._-]';
  if (typeof r.limit !== 'number' || !Number.isSafeInteger(r.limit) || r.limit < 0)
    return 'limit: must be a whole number of minor units, 0 or more';
  if (r.status !== undefined && !STATUSES.has(r.status as string))
    return 'status: must be active, pending_activation, frozen or closed';
  if (
    r.statusReason !== undefined &&
    r.statusReason !== null &&
    (typeof r.statusReason !== 'string' || r.statusReason.length > 256)
  )
    return 'statusReason: at most 256 characters';
  if (r.tier !== undefined && r.tier !== null && (typeof r.tier !== 'string' || !ID.test(r.tier)))
    return 'tier: must be 1 to 64 characters of [A-Za-z0-9._-]';
  return null;
}
