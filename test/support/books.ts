/**
 * The counters recomputed from the reservation records alone (the
 * conservation invariant, CONTRACT.md invariant 3): what pool.held,
 * pool.committed, pool.settled and each line's held, drawn and settling must
 * equal. One rule for every test and the bench that checks it; the Lua audit
 * (lua/audit-product-2.lua) is the service's own, independent one.
 * No vitest here: bench/ uses it too.
 */

/** States whose committed amount is drawn: counted in pool.committed and the line's drawn (+ repaid). */
export const DRAWN_STATES: ReadonlySet<string> = new Set(['committed', 'settled', 'settlement_unknown']);
/** States whose committed amount the ledger has not confirmed yet: counted in the line's settling. */
export const SETTLING_STATES: ReadonlySet<string> = new Set(['committed', 'settlement_unknown']);

/** The fields of a record the books use (numbers as stored strings or as answered numbers). */
export interface RecordFacts {
  reservationId?: string | undefined;
  customerId?: string | undefined;
  status?: string | undefined;
  amount?: number | string | undefined;
  committedAmount?: number | string | undefined;
}

export interface LineBooks {
  held: number;
  /** Committed amounts in drawn states: the line's drawn plus what was repaid. */
  committed: number;
  settling: number;
}

export interface Books {
  records: number;
  byStatus: Record<string, number>;
  /** Sum of `amount` (the hold) per status. */
  amountByStatus: Record<string, number>;
  held: number;
  committed: number;
  settled: number;
  lines: Map<string, LineBooks>;
}

export const emptyBooks = (): Books => ({
  records: 0,
  byStatus: {},
  amountByStatus: {},
  held: 0,
  committed: 0,
  settled: 0,
  lines: new Map(),
});

/** Adds one record to the books (for records read a batch at a time). */
export function addRecord(books: Books, record: RecordFacts): void {
  const status = record.status ?? '';
  const amount = Number(record.amount ?? 0);
  const committedAmount = Number(record.committedAmount ?? 0);
  books.records++;
  books.byStatus[status] = (books.byStatus[status] ?? 0) + 1;
  books.amountByStatus[status] = (books.amountByStatus[status] ?? 0) + amount;
  const customerId = record.customerId ?? '';
  let line = books.lines.get(customerId);
  if (!line) books.lines.set(customerId, (line = { held: 0, committed: 0, settling: 0 }));
  if (status === 'held') {
    books.held += amount;
    line.held += amount;
  }
  if (DRAWN_STATES.has(status)) {
    books.committed += committedAmount;
    line.committed += committedAmount;
  }
  if (status === 'settled') books.settled += committedAmount;
  if (SETTLING_STATES.has(status)) line.settling += committedAmount;
}

export function booksOf(records: Iterable<RecordFacts>): Books {
  const books = emptyBooks();
  for (const record of records) addRecord(books, record);
  return books;
}

/** A line's recomputed counters (zero for a customer with no records). */
export const lineBooks = (books: Books, customerId: string): LineBooks =>
  books.lines.get(customerId) ?? { held: 0, committed: 0, settling: 0 };
