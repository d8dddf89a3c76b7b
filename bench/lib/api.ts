/** A small client for the service's HTTP API (set-up calls, replays, readiness). */

export const ADMIN_KEY = 'bench-admin-key-0001';
export const CLIENT_KEY = 'bench-client-key-0001';
export const API_KEYS = `admin:${ADMIN_KEY},client:${CLIENT_KEY}`;

export interface ApiAnswer {
  status: number;
  body: any;
  headers: Headers;
}

export function apiClient(baseUrl: string) {
  async function call(method: string, path: string, body?: unknown, options: { key?: string; headers?: Record<string, string> } = {}): Promise<ApiAnswer> {
    const headers: Record<string, string> = { authorization: `Bearer ${options.key ?? CLIENT_KEY}`, ...options.headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  return {
    baseUrl,
    call,
    admin: (method: string, path: string, body?: unknown) => call(method, path, body, { key: ADMIN_KEY }),

    async putProduct(productId: string, config: Record<string, unknown>): Promise<void> {
      const r = await call('PUT', `/v1/products/${productId}`, config, { key: ADMIN_KEY });
      if (r.status !== 201 && r.status !== 200) throw new Error(`PUT product ${productId}: ${r.status} ${JSON.stringify(r.body)}`);
    },

    /** Waits until /readyz answers 200. */
    async waitReady(timeoutMs = 30_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          const res = await fetch(`${baseUrl}/readyz`);
          await res.text();
          if (res.status === 200) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`${baseUrl} not ready within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

export type ApiClient = ReturnType<typeof apiClient>;
