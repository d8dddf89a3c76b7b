/**
 * The reservation routes' fast path (issue 11): a POST reserve, commit or
 * release whose URL is in the one plain form (lower-case path, ids of
 * [A-Za-z0-9._-], an optional trailing slash and query) is matched by one
 * precompiled regular expression right after the request log, and runs the
 * same steps express's router would give it, in the same order: load
 * shedding, the answer deadline, `requireRole('client')`, the route's
 * handler (src/http/routes/reservations.ts). Express's router walked half a
 * dozen app layers and a nested router for each such request (about a tenth
 * of the API process's CPU in the profile, bench/profiles/README.md).
 *
 * Everything else (another method, a percent-encoded or malformed id, upper
 * case, a path no route serves) goes on to express's router, which still
 * holds these routes: their answers there (400 naming the field, 405 with
 * Allow, 404) are unchanged. The steps skipped here are no-ops for the URLs
 * matched: the non-API routers (the path is under /v1/), the undecodable-path
 * check (nothing to decode) and the OPTIONS fallback (the method is POST).
 * Errors go to `next(err)`, so the app's one error handler answers them.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
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

export interface FastPathSteps {
  /** The app-level steps an API request passes first, in order (load shedding, the deadline). */
  before: RequestHandler[];
  /** `requireRole('client')`. */
  auth: RequestHandler;
  handlers: Record<FastOperation, ReservationHandler>;
}

/** Runs a handler that may return a promise; a rejection goes to `next` as express 5's router does it. */
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

export function reservationFastPath(steps: FastPathSteps): RequestHandler {
  const { before, auth, handlers } = steps;
  return (req, res, next) => {
    if (req.method !== 'POST') return next();
    const match = RESERVATION_POST.exec(req.url);
    if (!match) return next();
    const productId = match[1]!;
    const reservationId = match[2];
    const operation: FastOperation = (match[3] as 'commit' | 'release' | undefined) ?? 'reserve';
    const handler = handlers[operation];
    const route = () => {
      req.params = reservationId === undefined ? { productId } : { productId, reservationId };
      (req as { route?: unknown }).route = ROUTES[operation];
      invoke(auth, req, res, (err?: unknown) => {
        if (err) return next(err);
        invoke(handler, req, res, next);
      });
    };
    let step = 0;
    const proceed = (err?: unknown): void => {
      if (err) return next(err);
      const before_ = before[step++];
      if (before_) return invoke(before_, req, res, proceed);
      route();
    };
    proceed();
  };
}
