/**
 * A small real HTTP ledger: the downstream end of settlement (CONTRACT.md,
 * "Settlement (downstream ledger)"), to test, demo and benchmark the
 * settlement worker against. This file is its HTTP adapter: routes, body
 * and signature checks, the answers, the counters and the admin routes
 * (`/_…`). What is recorded is ledgerBook.ts's; what goes wrong on purpose
 * (errors, rejections, answers lost after the effect, an unreachable
 * ledger, with seeded choices so runs are reproducible) is faultInjector.ts's.
 *
 * A test double, not a production ledger: everything lives in memory and the
 * `/_…` admin routes are unauthenticated. Not part of the service (src/): it
 * is built for the tests, the benchmark and docker-compose only.
 */
import { setMaxListeners } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { verifySignature } from '../src/bodySignature.js';
import { createFaultInjector, faultSettingsSchema, type FaultSettings } from './faultInjector.js';
import {
  createLedgerBook,
  settlementSchema,
  type AppliedEntry,
  type Recorded,
  type RejectedEntry,
  type SettlementBody,
} from './ledgerBook.js';

export interface LedgerServerOptions extends Partial<FaultSettings> {
  /** Shared HMAC secret (SETTLEMENT_SECRET). */
  secret: string;
  /** Default 0: a free port, chosen at the first start() and kept across restarts. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Answer to a duplicate delivery (same key, same body). Default 200. */
  duplicateStatus?: 200 | 409;
  /** Seed of the PRNGs behind failRate and hangRate, and of the rejectRate hash. Default 1. */
  seed?: number;
  /** Larger bodies get 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Called once per answered (or refused) settlement request: for logging. */
  onEvent?: (event: LedgerEvent) => void;
}

export interface LedgerStats {
  /** POST attempts on the settlement routes, whatever their outcome. */
  posts: number;
  /** Keys applied (effects). */
  applied: number;
  duplicates: number;
  /** 422 rejection answers (repeats of a rejected key count again). */
  rejected: number;
  /** Same key with a different body: 422. */
  conflicts: number;
  failedInjected: number;
  /** Answers delayed by hangAfterRecordMs. */
  hung: number;
  badSignature: number;
  /** 400 / 413: no key, key != reservationId, bad JSON or body. */
  badRequest: number;
  /** Settlement requests dropped while down. */
  refused: number;
  /** GET look-ups of a reservation. */
  gets: number;
}

export type LedgerOutcome =
  | 'applied'
  | 'duplicate'
  | 'rejected'
  | 'conflict'
  | 'failed_injected'
  | 'bad_signature'
  | 'bad_request'
  | 'refused'
  | 'found'
  | 'not_found';

export interface LedgerEvent {
  method: 'POST' | 'GET';
  path: string;
  /** null: the socket was destroyed without an answer (down). */
  status: number | null;
  outcome: LedgerOutcome;
  reservationId: string | undefined;
  hung: boolean;
  ms: number;
}

export interface LedgerServer {
  /** `http://<host>:<port>`, no trailing slash: use it as SETTLEMENT_URL. Throws before the first start(). */
  readonly url: string;
  /** Throws before the first start(). */
  readonly port: number;
  start(): Promise<void>;
  /** Closes the listener and every open connection; hung and delayed answers are dropped. */
  stop(): Promise<void>;
  /** Merges the given settings into the current ones (validated; throws on a bad value); returns all settings. */
  control(settings: Partial<FaultSettings>): FaultSettings;
  stats(): LedgerStats;
  /** Snapshot of the applied entries by idempotency key. */
  deliveries(): Map<string, AppliedEntry>;
  /** Snapshot of the rejected entries by idempotency key. */
  rejections(): Map<string, RejectedEntry>;
  /** Forgets every record and counter and re-seeds the PRNGs; fault settings stay. */
  reset(): void;
}

// ---------------------------------------------------------------- helpers

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The body as raw bytes (the signature covers exactly these), or null when over the limit. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

type Route =
  | { kind: 'post' }
  | { kind: 'lookup'; id: string }
  | { kind: 'admin'; name: string }
  | { kind: 'wrong-method'; allow: string }
  | { kind: 'none' };

const ADMIN = new Set(['_control', '_stats', '_deliveries', '_reset']);

/**
 * `/` and `/settlements` take POSTs; `/{id}` and `/settlements/{id}` take GETs.
 * Repeated slashes are collapsed so SETTLEMENT_URL may end in `/`. Admin names
 * shadow reservation ids on the root form only (`/settlements/_stats` is an id).
 */
function routeOf(method: string, url: string): Route {
  // Not new URL(): it would read `//id` as a host name.
  const parts = (url.split('?')[0] ?? '').split('/').filter(Boolean);
  const aliased = parts[0] === 'settlements';
  const rest = aliased ? parts.slice(1) : parts;
  if (!aliased && rest.length === 1 && ADMIN.has(rest[0]!)) return { kind: 'admin', name: rest[0]! };
  if (rest.length === 0) return method === 'POST' ? { kind: 'post' } : { kind: 'wrong-method', allow: 'POST' };
  if (rest.length === 1)
    return method === 'GET' ? { kind: 'lookup', id: rest[0]! } : { kind: 'wrong-method', allow: 'GET' };
  return { kind: 'none' };
}

interface Answer {
  status: number;
  body: unknown;
  outcome: LedgerOutcome;
  reservationId?: string;
  /** Recorded; may be delayed by hangAfterRecordMs. */
  recorded?: boolean;
}

const zeroStats = (): LedgerStats => ({
  posts: 0,
  applied: 0,
  duplicates: 0,
  rejected: 0,
  conflicts: 0,
  failedInjected: 0,
  hung: 0,
  badSignature: 0,
  badRequest: 0,
  refused: 0,
  gets: 0,
});

// ---------------------------------------------------------------- server

export function createLedgerServer(options: LedgerServerOptions): LedgerServer {
  if (!options.secret) throw new Error('createLedgerServer: secret is required');
  const { secret, host = '127.0.0.1', duplicateStatus = 200, seed = 1, maxBodyBytes = 1024 * 1024, onEvent } = options;
  const faults = createFaultInjector(seed, options);
  const book = createLedgerBook();
  let stats = zeroStats();

  let boundPort: number | undefined;
  // Aborted by stop(): no latency or hang outlives the server.
  // One signal aborts every pending delay at stop(); many requests wait on it at once.
  const newLifetime = () => {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    return controller;
  };
  let lifetime = newLifetime();
  const delay = (ms: number) => (ms > 0 ? sleep(ms, undefined, { signal: lifetime.signal }) : Promise.resolve());

  /**
   * Everything from the signature to the record, synchronously: no await
   * between "is this key known?" and "record it", so concurrent duplicates
   * cannot both apply.
   */
  function decide(raw: Buffer, headers: IncomingHttpHeaders): Answer {
    if (!verifySignature(secret, raw, header(headers, 'x-signature'))) {
      stats.badSignature++;
      return { status: 401, body: { error: 'bad_signature' }, outcome: 'bad_signature' };
    }
    const badRequest = (body: unknown, reservationId?: string): Answer => {
      stats.badRequest++;
      return { status: 400, body, outcome: 'bad_request', reservationId };
    };
    const key = header(headers, 'idempotency-key');
    if (!key) return badRequest({ error: 'missing_idempotency_key' });
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      return badRequest({ error: 'invalid_json' }, key);
    }
    const parsed = settlementSchema.safeParse(json);
    if (!parsed.success) return badRequest({ error: 'invalid_body', issues: z.treeifyError(parsed.error) }, key);
    const body = json as SettlementBody;
    if (key !== body.reservationId) return badRequest({ error: 'idempotency_key_mismatch' }, key);

    const failure = faults.failure(key);
    if (failure) {
      stats.failedInjected++;
      return { status: failure.status, body: { error: failure.error }, outcome: 'failed_injected', reservationId: key };
    }
    return answerTo(key, book.deliver(key, body, faults.rejects));
  }

  /** What the book did, as the contract's answer (and counted). */
  function answerTo(key: string, recorded: Recorded): Answer {
    switch (recorded.kind) {
      case 'conflict':
        stats.conflicts++;
        return {
          status: 422,
          body: { error: 'idempotency_key_reused', reason: 'same key, different body' },
          outcome: 'conflict',
          reservationId: key,
        };
      case 'rejected': {
        stats.rejected++;
        const { reason, body } = recorded.entry;
        // The first answer names the customer; a repeat of a rejected key does not.
        const answer = recorded.first
          ? { error: 'rejected', reason, reservationId: key, customerId: body.customerId }
          : { error: 'rejected', reason, reservationId: key };
        return { status: 422, body: answer, outcome: 'rejected', reservationId: key };
      }
      case 'duplicate': {
        stats.duplicates++;
        const body = { status: 'duplicate', reservationId: key, appliedAt: recorded.entry.appliedAt };
        return { status: duplicateStatus, body, outcome: 'duplicate', reservationId: key, recorded: true };
      }
      case 'applied': {
        stats.applied++;
        const body = { status: 'applied', reservationId: key, appliedAt: recorded.entry.appliedAt };
        return { status: 200, body, outcome: 'applied', reservationId: key, recorded: true };
      }
    }
  }

  /** Returns the answer and whether it hung; null when the request was dropped (down). */
  async function settle(req: IncomingMessage): Promise<{ answer: Answer; hung: boolean } | null> {
    stats.posts++;
    if (faults.settings.down) return null;
    await delay(faults.settings.latencyMs);
    const raw = await readBody(req, maxBodyBytes);
    if (raw === null) {
      stats.badRequest++;
      return { answer: { status: 413, body: { error: 'body_too_large' }, outcome: 'bad_request' }, hung: false };
    }
    const answer = decide(raw, req.headers);
    // The effect is recorded already; the caller just does not hear about it in time.
    const hung = !!answer.recorded && faults.hangs();
    if (hung) {
      stats.hung++;
      await delay(faults.settings.hangAfterRecordMs);
    }
    return { answer, hung };
  }

  async function lookup(id: string): Promise<Answer | null> {
    stats.gets++;
    if (faults.settings.down) return null;
    await delay(faults.settings.latencyMs);
    const found = book.lookup(id);
    if (found.kind === 'applied') {
      return { status: 200, body: { status: 'applied', ...found.entry }, outcome: 'found', reservationId: id };
    }
    // A rejected key had no effect: to the worker that is the same as never received (404: reverse).
    const body =
      found.kind === 'rejected'
        ? { status: 'rejected', reservationId: id, reason: found.entry.reason }
        : { error: 'not_found', reservationId: id };
    return { status: 404, body, outcome: 'not_found', reservationId: id };
  }

  async function admin(name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    if (name === '_stats' && method === 'GET') return sendJson(res, 200, ledger.stats());
    if (name === '_deliveries' && method === 'GET') return sendJson(res, 200, Object.fromEntries(book.deliveries()));
    if (name === '_control' && method === 'GET') return sendJson(res, 200, faults.settings);
    if (name === '_reset' && method === 'POST') {
      ledger.reset();
      return sendJson(res, 200, ledger.stats());
    }
    if (name === '_control' && method === 'POST') {
      const raw = await readBody(req, maxBodyBytes);
      let json: unknown;
      try {
        json = JSON.parse(raw?.toString('utf8') ?? '');
      } catch {
        return sendJson(res, 400, { error: 'invalid_json' });
      }
      const parsed = faultSettingsSchema.safeParse(json);
      if (!parsed.success)
        return sendJson(res, 400, { error: 'invalid_settings', issues: z.treeifyError(parsed.error) });
      return sendJson(res, 200, ledger.control(parsed.data));
    }
    return sendJson(
      res,
      405,
      { error: 'method_not_allowed' },
      { allow: name === '_control' ? 'GET, POST' : name === '_reset' ? 'POST' : 'GET' },
    );
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const route = routeOf(method, path);
    if (route.kind === 'admin') return admin(route.name, req, res);
    if (route.kind === 'none') return sendJson(res, 404, { error: 'no_such_route' });
    if (route.kind === 'wrong-method')
      return sendJson(res, 405, { error: 'method_not_allowed' }, { allow: route.allow });

    const result =
      route.kind === 'post'
        ? await settle(req)
        : await lookup(route.id).then((answer) => answer && { answer, hung: false });
    const event = (status: number | null, outcome: LedgerOutcome, reservationId?: string, hung = false) =>
      onEvent?.({
        method: route.kind === 'post' ? 'POST' : 'GET',
        path,
        status,
        outcome,
        reservationId,
        hung,
        ms: Math.round(performance.now() - started),
      });
    if (result === null) {
      // Down: no status line at all, the caller sees a reset connection.
      stats.refused++;
      req.socket.destroy();
      return event(null, 'refused');
    }
    sendJson(res, result.answer.status, result.answer.body);
    event(result.answer.status, result.answer.outcome, result.answer.reservationId, result.hung);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      // Aborted by stop(), or the client went away mid-body: nothing sensible to answer.
      if (!res.headersSent && !lifetime.signal.aborted && !req.destroyed) sendJson(res, 500, { error: 'internal' });
      else res.destroy();
    });
  });

  const ledger: LedgerServer = {
    get port() {
      if (boundPort === undefined) throw new Error('ledger server not started');
      return boundPort;
    },
    get url() {
      const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
      return `http://${shown.includes(':') ? `[${shown}]` : shown}:${ledger.port}`;
    },
    async start() {
      if (server.listening) return;
      lifetime = newLifetime();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port: boundPort ?? options.port ?? 0, host }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      boundPort = (server.address() as AddressInfo).port;
    },
    async stop() {
      if (!server.listening) return;
      lifetime.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
    control: (settings) => faults.control(settings),
    stats: () => ({ ...stats }),
    deliveries: () => book.deliveries(),
    rejections: () => book.rejections(),
    reset() {
      book.reset();
      faults.reset();
      stats = zeroStats();
    },
  };
  return ledger;
}
