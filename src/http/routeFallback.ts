/**
 * What answers a request no route took. Under /v1 the contract puts 401
 * first on every path (an unknown route, OPTIONS, a wrong method): the caller
 * must hold a valid key before learning anything about the API's shape. With
 * one, a path some route serves with other methods is 405 with `Allow`, any
 * other path 404 ROUTE_NOT_FOUND.
 */
import type express from 'express';
import type { RequestHandler } from 'express';
import type { RequireRole } from './auth.js';
import { problem, sendProblem } from './problems.js';

interface RouteLayer {
  match(path: string): unknown;
  route?: { methods: Record<string, boolean> };
  handle?: { stack?: RouteLayer[] };
}

/** Methods the app's routes serve at `path` (HEAD wherever GET is), read from express's own route table. */
export function allowedMethods(app: express.Express, path: string): string[] {
  const methods = new Set<string>();
  const visit = (stack: RouteLayer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        if (!layer.match(path)) continue;
        for (const [method, on] of Object.entries(layer.route.methods))
          if (on && method !== '_all') methods.add(method.toUpperCase());
      } else if (layer.handle?.stack && layer.match(path)) {
        visit(layer.handle.stack);
      }
    }
  };
  visit((app.router as unknown as { stack: RouteLayer[] }).stack);
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

/** The last handler: 401 first under /v1, then 405 with Allow or 404. */
export function routeFallback(app: express.Express, requireRole: RequireRole): RequestHandler {
  const answer: RequestHandler = (req, res) => {
    const path = req.baseUrl + req.path;
    const allow = allowedMethods(app, path).filter((m) => m !== req.method);
    if (allow.length > 0) {
      res.setHeader('Allow', allow.join(', '));
      return sendProblem(
        res,
        problem('METHOD_NOT_ALLOWED', {
          message: `${req.method} is not allowed on ${path}; allowed: ${allow.join(', ')}`,
          method: req.method,
          path,
          allow,
        }),
      );
    }
    sendProblem(
      res,
      problem('ROUTE_NOT_FOUND', { message: `no route for ${req.method} ${path}`, method: req.method, path }),
    );
  };
  const underV1 = (path: string) => path === '/v1' || path.startsWith('/v1/');
  return (req, res, next) => {
    if (!underV1(req.baseUrl + req.path)) return answer(req, res, next);
    return requireRole('client')(req, res, (err?: unknown) => (err ? next(err) : answer(req, res, next)));
  };
}
