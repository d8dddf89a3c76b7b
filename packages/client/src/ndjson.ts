/**
 * The bulk import's body as a stream: NDJSON bytes from a file or a Node
 * Readable as they are, or rows serialised one per line. Nothing is held
 * whole, so a file of millions of rows streams in constant memory.
 */
import type { LineRow } from './types.js';

/** A file path; NDJSON text or bytes (e.g. a Node Readable, or an array of lines each ending in a newline); or rows. */
export type BulkSource =
  | string
  | AsyncIterable<Uint8Array | string>
  | Iterable<Uint8Array | string>
  | AsyncIterable<LineRow>
  | Iterable<LineRow>;

const CHUNK_BYTES = 64 * 1024;

/** Can the same source be read again for a retry? (A stream is read once.) */
export function isReplayable(source: BulkSource): boolean {
  return typeof source === 'string' || Array.isArray(source);
}

export function toBodyStream(source: BulkSource): ReadableStream<Uint8Array> {
  const chunks = typeof source === 'string' ? fileBytes(source) : ndjsonChunks(source);
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

async function* fileBytes(path: string): AsyncGenerator<Uint8Array> {
  // Loaded only when a path is given, so the rest of the client runs wherever fetch does.
  const { createReadStream } = await import('node:fs');
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK_BYTES })) yield chunk as Uint8Array;
}

/** Bytes and strings pass as they are (already NDJSON); any other item is a row, one JSON line each. */
async function* ndjsonChunks(items: AsyncIterable<unknown> | Iterable<unknown>): AsyncGenerator<Uint8Array> {
  const encoder = new TextEncoder();
  let pending = '';
  for await (const item of items) {
    if (item instanceof Uint8Array) {
      if (pending) yield encoder.encode(pending);
      pending = '';
      yield item;
      continue;
    }
    pending += typeof item === 'string' ? item : `${JSON.stringify(item)}\n`;
    if (pending.length >= CHUNK_BYTES) {
      yield encoder.encode(pending);
      pending = '';
    }
  }
  if (pending) yield encoder.encode(pending);
}
