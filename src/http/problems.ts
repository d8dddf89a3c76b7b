/**
 * The one table from error code to HTTP answer, and the problem+json
 * (RFC 9457) bodies built from it. Details are made from the refusal's
 * context only, so a replayed refusal renders the same body again.
 */
import type { Response } from 'express';
import type { RefusalCode, RefusalContext } from '../engine/types.js';

export type ErrorCode =
  | Exclude<RefusalCode, 'TTL_OUT_OF_RANGE' | 'INVALID_CONFIG'>
  | 'INVALID_REQUEST'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'PAYLOAD_TOO_LARGE'
  | 'RATE_LIMITED'
  | 'UNAVAILABLE'
  | 'ROUTE_NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'REQUEST_TIMEOUT'
  | 'INTERNAL';

export const PROBLEMS: Record<ErrorCode, { status: number; title: string }> = {
  INVALID_REQUEST: { status: 400, title: 'The request is not valid' },
  UNAUTHENTICATED: { status: 401, title: 'Missing or unknown API key' },
  FORBIDDEN: { status: 403, title: 'This key may not do that' },
  PRODUCT_NOT_FOUND: { status: 404, title: 'No such product' },
  NO_CREDIT_LINE: { status: 404, title: 'The customer has no credit line in this product' },
  RESERVATION_NOT_FOUND: { status: 404, title: 'No such reservation' },
  ROUTE_NOT_FOUND: { status: 404, title: 'No such route' },
  POOL_EXHAUSTED: { status: 409, title: 'The pool cannot cover this amount' },
  CUSTOMER_LIMIT_EXCEEDED: { status: 409, title: "The customer's credit line cannot cover this amount" },
  ACCOUNT_PENDING_ACTIVATION: { status: 409, title: 'The account is pending activation' },
  ACCOUNT_FROZEN: { status: 409, title: 'The account is frozen' },
  ACCOUNT_CLOSED: { status: 409, title: 'The account is closed' },
  PRODUCT_NOT_OPEN: { status: 409, title: 'The product is not open yet' },
  PRODUCT_CLOSED: { status: 409, title: 'The product is closed' },
  PRODUCT_PAUSED: { status: 409, title: 'The product is paused' },
  RESERVATION_EXPIRED: { status: 409, title: 'The hold has expired' },
  RESERVATION_RELEASED: { status: 409, title: 'The hold was released' },
  RESERVATION_ALREADY_COMMITTED: { status: 409, title: 'The reservation is already committed' },
  RESERVATION_STATE_CONFLICT: { status: 409, title: 'The reservation is not in a state that allows this' },
  AMOUNT_OUT_OF_RANGE: { status: 422, title: "The amount is outside the product's range" },
  COMMIT_EXCEEDS_HOLD: { status: 422, title: 'The commit is larger than the hold' },
  REPAYMENT_EXCEEDS_DRAWN: { status: 422, title: 'The repayment is larger than the settled drawn amount' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, title: 'The idempotency key was used with another request' },
  METHOD_NOT_ALLOWED: { status: 405, title: 'This path does not take this method' },
  REQUEST_TIMEOUT: { status: 408, title: 'The request body did not arrive in time' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'The body is too large' },
  RATE_LIMITED: { status: 429, title: 'Too many requests' },
  UNAVAILABLE: { status: 503, title: 'The service cannot answer right now' },
  INTERNAL: { status: 500, title: 'Internal error' },
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  [extension: string]: unknown;
}

export function problem(code: ErrorCode, detail: string, extensions: Record<string, unknown> = {}): Problem {
  const { status, title } = PROBLEMS[code];
  return { type: `urn:quota-allocator:problem:${code}`, title, status, code, detail, ...extensions };
}

export interface ProblemOptions {
  /** Absolute time (ms) when retrying makes sense; becomes Retry-After. */
  retryAt?: number | undefined;
  /** The clock `retryAt` is measured against (the Redis server's, for quota decisions). */
  now?: number | undefined;
  retryAfterSeconds?: number | undefined;
}

export function sendProblem(res: Response, body: Problem, options: ProblemOptions = {}): void {
  let retryAfter = options.retryAfterSeconds;
  if (options.retryAt !== undefined) retryAfter = Math.ceil((options.retryAt - (options.now ?? Date.now())) / 1000);
  if (retryAfter !== undefined) res.setHeader('Retry-After', String(Math.max(1, retryAfter)));
  // Only server errors carry the request id in the body: 4xx bodies must stay
  // byte-identical when an idempotent answer is replayed (the header has it anyway).
  const requestId = body.status >= 500 ? res.getHeader('X-Request-Id') : undefined;
  res.status(body.status).type('application/problem+json').json(requestId ? { ...body, requestId } : body);
}

const money = (n: number | undefined | null) => (n === undefined || n === null ? 'unknown' : String(n));

/** Human-readable detail for a refusal, from its context alone. */
export function describeRefusal(code: ErrorCode, ctx: RefusalContext): string {
  const reason = ctx.statusReason ?? ctx.line?.statusReason;
  const withReason = (text: string) => (reason ? `${text}: ${reason}` : text);
  const at = (ms: number | undefined) => (ms === undefined ? '' : ` until ${new Date(ms).toISOString()}`);
  switch (code) {
    case 'POOL_EXHAUSTED':
      return `the pool can cover at most ${money(ctx.drawable)} for this customer now`;
    case 'CUSTOMER_LIMIT_EXCEEDED':
      return `the credit line has ${money(ctx.line?.available)} available`;
    case 'AMOUNT_OUT_OF_RANGE':
      return ctx.maxAmount === null || ctx.maxAmount === undefined
        ? `the amount must be at least ${money(ctx.minAmount)}`
        : `the amount must be between ${money(ctx.minAmount)} and ${money(ctx.maxAmount)}`;
    case 'ACCOUNT_PENDING_ACTIVATION':
      return withReason('the account is pending activation');
    case 'ACCOUNT_FROZEN':
      return withReason('the account is frozen');
    case 'ACCOUNT_CLOSED':
      return withReason('the account is closed');
    case 'PRODUCT_NOT_OPEN':
      return `the product opens at ${ctx.retryAt === undefined ? 'a later time' : new Date(ctx.retryAt).toISOString()}`;
    case 'PRODUCT_PAUSED':
      return `the product is paused${at(ctx.retryAt)}${ctx.pauseReason ? `: ${ctx.pauseReason}` : ''}`;
    case 'PRODUCT_CLOSED':
      return 'the product is closed for new draws';
    case 'RESERVATION_EXPIRED':
      return `the hold expired at ${ctx.reservation?.expiresAt ?? 'an earlier time'}`;
    case 'RESERVATION_RELEASED':
      return 'the hold was released';
    case 'RESERVATION_ALREADY_COMMITTED':
      return `the reservation is ${ctx.reservation?.status ?? 'committed'} with ${money(ctx.reservation?.committedAmount)} committed`;
    case 'RESERVATION_STATE_CONFLICT':
      return `the reservation is ${ctx.reservation?.status ?? 'in another state'}`;
    case 'COMMIT_EXCEEDS_HOLD':
      return `the hold is ${money(ctx.reservation?.amount)}`;
    case 'REPAYMENT_EXCEEDS_DRAWN':
      return `at most ${money(ctx.repayable)} of settled money can be repaid now`;
    case 'IDEMPOTENCY_KEY_REUSED':
      return 'this Idempotency-Key was first used with a different request body';
    case 'PRODUCT_NOT_FOUND':
      return 'no product with this id';
    case 'NO_CREDIT_LINE':
      return 'this customer has no credit line in this product';
    case 'RESERVATION_NOT_FOUND':
      return 'no reservation with this id in this product';
    default:
      return PROBLEMS[code].title;
  }
}
