/**
 * A small real webhook receiver for the tests: verifies each delivery's
 * `X-Signature` over the exact body bytes and that `Idempotency-Key` is the
 * event id, dedupes by id (as a consumer must), and counts what it saw. It
 * can be flaky: a share of deliveries fail, half of them before recording
 * (503) and half after recording (500: the sender cannot know it landed).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifySignature } from '../../src/bodySignature.js';
import { seededRandom } from '../../src/seededRandom.js';

export interface ReceivedEvent {
  id: string;
  type: string;
  occurredAt: string;
  productId: string;
  data: any;
}

export interface ReceiverStats {
  /** Requests with a valid signature. */
  deliveries: number;
  /** Deliveries of an id already recorded. */
  duplicates: number;
  /** Failures injected: before recording / after recording. */
  failedBefore: number;
  failedAfter: number;
  badSignatures: number;
  badRequests: number;
}

export interface WebhookReceiver {
  url: string;
  /** Each event once, in the order first recorded. */
  events: ReceivedEvent[];
  stats: ReceiverStats;
  /** Share of deliveries that fail (0..1). */
  setFailRate(rate: number): void;
  /** Wait before answering (ms). */
  setLatency(ms: number): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(options: {
  secret: string;
  failRate?: number;
  seed?: number;
  latencyMs?: number;
}): Promise<WebhookReceiver> {
  const random = seededRandom(options.seed ?? 7);
  let failRate = options.failRate ?? 0;
  let latencyMs = options.latencyMs ?? 0;
  const seen = new Set<string>();
  const events: ReceivedEvent[] = [];
  const stats: ReceiverStats = {
    deliveries: 0,
    duplicates: 0,
    failedBefore: 0,
    failedAfter: 0,
    badSignatures: 0,
    badRequests: 0,
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        if (latencyMs) await new Promise((r) => setTimeout(r, latencyMs));
        const raw = Buffer.concat(chunks);
        if (!verifySignature(options.secret, raw, req.headers['x-signature'] as string | undefined)) {
          stats.badSignatures++;
          return res.writeHead(401).end();
        }
        let event: ReceivedEvent;
        try {
          event = JSON.parse(raw.toString('utf8')) as ReceivedEvent;
        } catch {
          stats.badRequests++;
          return res.writeHead(400).end();
        }
        if (req.headers['idempotency-key'] !== event.id || req.headers['content-type'] !== 'application/json') {
          stats.badRequests++;
          return res.writeHead(400).end();
        }
        stats.deliveries++;
        const fail = random() < failRate;
        const failBefore = fail && random() < 0.5;
        if (failBefore) {
          stats.failedBefore++;
          return res.writeHead(503).end();
        }
        if (seen.has(event.id)) stats.duplicates++;
        else {
          seen.add(event.id);
          events.push(event);
        }
        if (fail) {
          stats.failedAfter++;
          return res.writeHead(500).end();
        }
        res.writeHead(204).end();
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    events,
    stats,
    setFailRate: (rate) => {
      failRate = rate;
    },
    setLatency: (ms) => {
      latencyMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What an event is about: a reservation, a line or the product (ordering holds per subject). */
export function subjectOf(e: ReceivedEvent): string {
  if (e.type.startsWith('reservation.')) return `${e.productId}/reservation/${e.data.reservationId}`;
  if (e.type.startsWith('line.')) return `${e.productId}/line/${e.data.customerId}`;
  return `${e.productId}/product`;
}

/** Stream position of an event (its id is `<productId>:<stream id>`), for order checks. */
export function positionOf(e: ReceivedEvent): [number, number] {
  const [ms, seq] = e.id
    .slice(e.id.lastIndexOf(':') + 1)
    .split('-')
    .map(Number);
  return [ms!, seq!];
}

/** Subjects whose events were first recorded out of stream order. */
export function outOfOrder(events: ReceivedEvent[]): string[] {
  const last = new Map<string, [number, number]>();
  const bad: string[] = [];
  for (const e of events) {
    const s = subjectOf(e);
    const pos = positionOf(e);
    const prev = last.get(s);
    if (prev && (pos[0] < prev[0] || (pos[0] === prev[0] && pos[1] < prev[1])))
      bad.push(`${s}: ${e.id} after ${prev.join('-')}`);
    last.set(s, pos);
  }
  return bad;
}
