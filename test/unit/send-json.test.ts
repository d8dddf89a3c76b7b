/**
 * sendJson (src/http/sendJson.ts) writes a POST's JSON answer byte for byte
 * as express's res.json does (status line, headers in their order, body),
 * for plain JSON and problem+json, ASCII and not.
 */
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendJson } from '../../src/http/sendJson.js';

const VALUES: unknown[] = [
  { reservationId: 'r-1', amount: 5, status: 'held', metadata: { text: '借款', nested: [1, null, true] } },
  { type: 'urn:x', title: 'Quota exhausted', status: 409, detail: 'é'.repeat(600) },
  [],
  'a string',
];

let server: ReturnType<express.Express['listen']>;
let port = 0;
beforeAll(async () => {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const answer =
    (via: 'direct' | 'express'): express.RequestHandler =>
    (req, res) => {
      const value = VALUES[Number(req.query.i)];
      const type = req.query.problem ? 'application/problem+json' : 'application/json';
      res.setHeader('X-Request-Id', 'fixed');
      if (via === 'direct') return sendJson(res, 201, value, type);
      if (type !== 'application/json') res.type(type);
      res.status(201).json(value);
    };
  app.post('/direct', answer('direct'));
  app.post('/express', answer('express'));
  server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});
afterAll(() => server.close());

/** The raw answer to one POST on a fresh connection, its Date header blanked. */
async function raw(path: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.end(`POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r\nDate: [^\r]*/, '\r\nDate: -');
}

describe('sendJson', () => {
  it('answers exactly as res.json', async () => {
    for (let i = 0; i < VALUES.length; i++) {
      for (const problem of ['', '&problem=1']) {
        const direct = await raw(`/direct?i=${i}${problem}`);
        expect(direct).toMatch(/^HTTP\/1\.1 201 Created\r\n/);
        expect(direct).toBe(await raw(`/express?i=${i}${problem}`));
      }
    }
  });
});
