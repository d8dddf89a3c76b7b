/**
 * The downstream ledger, as settlement sees it: deliver an instruction, or
 * look up whether the ledger has one. Two implementations: the bank's ledger
 * over HTTP (SETTLEMENT_URL), and the service's own ledger records in Redis
 * for a lone instance without one (written and read by the engine's scripts,
 * like every other record of a product).
 */
import { signBody } from '../bodySignature.js';
import type { QuotaEngine } from '../engine/quotaEngine.js';

export interface SettlementInstruction {
  reservationId: string;
  productId: string;
  customerId: string;
  amount: number;
  /** ISO 8601, as the ledger takes it. */
  committedAt: string;
  metadata: Record<string, unknown> | null;
}

export type DeliveryResult =
  | { kind: 'settled' }
  /** The ledger refused it for good: the draw is reversed. */
  | { kind: 'rejected'; reason: string }
  /** No answer we can act on (3xx, 5xx, 408, 409, 429, timeout, connection error): it may or may not have landed. */
  | { kind: 'unknown'; reason: string };

/** settled: the ledger has it; absent: it never received it; unknown: it could not say. */
export type LookupResult = { kind: 'settled' } | { kind: 'absent' } | { kind: 'unknown'; reason: string };

export interface LedgerClient {
  deliver(instruction: SettlementInstruction): Promise<DeliveryResult>;
  lookup(productId: string, reservationId: string): Promise<LookupResult>;
}

const OUTCOME_UNKNOWN_STATUSES = new Set([408, 409, 429]);

export function classifyLedgerStatus(status: number): 'settled' | 'rejected' | 'unknown' {
  if (status >= 200 && status < 300) return 'settled';
  if (status >= 400 && status < 500 && !OUTCOME_UNKNOWN_STATUSES.has(status)) return 'rejected';
  return 'unknown';
}

export function createHttpLedgerClient(options: { url: string; secret: string; timeoutMs: number }): LedgerClient {
  const base = options.url.replace(/\/+$/, '');
  return {
    async deliver(instruction) {
      const body = JSON.stringify(instruction);
      let response: Response;
      try {
        response = await fetch(base, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'idempotency-key': instruction.reservationId,
            'x-signature': signBody(options.secret, body),
          },
          body,
          // A redirect is not an answer: followed, a POST would turn into a GET whose 2xx says nothing.
          redirect: 'manual',
          signal: AbortSignal.timeout(options.timeoutMs),
        });
      } catch (err) {
        return { kind: 'unknown', reason: `ledger unreachable or timed out: ${describe(err)}` };
      }
      const text = await response.text().catch(() => '');
      const kind = classifyLedgerStatus(response.status);
      if (kind === 'settled') return { kind };
      return { kind, reason: `ledger answered ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}` };
    },
    async lookup(_productId, reservationId) {
      try {
        const response = await fetch(`${base}/${encodeURIComponent(reservationId)}`, {
          redirect: 'manual',
          signal: AbortSignal.timeout(options.timeoutMs),
        });
        await response.arrayBuffer().catch(() => undefined);
        if (response.status === 200) return { kind: 'settled' };
        if (response.status === 404) return { kind: 'absent' };
        return { kind: 'unknown', reason: `ledger lookup answered ${response.status}` };
      } catch (err) {
        return { kind: 'unknown', reason: `ledger lookup failed: ${describe(err)}` };
      }
    },
  };
}

/** The service's own ledger: a Redis hash per product, an entry per reservation (lua/record-ledger-entry-1.lua). */
export function createInternalLedgerClient(
  engine: Pick<QuotaEngine, 'recordLedgerEntry' | 'readLedgerEntry'>,
): LedgerClient {
  return {
    async deliver(instruction) {
      const entry = JSON.stringify({ ...instruction, recordedAt: new Date().toISOString() });
      await engine.recordLedgerEntry(instruction.productId, instruction.reservationId, entry);
      return { kind: 'settled' };
    },
    async lookup(productId, reservationId) {
      const { recorded } = await engine.readLedgerEntry(productId, reservationId);
      return recorded ? { kind: 'settled' } : { kind: 'absent' };
    },
  };
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    return cause ? `${err.name} (${cause})` : `${err.name}: ${err.message}`;
  }
  return String(err);
}
