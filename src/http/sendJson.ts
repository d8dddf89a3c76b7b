/**
 * JSON answers written as express's `res.json` writes them, minus its `send`
 * steps (content-type parsing, the charset, the freshness check): a few
 * percent of a reserve's CPU in the issue 11 profile, on every answer and
 * every refusal. This app has no JSON replacer or spaces and ETags off, so
 * `res.json` adds only Content-Type with `charset=utf-8` and Content-Length;
 * the bytes and headers here are the same, in the same order.
 *
 * GET and HEAD, and a response that already has a Content-Type, keep
 * `res.json`: a conditional GET may be answered 304 there, HEAD has no body.
 */
import type { Response } from 'express';

export function sendJson(res: Response, status: number, value: unknown, type = 'application/json'): void {
  const method = res.req.method;
  if (method === 'GET' || method === 'HEAD' || res.getHeader('Content-Type') !== undefined) {
    if (type !== 'application/json') res.type(type);
    res.status(status).json(value);
    return;
  }
  const body = JSON.stringify(value);
  res.statusCode = status;
  res.setHeader('Content-Type', `${type}; charset=utf-8`);
  res.setHeader('Content-Length', String(Buffer.byteLength(body)));
  res.end(body);
}
