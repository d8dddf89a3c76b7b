/**
 * The test ledger's state machine: each idempotency key is applied at most
 * once, or rejected at most once; a repeat with the same body gets the first
 * answer again, one with another body is a conflict. In memory, synchronous
 * (no await between "is this key known?" and "record it", so concurrent
 * duplicates cannot both apply), and unaware of HTTP and of faults: the caller
 * says whether a new key is rejected.
 */
import { z } from 'zod';

const ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The contract's body; extra fields are allowed and kept as sent. */
export const settlementSchema = z.object({
  reservationId: z.string().regex(ID),
  productId: z.string().regex(ID),
  customerId: z.string().regex(ID),
  amount: z.number().int().min(1),
  committedAt: z.string().min(1),
  metadata: z.record(z.string(), z.unknown()).nullable().optional(),
});

export type SettlementBody = z.infer<typeof settlementSchema> & Record<string, unknown>;

export interface AppliedEntry {
  reservationId: string;
  body: SettlementBody;
  appliedAt: string;
  /** Deliveries of this key that reached the record stage (the first one plus duplicates). */
  deliveries: number;
}

export interface RejectedEntry {
  reservationId: string;
  body: SettlementBody;
  reason: string;
  rejectedAt: string;
  deliveries: number;
}

/** What the book did with one delivery. */
export type Recorded =
  | { kind: 'applied'; entry: AppliedEntry }
  /** Same key, same body, applied before. */
  | { kind: 'duplicate'; entry: AppliedEntry }
  /** Rejected now (`first`) or before (a repeat, same body). */
  | { kind: 'rejected'; entry: RejectedEntry; first: boolean }
  /** Same key, another body. */
  | { kind: 'conflict' };

export type Looked =
  { kind: 'applied'; entry: AppliedEntry } | { kind: 'rejected'; entry: RejectedEntry } | { kind: 'absent' };

export interface LedgerBook {
  /** Records one delivery of `key`; `rejects` decides for a key seen for the first time. */
  deliver(key: string, body: SettlementBody, rejects: (customerId: string) => boolean): Recorded;
  lookup(key: string): Looked;
  /** Snapshot of the applied entries by idempotency key. */
  deliveries(): Map<string, AppliedEntry>;
  /** Snapshot of the rejected entries by idempotency key. */
  rejections(): Map<string, RejectedEntry>;
  /** Forgets every entry. */
  reset(): void;
}

/** JSON with sorted keys: "same body" means same content, whatever the key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return `{${Object.keys(record)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(record[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export function createLedgerBook(): LedgerBook {
  const applied = new Map<string, AppliedEntry>();
  const rejections = new Map<string, RejectedEntry>();

  return {
    deliver(key, body, rejects) {
      const now = new Date().toISOString();
      const previous = applied.get(key) ?? rejections.get(key);
      if (previous) {
        if (canonical(previous.body) !== canonical(body)) return { kind: 'conflict' };
        previous.deliveries++;
        if ('reason' in previous) return { kind: 'rejected', entry: previous, first: false };
        return { kind: 'duplicate', entry: previous };
      }
      if (rejects(body.customerId)) {
        const reason = 'customer_rejected';
        const entry: RejectedEntry = { reservationId: key, body, reason, rejectedAt: now, deliveries: 1 };
        rejections.set(key, entry);
        return { kind: 'rejected', entry, first: true };
      }
      const entry: AppliedEntry = { reservationId: key, body, appliedAt: now, deliveries: 1 };
      applied.set(key, entry);
      return { kind: 'applied', entry };
    },
    lookup(key) {
      const entry = applied.get(key);
      if (entry) return { kind: 'applied', entry };
      const rejection = rejections.get(key);
      return rejection ? { kind: 'rejected', entry: rejection } : { kind: 'absent' };
    },
    deliveries: () => new Map([...applied].map(([k, v]) => [k, { ...v }])),
    rejections: () => new Map([...rejections].map(([k, v]) => [k, { ...v }])),
    reset() {
      applied.clear();
      rejections.clear();
    },
  };
}
