/**
 * One HTTP call with the retry rules the API's correctness depends on:
 * - retried: no answer (connection refused or lost, timeout), 503, 408, and
 *   other 5xx; only for calls marked retryable, i.e. safe to repeat: reads,
 *   PUTs, commit/release (idempotent by state), and reserve/repayment,
 *   whose caller fixed one Idempotency-Key for every attempt;
 * - the wait is the answer's Retry-After when it has one (an answer asking
 *   for longer than `maxRetryAfterMs` is handed back rather than waited
 *   for), else exponential backoff with jitter;
 * - after the last attempt a 503/408 is handed back as a problem (the
 *   outcome is unknown; the caller decides), anything else is thrown.
 */
import { QuotaClientError, type Problem, type Result } from './result.js';

export interface RetryEvent {
  method: string;
  path: string;
  /** The attempt that failed, counting from 1. */
  attempt: number;
  reason: string;
  delayMs: number;
}

export interface TransportOptions {
  baseUrl: string;
  apiKey: string;
  timeoutMs: number;
  maxRetries: number;
  language?: string;
  maxRetryAfterMs: number;
  backoffBaseMs: number;
  onRetry?: (event: RetryEvent) => void;
  fetch: typeof fetch;
}

export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH';
  path: string;
  query?: Record<string, string | number | undefined>;
  /** A JSON value, or a function making a fresh body stream per attempt (bulk import). */
  json?: unknown;
  stream?: () => ReadableStream<Uint8Array>;
  contentType?: string;
  /** Sent as Idempotency-Key on every attempt, and put on a thrown QuotaClientError. */
  idempotencyKey?: string;
  retryable: boolean;
  /** Per-call timeout (a bulk import may need longer than one decision). */
  timeoutMs?: number;
}

const RETRYABLE_STATUSES = new Set([408, 500, 502, 503, 504]);
const BACKOFF_CAP_MS = 2_000;

export function createTransport(options: TransportOptions) {
  const base = options.baseUrl.replace(/\/+$/, '');

  return async function request<T, C extends string>(spec: RequestSpec): Promise<Result<T, C>> {
    const url = base + spec.path + queryString(spec.query);
    const attempts = spec.retryable ? options.maxRetries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= attempts;
      let response: Response;
      let text: string;
      try {
        response = await options.fetch(url, {
          method: spec.method,
          headers: headersFor(spec, options),
          ...bodyFor(spec),
          signal: AbortSignal.timeout(spec.timeoutMs ?? options.timeoutMs),
        });
        text = await response.text();
      } catch (cause) {
        const reason = describeNetworkError(cause);
        if (last) {
          throw new QuotaClientError(
            'network',
            `${spec.method} ${url}: ${reason} (after ${attempt} attempt${attempt > 1 ? 's' : ''})`,
            { method: spec.method, url, attempts: attempt, cause, ...keyOf(spec) },
          );
        }
        await pause(backoff(attempt, options.backoffBaseMs), spec, attempt, reason);
        continue;
      }

      const status = response.status;
      const retryAfterSeconds = parseRetryAfter(response.headers.get('retry-after'));
      if (!last && RETRYABLE_STATUSES.has(status)) {
        const wait =
          retryAfterSeconds === undefined ? backoff(attempt, options.backoffBaseMs) : retryAfterSeconds * 1000;
        if (wait <= options.maxRetryAfterMs) {
          await pause(wait, spec, attempt, `status ${status}`);
          continue;
        }
      }
      return interpret<T, C>(spec, url, attempt, response, text, retryAfterSeconds);
    }
  };

  async function pause(delayMs: number, spec: RequestSpec, attempt: number, reason: string) {
    options.onRetry?.({ method: spec.method, path: spec.path, attempt, reason, delayMs });
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}

export type Request = ReturnType<typeof createTransport>;

function interpret<T, C extends string>(
  spec: RequestSpec,
  url: string,
  attempts: number,
  response: Response,
  text: string,
  retryAfterSeconds: number | undefined,
): Result<T, C> {
  const status = response.status;
  const broken = (kind: 'server' | 'unexpected-answer', why: string) =>
    new QuotaClientError(kind, `${spec.method} ${url}: ${why}`, {
      method: spec.method,
      url,
      status,
      attempts,
      ...keyOf(spec),
    });

  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    if (status >= 500 && status !== 503) throw broken('server', `status ${status} after ${attempts} attempt(s)`);
    throw broken(
      'unexpected-answer',
      `status ${status} with a body that is not JSON (is this the quota-allocator API? ${snippet(text)})`,
    );
  }
  if (status >= 200 && status < 300) {
    return { ok: true, value: body as T, status, replayed: response.headers.get('idempotent-replayed') === 'true' };
  }
  if (status >= 500 && status !== 503)
    throw broken('server', `status ${status} after ${attempts} attempt(s): ${snippet(text)}`);
  if (!isProblem(body))
    throw broken('unexpected-answer', `status ${status} without a problem+json body: ${snippet(text)}`);
  const problem = body as Problem<C>;
  if (retryAfterSeconds !== undefined) problem.retryAfterSeconds = retryAfterSeconds;
  return { ok: false, problem };
}

function keyOf(spec: RequestSpec): { idempotencyKey?: string } {
  return spec.idempotencyKey === undefined ? {} : { idempotencyKey: spec.idempotencyKey };
}

function isProblem(body: unknown): boolean {
  return (
    typeof body === 'object' &&
    body !== null &&
    typeof (body as { code?: unknown }).code === 'string' &&
    typeof (body as { status?: unknown }).status === 'number'
  );
}

function headersFor(spec: RequestSpec, options: TransportOptions): Record<string, string> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${options.apiKey}`,
    accept: 'application/json, application/problem+json',
  };
  if (spec.idempotencyKey !== undefined) headers['idempotency-key'] = spec.idempotencyKey;
  if (options.language) headers['accept-language'] = options.language;
  if (spec.json !== undefined) headers['content-type'] = 'application/json';
  if (spec.stream) headers['content-type'] = spec.contentType ?? 'application/x-ndjson';
  return headers;
}

function bodyFor(spec: RequestSpec): RequestInit {
  if (spec.json !== undefined) return { body: JSON.stringify(spec.json) };
  // Node's fetch needs `duplex: 'half'` to send a stream body (not in the DOM RequestInit type).
  if (spec.stream) return { body: spec.stream(), duplex: 'half' } as RequestInit;
  return {};
}

function queryString(query: RequestSpec['query']): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** Whole seconds (the contract's form); an HTTP date is accepted too. */
function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** Exponential backoff with jitter (half fixed, half random), so many clients retrying at once spread out. */
function backoff(attempt: number, baseMs: number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, baseMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

function describeNetworkError(err: unknown): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
    return 'no answer in time (timeout)';
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  if (cause?.code) return `${cause.code}${cause.message ? `: ${cause.message}` : ''}`;
  // undici says only "fetch failed"; the reason is in its cause (e.g. "bad port").
  if (cause?.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 120 ? `${flat.slice(0, 120)}…` : flat || '(empty)';
}
