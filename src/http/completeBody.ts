/**
 * A small JSON body that has fully arrived, read without body-parser (issue
 * 11: body-parser, raw-body and iconv-lite were about 8% of a reserve's CPU
 * for a 40-byte body). Only the plainest case is taken: the whole body is
 * already in the request's buffer (as a small one is by the time a route
 * reads it), declared `application/json` (or with `charset=utf-8`), not
 * compressed, within the limit. The result is what
 * body-parser's strict JSON parser gives for it: the value, or the errors its
 * reader maps (a body nested too deep, `entity.parse.failed`). Anything else
 * returns undefined and takes body-parser's path as before, nothing consumed.
 */
import type { Request } from 'express';
import { jsonDepthExceeds } from './jsonDepth.js';

const PLAIN_JSON = new Set(['application/json', 'application/json; charset=utf-8']);
const BOM = 0xfeff;

/** What body-parser raises for a body that is not JSON (strict: an object or array); the app answers it 400. */
function notJson(cause: unknown): Error {
  return Object.assign(new SyntaxError((cause as Error).message ?? 'not JSON'), {
    status: 400,
    statusCode: 400,
    type: 'entity.parse.failed',
  });
}

/**
 * The body as body-parser would parse it, or undefined when this is not the plain case.
 * `tooDeep`: the error for a body nested deeper than the contract allows.
 */
export function readCompleteJson(req: Request, limitBytes: number, tooDeep: () => Error): Promise<unknown> | undefined {
  const { headers } = req;
  const type = headers['content-type'];
  if (type === undefined || !PLAIN_JSON.has(type)) return undefined;
  if (headers['content-encoding'] !== undefined || headers['transfer-encoding'] !== undefined) return undefined;
  const length = Number(headers['content-length']);
  if (!(length > 0 && length <= limitBytes)) return undefined;
  // Every byte of the body is buffered (the parser pushes body bytes only, up to Content-Length; it marks
  // the request complete a tick later). body-parser reads nothing from a request whose socket no longer
  // reads (on-finished): that case is left to it.
  if (req.readableLength !== length || !req.readable || !req.socket?.readable) return undefined;
  const raw = req.read() as Buffer | null;
  // Flowing, as raw-body leaves it, so the stream ends ('end') once the parser marks the message complete.
  req.resume();
  if (raw === null || raw.length !== length) {
    // Cannot happen for a complete request with its whole body buffered; if it does, say so rather than guess.
    return Promise.reject(new Error('request body not readable as buffered'));
  }
  if (jsonDepthExceeds(raw)) return Promise.reject(tooDeep());
  let text = raw.toString('utf8');
  if (text.charCodeAt(0) === BOM) text = text.slice(1); // as iconv-lite's decode does
  const first = text.trimStart()[0];
  if (first !== '{' && first !== '[') return Promise.reject(notJson(new Error('strict violation')));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return Promise.reject(notJson(err));
  }
  req.body = value;
  return Promise.resolve(value);
}
