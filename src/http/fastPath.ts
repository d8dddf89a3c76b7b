/**
 * The reservation routes' fast path (issue 11): a POST reserve, commit or
 * release whose URL is in the one plain form (lower-case path, ids of
 * [A-Za-z0-9._-], an optional trailing slash and query) is matched by one
 * precompiled regular expression before express's router, and runs the steps
 * the router would give it, in the same order: the request log, load
 * shedding, the answer deadline, `requireRole('client')`, the route's handler
 * (src/http/routes/reservations.ts); an error goes to the app's one error
 * handler. Express's app and router set-up and its walk of the app's layers
 * and a nested router were about a sixth of a reserve's CPU in the profile
 * (bench/profiles/README.md).
 *
 * Everything else (another method, a percent-encoded or malformed id, upper
 * case, a path no route serves) goes to express's router, which still holds
 * these routes: their answers there (400 naming the field, 405 with Allow,
 * 404) are unchanged. The steps the fast path leaves out are no-ops for the
 * URLs it takes: the non-API routers (the path is under /v1/), the
 * undecodable-path check (nothing to decode) and the OPTIONS fallback (the
 * method is POST). While anything subscribes to express's router tracing
 * channel (an APM agent), every request goes through the router, so it sees them all.
 */
import { tracingChannel } from 'node:diagnostics_channel';
import type express from 'express';
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { RESERVATION_PATHS, type ReservationHandler } from './routes/reservations.js';

const ID = '([A-Za-z0-9._-]{1,64})';
const RESERVATION_POST = new RegExp(`^/v1/products/${ID}/reservations(?:/${ID}/(commit|release))?/?(?:\\?|$)`);

type FastOperation = 'reserve' | 'commit' | 'release';

/** What express's router sets as `req.route` (the request log and the metrics label it by its `path`). */
const ROUTES: Record<FastOperation, { path: string }> = {
  reserve: { path: RESERVATION_PATHS.reserve },
  commit: { path: RESERVATION_PATHS.commit },
  release: { path: RESERVATION_PATHS.release },
};

/** The router's own tracing channel (router/lib/tracing.js): subscribed, the router must see every request. */
const routerTracing = tracingChannel('express.router.request');
const traced = () =>
  routerTracing.start.hasSubscribers ||
  routerTracing.end.hasSubscribers ||
  routerTracing.asyncStart.hasSubscribers ||
  routerTracing.asyncEnd.hasSubscribers ||
  routerTracing.error.hasSubscribers;

export interface FastPathSteps {
  /** The steps every request passes first, in the app's order (the request log). */
  first: RequestHandler[];
  /** The steps an API request passes next, in the app's order (load shedding, the deadline). */
  before: RequestHandler[];
  /** `requireRole('client')`. */
  auth: RequestHandler;
  handlers: Record<FastOperation, ReservationHandler>;
  /** What answers when a step passes the request on unanswered (the app's 404/405 fallback). */
  fallback: RequestHandler;
  /** The app's error handler. */
  onError: ErrorRequestHandler;
}

/** Runs a handler that may return a promise; a throw or rejection goes to `next` as in express 5's router. */
function invoke(handler: RequestHandler, req: Request, res: Response, next: NextFunction): void {
  let ret: unknown;
  try {
    ret = handler(req, res, next);
  } catch (err) {
    next(err);
    return;
  }
  if (ret instanceof Promise) ret.then(undefined, (err: unknown) => next(err ?? new Error('Rejected promise')));
}

/**
 * Puts the fast path ahead of `app`'s router. Call once the app is complete;
 * `app` must not serve an X-Powered-By header (express's app.handle would add
 * it; createApp turns it off).
 */
export function serveReservationsFirst(app: express.Express, steps: FastPathSteps): void {
  const { first, before, auth, handlers, fallback, onError } = steps;
  const withExpress = app as unknown as {
    handle(req: Request, res: Response, callback?: NextFunction): void;
    request: object;
    response: object;
  };
  const expressHandle = withExpress.handle.bind(app);
  const stepsBeforeRoute = [...first, ...before];

  const serve = (req: Request, res: Response, match: RegExpExecArray): void => {
    const productId = match[1]!;
    const reservationId = match[2];
    const operation: FastOperation = (match[3] as 'commit' | 'release' | undefined) ?? 'reserve';
    const handler = handlers[operation];
    // The end of the line: an error to the error handler (which answers everything it is given).
    const done: NextFunction = (err?: unknown) => {
      if (!err) return invoke(fallback, req, res, done);
      try {
        onError(err, req, res, () => undefined);
      } catch {
        req.socket.destroy();
      }
    };
    const route = () => {
      req.params = reservationId === undefined ? { productId } : { productId, reservationId };
      (req as { route?: unknown }).route = ROUTES[operation];
      invoke(auth, req, res, (err?: unknown) => (err ? done(err) : invoke(handler, req, res, done)));
    };
    let step = 0;
    const proceed = (err?: unknown): void => {
      if (err) return done(err);
      const next = stepsBeforeRoute[step++];
      if (next) return invoke(next, req, res, proceed);
      route();
    };
    proceed();
  };

  withExpress.handle = (req, res, callback) => {
    const match = !callback && req.method === 'POST' && !traced() ? RESERVATION_POST.exec(req.url) : null;
    if (!match) return expressHandle(req, res, callback);
    // What express's app.handle and router.handle set up before the first layer.
    req.res = res;
    res.req = req;
    Object.setPrototypeOf(req, withExpress.request);
    Object.setPrototypeOf(res, withExpress.response);
    if (!res.locals) res.locals = Object.create(null) as Record<string, unknown>;
    req.baseUrl = '';
    req.originalUrl = req.originalUrl || req.url;
    serve(req, res, match);
  };
}
