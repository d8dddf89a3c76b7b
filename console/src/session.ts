/**
 * Signing in: the API key lives in this tab's sessionStorage only (gone when
 * the tab closes, never sent anywhere but this service's /v1 API). The role
 * is found by a harmless admin-only read: the admin listing of an absent
 * product answers 404 to an admin and 403 to a client (auth and role come
 * before the product lookup in the contract's order).
 */
import { QuotaClient, QuotaClientError } from '@quota-allocator/client';

import type { Language } from './language.js';

export type { Language };
export type Role = 'admin' | 'client';

export interface Session {
  apiKey: string;
  role: Role;
}

const KEY_ITEM = 'quota-console.apiKey';
const LANGUAGE_ITEM = 'quota-console.language';
const ROLE_PROBE_PRODUCT = 'console-role-probe';

/** A client of this service's API, in the chosen language. */
export function makeClient(apiKey: string, language: Language): QuotaClient {
  return new QuotaClient({
    baseUrl: window.location.origin,
    apiKey,
    language,
    maxRetries: 1,
    // The browser's fetch must be called unbound from any object (else "Illegal invocation").
    fetch: (input, init) => window.fetch(input, init),
  });
}

export type SignInResult = { ok: true; session: Session } | { ok: false; message: string };

export async function signIn(apiKey: string): Promise<SignInResult> {
  const key = apiKey.trim();
  if (!key) return { ok: false, message: 'Enter an API key.' };
  try {
    const probe = await makeClient(key, 'en').admin.listReservations(ROLE_PROBE_PRODUCT, 'settlement_unknown', {
      limit: 1,
    });
    if (probe.ok) return { ok: true, session: { apiKey: key, role: 'admin' } };
    const code: string = probe.problem.code;
    if (code === 'UNAUTHENTICATED') return { ok: false, message: 'This API key is not known to the service.' };
    if (code === 'FORBIDDEN') return { ok: true, session: { apiKey: key, role: 'client' } };
    if (code === 'PRODUCT_NOT_FOUND') return { ok: true, session: { apiKey: key, role: 'admin' } };
    return { ok: false, message: `The service answered ${probe.problem.status} ${code}: ${probe.problem.detail}` };
  } catch (err) {
    return { ok: false, message: describeError(err) };
  }
}

export function saveSession(session: Session): void {
  window.sessionStorage.setItem(KEY_ITEM, session.apiKey);
}

export function forgetSession(): void {
  window.sessionStorage.removeItem(KEY_ITEM);
}

export function storedKey(): string | null {
  return window.sessionStorage.getItem(KEY_ITEM);
}

export function storedLanguage(): Language {
  return window.sessionStorage.getItem(LANGUAGE_ITEM) === 'zh-CN' ? 'zh-CN' : 'en';
}

export function saveLanguage(language: Language): void {
  window.sessionStorage.setItem(LANGUAGE_ITEM, language);
}

export function describeError(err: unknown): string {
  if (err instanceof QuotaClientError)
    return `The service could not be reached or answered unexpectedly (${err.kind}): ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
