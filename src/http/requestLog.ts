/**
 * The request id, the latency observation and the request log line: one
 * middleware, first in the app.
 *
 * Every request is observed in quota_http_request_duration_seconds. The log
 * line is what costs (one JSON line of about 290 bytes: at 2,000 req/s, 50 GB
 * a day and a tenth of an API process's CPU in the issue 11 profile), so
 * LOG_REQUESTS chooses which requests get one:
 *
 *   all       every request
 *   errors    only what an operator must see: 5xx answers and slow requests
 *             (LOG_SLOW_REQUEST_MS and over)
 *   0 < f < 1 errors, plus that fraction of the other requests, at random
 *
 * Whatever the setting, every request to an admin route of the API (product
 * and line writes, bulk imports, resolve, redrive, admin reads; refused ones
 * too) gets a line naming its key: they are few, and who did what must be
 * answerable (issue 10). 5xx lines are logged at error level, slow ones at
 * warn; the rest at info.
 * Counts of everything (by route and status class) stay in the metrics.
 */
import { randomUUID } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import type { Readiness } from './readiness.js';

export type RequestLogPolicy = { mode: 'all' } | { mode: 'errors' } | { mode: 'sampled'; fraction: number };

export interface RequestLogSettings {
  policy: RequestLogPolicy;
  /** A request that took this long or longer is always logged (warn). */
  slowMs: number;
}

export const DEFAULT_REQUEST_LOG: RequestLogSettings = { policy: { mode: 'all' }, slowMs: 500 };

/** LOG_REQUESTS as written: 'all', 'errors' or a fraction (0 < f < 1); undefined when it is none of them. */
export function parseRequestLogPolicy(value: string): RequestLogPolicy | undefined {
  if (value === 'all' || value === 'errors') return { mode: value };
  if (!/^(0?\.\d+|0)$/.test(value)) return undefined;
  const fraction = Number(value);
  return fraction > 0 && fraction < 1 ? { mode: 'sampled', fraction } : undefined;
}

/** The level a finished request is logged at, or undefined for no line. */
export function requestLogLevel(
  settings: RequestLogSettings,
  status: number,
  durationMs: number,
  random: () => number = Math.random,
  adminRoute = false,
): 'error' | 'warn' | 'info' | undefined {
  if (status >= 500) return 'error';
  if (durationMs >= settings.slowMs) return 'warn';
  const { policy } = settings;
  if (policy.mode === 'all' || adminRoute) return 'info';
  if (policy.mode === 'sampled' && random() < policy.fraction) return 'info';
  return undefined;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestLog(
  logger: Logger,
  metrics: Metrics,
  readiness: Readiness,
  settings: RequestLogSettings,
): RequestHandler {
  // One listener for every response (its request's start in res.locals), not a closure and a
  // `once` wrapper per request: this runs on every request (issue 11).
  function finished(this: Response): void {
    const { req, locals } = this;
    const ms = performance.now() - (locals.startedAt as number);
    const route = String(req.route?.path ?? 'unmatched');
    const status = this.statusCode;
    metrics.observeHttp(route, req.method, status, ms / 1000);
    const level = requestLogLevel(settings, status, ms, Math.random, locals.adminRoute === true);
    if (!level) return;
    const line = {
      requestId: locals.requestId as string,
      method: req.method,
      url: req.originalUrl,
      route,
      status,
      durationMs: Math.round(ms * 10) / 10,
      key: locals.keyName as string | undefined,
    };
    logger[level](line, 'request');
  }

  return (req, res, next) => {
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-Id', requestId);
    res.locals.requestId = requestId;
    // While draining, every answer closes its connection, so keep-alive
    // clients move to other instances and the process can exit promptly.
    if (readiness.draining) res.setHeader('Connection', 'close');
    res.locals.startedAt = performance.now();
    res.on('finish', finished);
    next();
  };
}
