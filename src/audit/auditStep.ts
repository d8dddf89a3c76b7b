/**
 * One call of lua/audit-product-8.lua as TypeScript sees it: its options,
 * its typed answer, and the decoder the engine applies to the reply.
 */

export interface AuditStepOptions {
  /** Settled records folded into the running sums per call at most (N). */
  settledBatch: number;
  /** Live records (held + committed + settlement_unknown) compared at most (L); more: too_busy. */
  liveLimit: number;
  /** Lines compared per call, about (W; an HSCAN COUNT). */
  lineWindow: number;
}

export interface PoolCheck {
  field: 'held' | 'committed' | 'settled';
  expected: number;
  actual: number;
}

export interface LineDifference {
  customerId: string;
  /** `exists`: records name a customer who has no line (expected 1, actual 0). */
  field: 'held' | 'drawn' | 'settling' | 'exists';
  expected: number;
  actual: number;
}

/** A record whose status field disagrees with the status set it is in (`missing`: no record). */
export interface StatusMismatch {
  reservationId: string;
  set: string;
  status: string;
}

interface Progress {
  now: number;
  /** Entries of status:settled folded into the running sums so far. */
  settledCount: number;
  /** Folded in by this call. */
  folded: number;
  /** The checkpoint no longer matched status:settled (a clock step): the sums restarted from zero. */
  reset: boolean;
  /** Up to 20 of them; mismatchCount has them all. Settled records are checked once, when folded in. */
  mismatches: StatusMismatch[];
  mismatchCount: number;
}

export type AuditStep =
  | (Progress & {
      kind: 'checked';
      /** held, committed, settled: expected (from the records) and actual (the pool's counters). */
      pool: PoolCheck[];
      /** Only the lines that differ. */
      lines: LineDifference[];
      linesChecked: number;
      /** The line cursor went round: every known customer has been checked since the last rotation. */
      rotationDone: boolean;
      liveRecords: number;
    })
  | (Progress & { kind: 'behind'; settledTotal: number })
  | (Progress & { kind: 'too_busy'; live: { held: number; committed: number; settlement_unknown: number }; liveLimit: number })
  | { kind: 'product_not_found'; now: number };

type Payload = Record<string, unknown>;

/** cjson encodes an empty Lua table as {}: read either as a list. */
const list = <T>(v: unknown): T[] => (Array.isArray(v) ? (v as T[]) : []);

export function decodeAuditStep(code: string, now: number, p: Payload): AuditStep {
  if (code === 'PRODUCT_NOT_FOUND') return { kind: 'product_not_found', now };
  const progress: Progress = {
    now,
    settledCount: Number(p.settledCount),
    folded: Number(p.folded),
    reset: p.reset === '1',
    mismatches: list<StatusMismatch>(p.mismatches),
    mismatchCount: Number(p.mismatchCount),
  };
  switch (code) {
    case 'OK':
      return {
        ...progress,
        kind: 'checked',
        pool: list<Record<string, string>>(p.pool).map((c) => ({
          field: c.field as PoolCheck['field'],
          expected: Number(c.expected),
          actual: Number(c.actual),
        })),
        lines: list<Record<string, string>>(p.lines).map((l) => ({
          customerId: String(l.customerId),
          field: l.field as LineDifference['field'],
          expected: Number(l.expected),
          actual: Number(l.actual),
        })),
        linesChecked: Number(p.linesChecked),
        rotationDone: p.rotationDone === '1',
        liveRecords: Number(p.live),
      };
    case 'BEHIND':
      return { ...progress, kind: 'behind', settledTotal: Number(p.settledTotal) };
    case 'TOO_BUSY':
      return {
        ...progress,
        kind: 'too_busy',
        live: { held: Number(p.held), committed: Number(p.committed), settlement_unknown: Number(p.settlement_unknown) },
        liveLimit: Number(p.limit),
      };
    default:
      throw new Error(`audit-product answered an unknown code ${code}`);
  }
}
