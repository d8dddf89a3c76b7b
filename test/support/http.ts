/**
 * The one HTTP client of the tests and the bench: real requests to a running
 * service (in-process or a process), the body kept both exactly as sent (for
 * byte-identical comparisons) and parsed. No vitest here: bench/ uses it too.
 */

export interface HttpAnswer<T = any> {
  status: number;
  headers: Headers;
  /** The body exactly as sent. */
  text: string;
  /** The body parsed as JSON, or the text when it is not JSON (e.g. /metrics). */
  body: T;
  /** How long the request took, start to last byte. */
  ms: number;
}

export interface HttpOptions {
  /** A value is sent as JSON; a string is sent as is. */
  body?: unknown;
  /** API key; null sends no Authorization header. Default: the client's default key. */
  key?: string | null;
  headers?: Record<string, string>;
  /** Content-Type of a body (default application/json); null sends none. */
  contentType?: string | null;
  /** Abort the request after this long (default: wait as long as it takes). */
  timeoutMs?: number;
}

export async function request<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  options: HttpOptions = {},
): Promise<HttpAnswer<T>> {
  const started = performance.now();
  const headers: Record<string, string> = { ...options.headers };
  if (options.key) headers.authorization ??= `Bearer ${options.key}`;
  const body =
    typeof options.body === 'string' || options.body === undefined ? options.body : JSON.stringify(options.body);
  if (body !== undefined && options.contentType !== null)
    headers['content-type'] ??= options.contentType ?? 'application/json';
  const signal = options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs);
  const res = await fetch(baseUrl + path, { method, headers, body, signal });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, text, body: parsed as T, ms: performance.now() - started };
}

export interface ApiKeys {
  admin: string;
  client: string;
}

/** The `QUOTA_API_KEYS` value that gives a service these keys. */
export const apiKeysEnv = (keys: ApiKeys) => `admin:${keys.admin},client:${keys.client}`;

/** A client of one service: requests with the client key unless told otherwise. */
export function apiClient(baseUrl: string, keys: ApiKeys) {
  const call = <T = any>(method: string, path: string, options: HttpOptions = {}) =>
    request<T>(baseUrl, method, path, { ...options, key: options.key === undefined ? keys.client : options.key });
  return {
    baseUrl,
    keys,
    call,
    admin: <T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
      call<T>(method, path, { body, headers, key: keys.admin }),
    client: <T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
      call<T>(method, path, { body, headers, key: keys.client }),
  };
}

export type ApiClient = ReturnType<typeof apiClient>;

/** GET /readyz answers 200 (false while it does not, or nothing listens yet). */
export async function isReady(baseUrl: string): Promise<boolean> {
  try {
    return (await request(baseUrl, 'GET', '/readyz', { timeoutMs: 3_000 })).status === 200;
  } catch {
    return false;
  }
}
