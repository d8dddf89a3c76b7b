/**
 * The bulk import's body as a stream: NDJSON bytes from a file or a Node
 * Readable as they are, or rows serialised one per line. Nothing is held
 * whole, so a file of millions of rows streams in constant memory.
 */
import type { LineRow } from './types.js';

/** A file path, a stream of NDJSON bytes (e.g. a Node Readable), or rows. */
export type BulkSource = string | AsyncIterable<Uint8Array | string> | AsyncIterable<LineRow> | Iterable<LineRow>;

const CHUNK_BYTES = 64 * 1024;

/** Can the same source be read again for a retry? (A stream is read once.) */
export function isReplayable(source: BulkSource): boolean {
  return typeof source === 'string' || Array.isArray(source);
}

export function toBodyStream(source: BulkSource): ReadableStream<Uint8Array> {
  const chunks = typeof source === 'string' ? fileBytes(source) : isByteStream(source) ? byteChunks(source) : rowChunks(source as AsyncIterable<LineRow> | Iterable<LineRow>);
  const iterator = chunks[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await iterator.return?.(undefined);
    },
  });
}

/** A Node Readable (or any byte stream): it has `pipe`, or yields strings/bytes rather than row objects. */
function isByteStream(source: object): source is AsyncIterable<Uint8Array | string> {
  return typeof (source as { pipe?: unknown }).pipe === 'function' || source instanceof ReadableStream;
}

async function* fileBytes(path: string): AsyncGenerator<Uint8Array> {
  // Loaded only when a path is given, so the rest of the client runs wherever fetch does.
  const { createReadStream } = await import('node:fs');
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK_BYTES })) yield chunk as Uint8Array;
}

async function* byteChunks(source: AsyncIterable<Uint8Array | string>): AsyncGenerator<Uint8Array> {
  const encoder = new TextEncoder();
  for await (const chunk of source) yield typeof chunk === 'string' ? encoder.encode(chunk) : chunk;
}

async function* rowChunks(rows: AsyncIterable<LineRow> | Iterable<LineRow>): AsyncGenerator<Uint8Array> {
  const encoder = new TextEncoder();
  let pending = '';
  for await (const row of rows) {
    pending += `${JSON.stringify(row)}\n`;
    if (pending.length >= CHUNK_BYTES) {
      yield encoder.encode(pending);
      pending = '';
    }
  }
  if (pending) yield encoder.encode(pending);
}
