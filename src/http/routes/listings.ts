/**
 * Read-only listings (client role): every product, a page at a time, and one
 * customer's reservations in a product, newest first. Plain reads (no
 * decision depends on them); on a Redis Cluster each product's pool is read
 * by its own call, so no command spans two slots.
 */
import { Router } from 'express';
import type { QuotaEngine } from '../../engine/quotaEngine.js';
import { BadCursor, type Queries } from '../../engine/queries.js';
import type { RequireRole } from '../auth.js';
import { problem, sendProblem } from '../problems.js';
import { invalid, parse } from '../respond.js';
import { lineParams, pageQuery } from '../schemas.js';
import { pageJson, poolJson, reservationJson } from '../../wireFormat.js';

/** A cursor this listing did not give out: 400 INVALID_REQUEST naming the field. */
export function badCursorAs400(err: unknown): never {
  if (err instanceof BadCursor)
    throw invalid(err.message, [{ field: 'query.cursor', message: 'not a cursor of this listing' }]);
  throw err;
}

export function listingRoutes(
  engine: Pick<QuotaEngine, 'readPool'>,
  queries: Queries,
  requireRole: RequireRole,
): Router {
  const router = Router();

  router.get('/v1/products', requireRole('client'), async (req, res) => {
    const { cursor, limit } = parse(pageQuery, req.query, 'query');
    const { productIds, nextCursor } = await queries.productIdsPage(cursor, limit).catch(badCursorAs400);
    const pools = await Promise.all(productIds.map((productId) => engine.readPool(productId)));
    // A listed id whose pool is gone is left out (the index is the background jobs' work list).
    const items = pools.flatMap((outcome) => (outcome.ok ? [poolJson(outcome.value)] : []));
    res.json({ items, nextCursor });
  });

  router.get('/v1/products/:productId/customers/:customerId/reservations', requireRole('client'), async (req, res) => {
    const { productId, customerId } = parse(lineParams, req.params, 'path');
    const { cursor, limit } = parse(pageQuery, req.query, 'query');
    const page = await queries.customerReservations(productId, customerId, cursor, limit).catch(badCursorAs400);
    if (page === null) return sendProblem(res, problem('PRODUCT_NOT_FOUND'));
    res.json(pageJson(page, reservationJson));
  });

  return router;
}
