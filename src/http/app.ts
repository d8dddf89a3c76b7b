/**
 * The HTTP application: auth, body limits, request ids and logs, the routes,
 * and the one error handler that turns anything thrown into problem+json.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { ApiKey } from '../config.js';
import type { Queries } from '../engine/queries.js';
import type { QuotaEngine } from '../engine/quotaEngine.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { createAuth, type RequireRole } from './auth.js';
import { consoleRoutes } from './console.js';
import { serveReservationsFirst } from './fastPath.js';
import { openApiRoutes } from './openapi.js';
import { problem, sendProblem } from './problems.js';
import { routeFallback } from './routeFallback.js';
import { REQUEST_DEADLINE_MS, requestDeadline, type InFlightSlot } from './deadline.js';
import type { RateLimits } from './rateLimits.js';
import type { Readiness } from './readiness.js';
import { DEFAULT_REQUEST_LOG, requestLog, type RequestLogSettings } from './requestLog.js';
import { createJsonBodyReader, HttpProblem } from './respond.js';
import { adminRoutes, type SettlementControl } from './routes/admin.js';
import { bulkImportRoutes } from './routes/bulkImport.js';
import { lineRoutes } from './routes/lines.js';
import { listingRoutes } from './routes/listings.js';
import { productRoutes } from './routes/products.js';
import { reservationHandlers, reservationRoutes } from './routes/reservations.js';

export interface AppDeps {
  engine: QuotaEngine;
  logger: Logger;
  metrics: Metrics;
  readiness: Readiness;
  /** The keys, or the keys in force now (a reloadable store's `current`). */
  apiKeys: readonly ApiKey[] | (() => readonly ApiKey[]);
  bodyLimitBytes: number;
  /** How long a request body may take to arrive (408 after); default 10 s. */
  bodyTimeoutMs?: number;
  bulkLimitBytes: number;
  queries: Queries;
  rateLimits: RateLimits;
  /** API requests in flight above which this instance answers 503 (0: never). */
  shedMaxInFlight: number;
  settlement: SettlementControl;
  /** LOG_REQUESTS / LOG_SLOW_REQUEST_MS: which requests get a log line (default: every one). */
  requestLog?: RequestLogSettings;
  /** PUBLIC_URL: the OpenAPI document's `servers` entry (default: the address the service listens on). */
  publicUrl?: string | undefined;
}

export { REQUEST_DEADLINE_MS };

/** Liveness, readiness and metrics: served by every role (the worker role serves only these). */
export function opsRoutes(readiness: Readiness, metrics: Metrics): express.Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const report = await readiness.check();
    res.status(report.ready ? 200 : 503).json({ status: report.ready ? 'ready' : 'not_ready', ...report.checks });
  });
  router.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.scrape());
  });
  return router;
}

/**
 * A path that does not percent-decode cannot be routed, so its role is
 * unknown: 401 without a valid key (the contract's order puts 401 first),
 * else 400 naming the path.
 */
function undecodablePath(requireRole: RequireRole): express.RequestHandler {
  return (req, res, next) => {
    try {
      decodeURIComponent(req.path);
      return next();
    } catch {
      return requireRole('client')(req, res, () => next(new URIError('undecodable path')));
    }
  };
}

/**
 * Load shedding: past `maxInFlight` API requests in flight, answer 503 at once
 * (with Retry-After) rather than queue work the instance cannot finish in time.
 * Health and metrics are mounted before it and always answer.
 */
function shedLoad(maxInFlight: number): express.RequestHandler {
  let inFlight = 0;
  return (_req, res, next) => {
    if (inFlight >= maxInFlight) {
      return sendProblem(res, problem('UNAVAILABLE', { message: 'this instance is shedding load; retry shortly' }), {
        retryAfterSeconds: 1,
      });
    }
    inFlight++;
    let counted = true;
    let done = false;
    // While its body is still arriving a request costs a socket, not work: it
    // does not count, so idle slow uploads cannot make the instance shed real traffic.
    const slot: InFlightSlot = {
      release: () => {
        if (counted && !done) inFlight--;
        counted = false;
      },
      reacquire: () => {
        if (!counted && !done) inFlight++;
        counted = true;
      },
    };
    res.locals.inFlightSlot = slot;
    const finish = () => {
      if (!done && counted) inFlight--;
      done = true;
    };
    res.on('finish', finish);
    res.on('close', finish);
    next();
  };
}

/** The worker role's HTTP surface: health and metrics only. */
export function createOpsApp(readiness: Readiness, metrics: Metrics): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(opsRoutes(readiness, metrics));
  app.use((_req, res) =>
    sendProblem(
      res,
      problem('ROUTE_NOT_FOUND', { message: 'the worker role serves only /healthz, /readyz and /metrics' }),
    ),
  );
  return app;
}

export function createApp(deps: AppDeps): express.Express {
  const { engine, logger, metrics, readiness } = deps;
  const requireRole = createAuth(deps.apiKeys, deps.rateLimits);
  const readBody = createJsonBodyReader(deps.bodyLimitBytes, deps.bodyTimeoutMs);

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // Request id, latency observation and (per LOG_REQUESTS) the log line. (Not
  // pino-http: the benchmark's profile showed its per-request child loggers
  // costing more than the line itself.)
  const logRequest = requestLog(logger, metrics, readiness, deps.requestLog ?? DEFAULT_REQUEST_LOG);
  app.use(logRequest);

  const reservations = reservationHandlers(engine, readBody, deps.rateLimits);
  const apiSteps = [
    ...(deps.shedMaxInFlight > 0 ? [shedLoad(deps.shedMaxInFlight)] : []),
    requestDeadline(REQUEST_DEADLINE_MS),
  ];

  // Health, metrics, the OpenAPI document and the console: none under /v1/, so
  // an API request skips their routers (each one entered costs a walk of its layers).
  const outsideApi = express.Router();
  outsideApi.use(opsRoutes(readiness, metrics));
  outsideApi.use(openApiRoutes(deps.publicUrl));
  outsideApi.use('/console', consoleRoutes()); // the operators' page, outside /v1 auth: it signs in with a key
  // (`stack` keeps these routes visible to routeFallback's 405 table and the OpenAPI test.)
  const skippedUnderV1: express.RequestHandler = (req, res, next) =>
    req.url.startsWith('/v1/') ? next() : outsideApi(req, res, next);
  app.use(Object.assign(skippedUnderV1, { stack: outsideApi.stack }));
  for (const step of apiSteps) app.use(step);
  app.use(undecodablePath(requireRole));

  // OPTIONS is not answered by express's automatic handler (which would list
  // a path's methods to anyone): it takes the fallback, 401 first.
  const fallback = routeFallback(app, requireRole);
  app.use((req, res, next) => (req.method === 'OPTIONS' ? fallback(req, res, next) : next()));

  // Hot routes first: express tries every layer in order, so a reservation request the fast
  // path left to the router should not walk past the admin, bulk import and dashboard layers.
  app.use(reservationRoutes(reservations, requireRole));
  app.use(lineRoutes(engine, requireRole, readBody, deps.rateLimits));
  app.use(productRoutes(engine, requireRole, readBody));
  app.use(listingRoutes(engine, deps.queries, requireRole));
  app.use(adminRoutes(engine, deps.queries, deps.settlement, requireRole, readBody));
  app.use(bulkImportRoutes(engine, requireRole, deps.bulkLimitBytes, deps.bodyTimeoutMs));

  app.use(fallback);

  const answerError = (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    // Answered already by the deadline: the route's late result has nowhere to go.
    if (res.locals.deadlinePassed) return;
    if (res.headersSent) return req.socket.destroy();
    if (err instanceof HttpProblem) return sendProblem(res, err.body, err.options);
    // Errors express and body-parser raise for a bad request carry a 4xx status:
    // a path that does not decode (URIError), a body that does not parse or decompress.
    const requestError = err as { type?: string; status?: number; statusCode?: number };
    const status = requestError.status ?? requestError.statusCode;
    if (requestError.type === 'entity.too.large' || status === 413) {
      return sendProblem(
        res,
        problem('PAYLOAD_TOO_LARGE', {
          message: `the body may be at most ${deps.bodyLimitBytes} bytes`,
          limitBytes: deps.bodyLimitBytes,
        }),
      );
    }
    if (err instanceof URIError || (status !== undefined && status >= 400 && status < 500)) {
      const { field, message } = describeRequestError(err, requestError.type);
      return sendProblem(
        res,
        problem(
          'INVALID_REQUEST',
          { message: `${field}: ${message}`, fields: [field] },
          { errors: [{ field, message }] },
        ),
      );
    }
    if (isRedisUnavailable(err)) {
      logger.warn({ err, requestId: res.locals.requestId }, 'redis unavailable');
      return sendProblem(res, problem('UNAVAILABLE', { message: 'the quota store is not answering; retry shortly' }), {
        retryAfterSeconds: 1,
      });
    }
    logger.error({ err, requestId: res.locals.requestId }, 'unexpected error');
    sendProblem(
      res,
      problem('INTERNAL', {
        message: `an internal error occurred; quote request id ${String(res.getHeader('X-Request-Id'))}`,
        requestId: String(res.getHeader('X-Request-Id')),
      }),
    );
  };
  app.use(answerError);

  // Reserve, commit and release in their plain form skip express's router (src/http/fastPath.ts).
  serveReservationsFirst(app, {
    first: [logRequest],
    before: apiSteps,
    auth: requireRole('client'),
    handlers: reservations,
    fallback,
    onError: answerError,
  });
  return app;
}

function describeRequestError(err: unknown, type: string | undefined): { field: string; message: string } {
  if (err instanceof URIError) return { field: 'path', message: 'not a valid percent-encoded URL' };
  if (type === 'entity.parse.failed') return { field: 'body', message: 'not valid JSON' };
  if (type) return { field: 'body', message: type.replace('.', ' ') };
  return { field: 'body', message: 'could not be read (bad encoding or framing)' };
}

// NOREPLICAS: also REDIS_WAIT_REPLICAS not confirmed in time (src/redis/durableWrite.ts); the Cluster ones: a failover
// in progress.
const UNAVAILABLE_MESSAGES = new RegExp(
  [
    'Command timed out',
    'Connection is closed',
    "Stream isn't writeable",
    'enableOfflineQueue',
    'ECONNREFUSED',
    'ECONNRESET',
    'EPIPE',
    'ETIMEDOUT',
    'Command aborted due to connection close',
    "Cluster isn't ready",
    'Too many Cluster redirections',
    'Failed to refresh slots cache',
    'None of startup nodes',
    '^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|READONLY|OOM|NOREPLICAS|MOVED|ASK)\\b',
  ].join('|'),
);

/** Redis is down, unreachable, restarting or too slow: the caller may retry. */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return err.name === 'MaxRetriesPerRequestError' || UNAVAILABLE_MESSAGES.test(err.message);
}
