/**
 * QuotaClient: one method per route of the published API (shared/CONTRACT.md).
 * Every method answers a Result: refusals are values with `problem.code`
 * narrowed to what that route can answer; a QuotaClientError is thrown only
 * when the call itself broke (see transport.ts for the retry rules).
 */
import type * as Codes from './codes.js';
import { isReplayable, toBodyStream, type BulkSource } from './ndjson.js';
import type { KeyedResult, Result } from './result.js';
import { createTransport, type Request, type RequestSpec, type RetryEvent } from './transport.js';
import type {
  BulkImportSummary,
  IdempotencyOptions,
  Line,
  LineConfig,
  LedgerPage,
  Page,
  PageOptions,
  Pool,
  ProductConfig,
  ProductPatch,
  RedriveAnswer,
  Reservation,
  ReservationEvent,
  ReservationStatus,
  ReserveInput,
} from './types.js';

export interface QuotaClientOptions {
  /** The deployment's base URL, e.g. `https://quota.example.com` (without `/v1`). */
  baseUrl: string;
  apiKey: string;
  /** Per attempt (default 10 s; the service answers within 2 s even when Redis is not). */
  timeoutMs?: number;
  /** Retries after a lost connection, a timeout, 503, 408 or another 5xx (default 3). */
  maxRetries?: number;
  /** Sent as Accept-Language: `zh-CN` for Simplified Chinese titles and details, else English. */
  language?: string;
  /** The longest Retry-After waited for (default 5 s); an answer asking for longer is handed back. */
  maxRetryAfterMs?: number;
  /** First backoff step when the answer has no Retry-After (default 100 ms, doubling, capped at 2 s, with jitter). */
  backoffBaseMs?: number;
  /** Told about each retry (for logs and metrics). */
  onRetry?: (event: RetryEvent) => void;
  /** Another fetch (e.g. with a proxy agent); default the global one. */
  fetch?: typeof fetch;
}

const enc = encodeURIComponent;
const productPath = (p: string) => `/v1/products/${enc(p)}`;
const linePath = (p: string, c: string) => `${productPath(p)}/customers/${enc(c)}`;
const reservationPath = (p: string, r: string) => `${productPath(p)}/reservations/${enc(r)}`;

export class QuotaClient {
  readonly admin: QuotaAdmin;
  private readonly request: Request;

  constructor(options: QuotaClientOptions) {
    if (!options.baseUrl) throw new TypeError('QuotaClient: baseUrl is required');
    if (!options.apiKey) throw new TypeError('QuotaClient: apiKey is required');
    this.request = createTransport({
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      timeoutMs: options.timeoutMs ?? 10_000,
      maxRetries: options.maxRetries ?? 3,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 5_000,
      backoffBaseMs: options.backoffBaseMs ?? 100,
      fetch: options.fetch ?? globalThis.fetch,
      ...(options.language ? { language: options.language } : {}),
      ...(options.onRetry ? { onRetry: options.onRetry } : {}),
    });
    this.admin = new QuotaAdmin(this.request);
  }

  /**
   * Hold `amount` for a customer. Without `idempotencyKey` one is generated;
   * every retry of this call reuses it, so a 503 whose write did land is
   * answered with that first reservation, never a second hold. The key is
   * handed back (`result.idempotencyKey`, or `err.details.idempotencyKey` on
   * a thrown QuotaClientError) for the caller's own retry after a final 503,
   * 408 or broken call.
   */
  reserve(
    productId: string,
    input: ReserveInput,
    options: IdempotencyOptions = {},
  ): Promise<KeyedResult<Reservation, Codes.ReserveCode>> {
    return this.keyed(options, {
      method: 'POST',
      path: `${productPath(productId)}/reservations`,
      json: input,
      retryable: true,
    });
  }

  /** Commit all of the hold, or `amount` of it (the rest goes back at once). Repeating it is safe. */
  commit(productId: string, reservationId: string, amount?: number): Promise<Result<Reservation, Codes.CommitCode>> {
    return this.request({
      method: 'POST',
      path: `${reservationPath(productId, reservationId)}/commit`,
      json: amount === undefined ? {} : { amount },
      retryable: true,
    });
  }

  /** Give the hold back at once. Repeating it is safe (a released or expired hold answers 200). */
  release(productId: string, reservationId: string): Promise<Result<Reservation, Codes.ReleaseCode>> {
    return this.request({
      method: 'POST',
      path: `${reservationPath(productId, reservationId)}/release`,
      retryable: true,
    });
  }

  getReservation(productId: string, reservationId: string): Promise<Result<Reservation, Codes.GetReservationCode>> {
    return this.request({ method: 'GET', path: reservationPath(productId, reservationId), retryable: true });
  }

  /** The line with `drawable` (what a reserve would accept now) and its `blockers`. */
  getLine(productId: string, customerId: string): Promise<Result<Line, Codes.GetLineCode>> {
    return this.request({ method: 'GET', path: linePath(productId, customerId), retryable: true });
  }

  getProduct(productId: string): Promise<Result<Pool, Codes.GetProductCode>> {
    return this.request({ method: 'GET', path: productPath(productId), retryable: true });
  }

  listProducts(page: PageOptions = {}): Promise<Result<Page<Pool>, Codes.ListProductsCode>> {
    return this.request({ method: 'GET', path: '/v1/products', query: { ...page }, retryable: true });
  }

  /** A customer's reservations in one product, newest first, every state. */
  listCustomerReservations(
    productId: string,
    customerId: string,
    page: PageOptions = {},
  ): Promise<Result<Page<Reservation>, Codes.ListCustomerReservationsCode>> {
    return this.request({
      method: 'GET',
      path: `${linePath(productId, customerId)}/reservations`,
      query: { ...page },
      retryable: true,
    });
  }

  /** Pay back settled money; restores the line. Same key rules as reserve (the key is handed back too). */
  repay(
    productId: string,
    customerId: string,
    amount: number,
    options: IdempotencyOptions = {},
  ): Promise<KeyedResult<Line, Codes.RepayCode>> {
    return this.keyed(options, {
      method: 'POST',
      path: `${linePath(productId, customerId)}/repayments`,
      json: { amount },
      retryable: true,
    });
  }

  /** One call with one Idempotency-Key for all its attempts (the caller's or a new one), returned with the result. */
  private async keyed<T, C extends string>(
    options: IdempotencyOptions,
    spec: Omit<RequestSpec, 'idempotencyKey'>,
  ): Promise<KeyedResult<T, C>> {
    const idempotencyKey = options.idempotencyKey ?? globalThis.crypto.randomUUID();
    const result = await this.request<T, C>({ ...spec, idempotencyKey });
    return { ...result, idempotencyKey };
  }
}

/** The admin routes (an `admin` key): products, lines, bulk import, operator actions. */
export class QuotaAdmin {
  constructor(private readonly request: Request) {}

  /** Create (201) or replace (200) a product's config; counters are kept. */
  putProduct(productId: string, config: ProductConfig): Promise<Result<Pool, Codes.PutProductCode>> {
    return this.request({ method: 'PUT', path: productPath(productId), json: config, retryable: true });
  }

  /** Change some fields, e.g. `{ status: 'paused', pauseReason, resumeAt }`. */
  patchProduct(productId: string, changes: ProductPatch): Promise<Result<Pool, Codes.PatchProductCode>> {
    // Retried: setting the same fields twice leaves the same state.
    return this.request({ method: 'PATCH', path: productPath(productId), json: changes, retryable: true });
  }

  putLine(productId: string, customerId: string, line: LineConfig): Promise<Result<Line, Codes.PutLineCode>> {
    return this.request({ method: 'PUT', path: linePath(productId, customerId), json: line, retryable: true });
  }

  /**
   * Upsert many lines as one streamed NDJSON body: a file path, a stream of
   * NDJSON bytes (a Node Readable), or rows (an array, an iterable or an async
   * iterable). Retried only when the source can be read again (a path or an
   * array; rows are upserts, so sending them twice is harmless).
   */
  bulkImport(
    productId: string,
    source: BulkSource,
    options: { timeoutMs?: number } = {},
  ): Promise<Result<BulkImportSummary, Codes.BulkImportCode>> {
    return this.request({
      method: 'POST',
      path: `${productPath(productId)}/customers:bulk`,
      stream: () => toBodyStream(source),
      retryable: isReplayable(source),
      timeoutMs: options.timeoutMs ?? 600_000,
    });
  }

  /** Reservations in one state, oldest transition first. */
  listReservations(
    productId: string,
    status: ReservationStatus,
    page: PageOptions = {},
  ): Promise<Result<Page<Reservation>, Codes.ListReservationsCode>> {
    return this.request({
      method: 'GET',
      path: `${productPath(productId)}/reservations`,
      query: { status, ...page },
      retryable: true,
    });
  }

  /** A reservation's transitions (from, to, amount, reason, time). */
  events(
    productId: string,
    reservationId: string,
  ): Promise<Result<{ reservationId: string; events: ReservationEvent[] }, Codes.EventsCode>> {
    return this.request({
      method: 'GET',
      path: `${reservationPath(productId, reservationId)}/events`,
      retryable: true,
    });
  }

  /**
   * Settle or reverse a `settlement_unknown` reservation. Retried after a
   * lost answer: if the first attempt did land, the retry answers
   * RESERVATION_STATE_CONFLICT; read the reservation to see the outcome.
   */
  resolve(
    productId: string,
    reservationId: string,
    outcome: 'settled' | 'reversed',
    reason?: string,
  ): Promise<Result<Reservation, Codes.ResolveCode>> {
    return this.request({
      method: 'POST',
      path: `${reservationPath(productId, reservationId)}/resolve`,
      json: reason === undefined ? { outcome } : { outcome, reason },
      retryable: true,
    });
  }

  /** Make sure a committed reservation has a live settlement job (202). */
  redrive(productId: string, reservationId: string): Promise<Result<RedriveAnswer, Codes.RedriveCode>> {
    return this.request({
      method: 'POST',
      path: `${reservationPath(productId, reservationId)}/redrive`,
      retryable: true,
    });
  }

  /** The service's own ledger records (a deployment without SETTLEMENT_URL). */
  ledger(
    productId: string,
    page: { cursor?: string; count?: number } = {},
  ): Promise<Result<LedgerPage, Codes.LedgerCode>> {
    return this.request({
      method: 'GET',
      path: `${productPath(productId)}/ledger`,
      query: { ...page },
      retryable: true,
    });
  }
}
