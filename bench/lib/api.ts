/**
 * The bench's client of the service's HTTP API: the test harness's one
 * client (test/support/http.ts) with the bench's keys, plus set-up shortcuts.
 */
import { apiClient as harnessClient, apiKeysEnv, isReady } from '../../test/support/http.js';
import { waitFor } from '../../test/support/wait.js';

export const ADMIN_KEY = 'bench-admin-key-0001';
export const CLIENT_KEY = 'bench-client-key-0001';
export const API_KEYS = apiKeysEnv({ admin: ADMIN_KEY, client: CLIENT_KEY });

export function apiClient(baseUrl: string) {
  const api = harnessClient(baseUrl, { admin: ADMIN_KEY, client: CLIENT_KEY });
  return {
    ...api,

    async putProduct(productId: string, config: Record<string, unknown>): Promise<void> {
      const r = await api.admin('PUT', `/v1/products/${productId}`, config);
      if (r.status !== 201 && r.status !== 200)
        throw new Error(`PUT product ${productId}: ${r.status} ${JSON.stringify(r.body)}`);
    },

    /** Waits until /readyz answers 200. */
    async waitReady(timeoutMs = 30_000): Promise<void> {
      await waitFor(`${baseUrl} ready`, () => isReady(baseUrl), { timeoutMs });
    },
  };
}

export type ApiClient = ReturnType<typeof apiClient>;
