/**
 * Small helpers for the HTTP contract tests: problem+json checks and setup
 * shortcuts. Every helper goes through real HTTP (support/http.ts, which
 * keeps the exact body bytes) against the in-process service.
 */
import { expect } from 'vitest';
import { uniqueId } from './engineContext.js';
import type { HttpAnswer, HttpOptions } from './http.js';
import { ADMIN_KEY, CLIENT_KEY, type ServiceContext } from './serviceContext.js';
import { sleep } from './wait.js';

export { ADMIN_KEY, CLIENT_KEY, sleep, uniqueId };

export type RawResponse<T = any> = HttpAnswer<T>;
export type RawOptions = HttpOptions;

/** A request with the client key unless `options.key` says otherwise. */
export const raw = <T = any>(
  svc: ServiceContext,
  method: string,
  path: string,
  options: RawOptions = {},
): Promise<RawResponse<T>> => svc.call<T>(method, path, options);

export const admin = <T = any>(
  svc: ServiceContext,
  method: string,
  path: string,
  body?: unknown,
  headers?: Record<string, string>,
) => svc.admin<T>(method, path, body, headers);

export const client = <T = any>(
  svc: ServiceContext,
  method: string,
  path: string,
  body?: unknown,
  headers?: Record<string, string>,
) => svc.client<T>(method, path, body, headers);

/** Stack-trace-like text that must never reach a client. */
const STACK_LIKE = /\n\s+at\s|\bat [\w.<>]+ \(|node_modules|\.ts:\d+|\.js:\d+|"stack"/;

/**
 * Checks an RFC 9457 problem body: media type, the five members, the
 * status and code, a non-empty detail, no stack traces. Returns the body.
 */
export function expectProblem(
  res: RawResponse | { status: number; headers: Headers; body: any },
  status: number,
  code: string,
) {
  const body = res.body;
  expect(
    { status: res.status, code: body?.code },
    `expected ${status} ${code}, got ${res.status} ${JSON.stringify(body)}`,
  ).toEqual({
    status,
    code,
  });
  expect(res.headers.get('content-type') ?? '').toMatch(/^application\/problem\+json\b/);
  expect(typeof body.type).toBe('string');
  expect(body.type.length).toBeGreaterThan(0);
  expect(typeof body.title).toBe('string');
  expect(body.title.length).toBeGreaterThan(0);
  expect(body.status).toBe(status);
  expect(body.code).toBe(code);
  expect(typeof body.detail).toBe('string');
  expect(body.detail.length).toBeGreaterThan(0);
  expect(body).not.toHaveProperty('stack');
  const text = 'text' in res ? res.text : JSON.stringify(body);
  expect(text).not.toMatch(STACK_LIKE);
  return body;
}

/** A 400 INVALID_REQUEST whose detail names `field` (a word of it, case-insensitive). */
export function expectInvalid(res: RawResponse, field: string | RegExp) {
  const body = expectProblem(res, 400, 'INVALID_REQUEST');
  const pattern = typeof field === 'string' ? new RegExp(field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i') : field;
  expect(body.detail, `detail should name ${String(field)}`).toMatch(pattern);
  return body;
}

/** Retry-After as whole seconds (string of digits) >= 1; returns the number. */
export function retryAfterOf(res: { headers: Headers }): number {
  const value = res.headers.get('retry-after');
  expect(value, 'Retry-After header').not.toBeNull();
  expect(value).toMatch(/^\d+$/);
  const n = Number(value);
  expect(n).toBeGreaterThanOrEqual(1);
  return n;
}

/**
 * Retry-After counts whole seconds until `targetMs`, rounded up: given the
 * local clock just before (t0) and just after (t1) the request, the header
 * must satisfy targetMs - t1 <= 1000 * R < targetMs - t0 + 1000.
 */
export function expectRetryAfterUntil(res: { headers: Headers }, targetMs: number, t0: number, t1: number) {
  const r = retryAfterOf(res);
  expect(r * 1000, `Retry-After ${r} should be ceil((target - now) / 1000)`).toBeGreaterThanOrEqual(targetMs - t1);
  expect(r * 1000).toBeLessThan(targetMs - t0 + 1000);
  return r;
}

export const iso = (ms: number) => new Date(ms).toISOString();

/** PUT a product (admin) and return its id; fails the test unless 201. */
export async function makeProduct(
  svc: ServiceContext,
  config: Record<string, unknown> = { capacity: 1_000_000 },
  productId = uniqueId('p'),
) {
  const res = await admin(svc, 'PUT', `/v1/products/${productId}`, config);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return productId;
}

/** PUT a line (admin); fails the test unless 201/200. */
export async function makeLine(
  svc: ServiceContext,
  productId: string,
  customerId: string,
  config: Record<string, unknown> = { limit: 1_000_000 },
) {
  const res = await admin(svc, 'PUT', `/v1/products/${productId}/customers/${customerId}`, config);
  expect([200, 201], JSON.stringify(res.body)).toContain(res.status);
  return res.body;
}

export async function patchProduct(svc: ServiceContext, productId: string, changes: Record<string, unknown>) {
  const res = await admin(svc, 'PATCH', `/v1/products/${productId}`, changes);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

export function reserve(svc: ServiceContext, productId: string, body: unknown, key: string | null = uniqueId('k')) {
  return client(
    svc,
    'POST',
    `/v1/products/${productId}/reservations`,
    body,
    key === null ? {} : { 'Idempotency-Key': key },
  );
}

/** Reserve that must succeed; returns the reservation. */
export async function hold(
  svc: ServiceContext,
  productId: string,
  customerId: string,
  amount: number,
  extra: Record<string, unknown> = {},
) {
  const res = await reserve(svc, productId, { customerId, amount, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

export function commit(svc: ServiceContext, productId: string, reservationId: string, body?: unknown) {
  return client(svc, 'POST', `/v1/products/${productId}/reservations/${reservationId}/commit`, body);
}

export function release(svc: ServiceContext, productId: string, reservationId: string) {
  return client(svc, 'POST', `/v1/products/${productId}/reservations/${reservationId}/release`);
}

export async function getPool(svc: ServiceContext, productId: string) {
  const res = await client(svc, 'GET', `/v1/products/${productId}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

export async function getLine(svc: ServiceContext, productId: string, customerId: string) {
  const res = await client(svc, 'GET', `/v1/products/${productId}/customers/${customerId}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

export async function getReservation(svc: ServiceContext, productId: string, reservationId: string) {
  const res = await client(svc, 'GET', `/v1/products/${productId}/reservations/${reservationId}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body;
}

export function repay(
  svc: ServiceContext,
  productId: string,
  customerId: string,
  body: unknown,
  key: string | null = uniqueId('k'),
) {
  return client(
    svc,
    'POST',
    `/v1/products/${productId}/customers/${customerId}/repayments`,
    body,
    key === null ? {} : { 'Idempotency-Key': key },
  );
}

export const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
