/** Refusals are values; a thrown QuotaClientError means the call itself broke. */

/** An RFC 9457 problem body, with `code` narrowed to what the operation can answer. */
export interface Problem<C extends string = string> {
  type: string;
  title: string;
  status: number;
  code: C;
  detail: string;
  /** On quota refusals: the largest amount a reserve would accept now. */
  drawable?: number;
  /** On 400: which fields failed. */
  errors?: { field: string; message: string }[];
  /** From the `Retry-After` header, when the answer had one. */
  retryAfterSeconds?: number;
  [extension: string]: unknown;
}

export type Result<T, C extends string> =
  | { ok: true; value: T; status: number; /** an idempotent replay of a first answer */ replayed: boolean }
  | { ok: false; problem: Problem<C> };

/**
 * The Result of a reserve or a repayment, with the Idempotency-Key every
 * attempt sent (the caller's, or the one generated). After a final 503 or 408
 * the outcome is unknown: calling again with this key answers the first
 * call's outcome if it landed, where a new key could make a second hold.
 */
export type KeyedResult<T, C extends string> = Result<T, C> & { idempotencyKey: string };

export type BrokenCallKind =
  /** no answer at all after every retry: connection refused or lost, DNS, timeout */
  | 'network'
  /** a 5xx other than 503 after every retry */
  | 'server'
  /** an answer that is not the API's: not JSON, not a problem body (e.g. a wrong URL's HTML page) */
  | 'unexpected-answer';

export class QuotaClientError extends Error {
  override readonly name = 'QuotaClientError';
  constructor(
    readonly kind: BrokenCallKind,
    message: string,
    readonly details: {
      method: string;
      url: string;
      status?: number;
      attempts: number;
      cause?: unknown;
      /** A reserve's or repayment's key: the outcome is unknown, so retry with this key, not a new one. */
      idempotencyKey?: string;
    },
  ) {
    super(message, { cause: details.cause });
  }
}
