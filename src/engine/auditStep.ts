/**
 * One call of lua/audit-product-11.lua as TypeScript sees it: its options,
 * its typed answer, and the decoder the engine applies to the reply.
 */

export interface AuditStepOptions {
  /** Settled records folded into the running sum per call at most. */
  settledBatch: number;
  /**
   * Live records (held + committed + settlement_unknown) compared in one call at most; more: a pass over several calls.
   */
  liveLimit: number;
  /** Lines compared per call at most. */
  lineWindow: number;
  /** Live records a pass call walks (plus the last score's tie group). Default 500. */
  walkBatch?: number;
  /** Events a pass call folds at most. Default 2,000. */
  eventBatch?: number;
  /**
   * Records read for the line window per call, about (a customer with more than twice this is not checked). Default
   * 500.
   */
  lineRecords?: number;
}

export const DEFAULT_PASS_OPTIONS = Object.freeze({ walkBatch: 500, eventBatch: 2_000, lineRecords: 500 });

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

/** A record whose status field disagrees with the set it is in (`missing`: no record). */
export interface StatusMismatch {
  reservationId: string;
  set: string;
  status: string;
}

interface Progress {
  now: number;
  /** Entries of status:settled folded into the running sum so far. */
  settledCount: number;
  /** Folded in by this call. */
  folded: number;
  /** The checkpoint no longer matched status:settled (a clock step): the sum restarted from zero. */
  reset: boolean;
  /** Up to 20 of them; mismatchCount has them all. */
  mismatches: StatusMismatch[];
  mismatchCount: number;
  /** When the last exact pool comparison completed (ms, Redis clock), null if never. */
  comparedAt: number | null;
  /** Pool passes aborted so far (events trimmed before the pass read them). */
  passesAborted: number;
  /** This call's own time inside Redis, in µs, and the part before the line window (settled fold + pool). */
  micros: number;
  poolMicros: number;
}

/** The line window every call but `behind` checks. */
interface LineWindow {
  /** Only the lines that differ. */
  lines: LineDifference[];
  linesChecked: number;
  /** Customers with too many records to read in one bounded call: not checked. */
  linesUnchecked: number;
  /** The line walk went round: every customer with a record has been visited since the last rotation. */
  rotationDone: boolean;
}

export type AuditStep =
  | (Progress &
      LineWindow & {
        kind: 'checked';
        /** held, committed, settled: expected (from the records) and actual (the pool's counters), at one instant. */
        pool: PoolCheck[];
        /** Compared by a pass over several calls: when it started (the instant compared) and its calls. */
        pass: { startedAt: number; calls: number } | null;
      })
  | (Progress & LineWindow & { kind: 'pass'; pass: { startedAt: number; set: string; events: number; calls: number } })
  | (Progress & LineWindow & { kind: 'pass_aborted' })
  | (Progress & { kind: 'behind'; settledTotal: number })
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
    comparedAt: p.comparedAt ? Number(p.comparedAt) : null,
    passesAborted: Number(p.passesAborted ?? 0),
    micros: Number(p.us ?? 0),
    poolMicros: Number(p.poolUs ?? p.us ?? 0),
  };
  if (code === 'BEHIND') return { ...progress, kind: 'behind', settledTotal: Number(p.settledTotal) };
  const window: LineWindow = {
    lines: list<Record<string, string>>(p.lines).map((l) => ({
      customerId: String(l.customerId),
      field: l.field as LineDifference['field'],
      expected: Number(l.expected),
      actual: Number(l.actual),
    })),
    linesChecked: Number(p.linesChecked),
    linesUnchecked: Number(p.linesUnchecked ?? 0),
    rotationDone: p.rotationDone === '1',
  };
  switch (code) {
    case 'OK':
      return {
        ...progress,
        ...window,
        kind: 'checked',
        pool: list<Record<string, string>>(p.pool).map((c) => ({
          field: c.field as PoolCheck['field'],
          expected: Number(c.expected),
          actual: Number(c.actual),
        })),
        pass: p.passStartedAt ? { startedAt: Number(p.passStartedAt), calls: Number(p.passCalls) } : null,
      };
    case 'PASS': {
      const pass = (p.pass ?? {}) as Record<string, string>;
      return {
        ...progress,
        ...window,
        kind: 'pass',
        pass: {
          startedAt: Number(pass.startedAt),
          set: String(pass.set),
          events: Number(pass.events),
          calls: Number(pass.calls),
        },
      };
    }
    case 'PASS_ABORTED':
      return { ...progress, ...window, kind: 'pass_aborted' };
    default:
      throw new Error(`audit-product answered an unknown code ${code}`);
  }
}
