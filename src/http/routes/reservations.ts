import { randomUUID } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import type { QuotaEngine } from '../../engine/quotaEngine.js';
import type { RequireRole } from '../auth.js';
import type { RateLimits } from '../rateLimits.js';
import { fingerprint } from '../fingerprint.js';
import {
  quickCommitBody,
  quickEmptyBody,
  quickIdempotencyKey,
  quickProductParams,
  quickReservationParams,
  quickReserveBody,
} from '../quickChecks.js';
import { idempotencyKeyOf, parse, sendOutcome, type JsonBodyReader } from '../respond.js';
import { reservationJson } from '../../wireFormat.js';
import {
  commitBody,
  emptyBody,
  idempotencyKeyHeader,
  productParams,
  reservationParams,
  reserveBody,
} from '../schemas.js';

/** The reservation routes' paths, as express matches them and the metrics label them. */
export const RESERVATION_PATHS = {
  reserve: '/v1/products/:productId/reservations',
  get: '/v1/products/:productId/reservations/:reservationId',
  commit: '/v1/products/:productId/reservations/:reservationId/commit',
  release: '/v1/products/:productId/reservations/:reservationId/release',
} as const;

export type ReservationHandler = (req: Request, res: Response) => Promise<void>;

/**
 * The handlers behind the reservation routes (after `requireRole('client')`):
 * mounted on express's router below and called directly by the fast path
 * (src/http/fastPath.ts), so both serve the same code.
 */
export function reservationHandlers(
  engine: QuotaEngine,
  readBody: JsonBodyReader,
  rateLimits: Pick<RateLimits, 'checkCustomer'>,
): Record<keyof typeof RESERVATION_PATHS, ReservationHandler> {
  return {
    async reserve(req, res) {
      const { productId } = quickProductParams(req.params) ?? parse(productParams, req.params, 'path');
      const idempotencyKey =
        quickIdempotencyKey(req.headers['idempotency-key']) ?? idempotencyKeyOf(req, idempotencyKeyHeader);
      const rawBody = await readBody(req, res);
      const body = quickReserveBody(rawBody) ?? parse(reserveBody, rawBody, 'body');
      await rateLimits.checkCustomer(productId, body.customerId);
      const outcome = await engine.reserve({
        productId,
        ...body,
        reservationId: randomUUID(),
        idempotencyKey,
        fingerprint: fingerprint(rawBody),
      });
      const location = outcome.ok ? `/v1/products/${productId}/reservations/${outcome.value.reservationId}` : '';
      sendOutcome(res, outcome, 201, reservationJson, { Location: location });
    },

    async get(req, res) {
      const { productId, reservationId } = reservationParamsOf(req);
      sendOutcome(res, await engine.getReservation(productId, reservationId), 200, reservationJson);
    },

    async commit(req, res) {
      const { productId, reservationId } = reservationParamsOf(req);
      const rawBody = (await readBody(req, res)) ?? {};
      const { amount } = quickCommitBody(rawBody) ?? parse(commitBody, rawBody, 'body');
      // Settlement follows from the outbox the commit script wrote (src/settlement/settlementFeed.ts).
      sendOutcome(res, await engine.commit(productId, reservationId, amount), 200, reservationJson);
    },

    async release(req, res) {
      const { productId, reservationId } = reservationParamsOf(req);
      const rawBody = (await readBody(req, res)) ?? {};
      if (!quickEmptyBody(rawBody)) parse(emptyBody, rawBody, 'body');
      sendOutcome(res, await engine.release(productId, reservationId), 200, reservationJson);
    },
  };
}

/** The path's ids: the quick check's answer, or zod's (whose 400 names the field). */
function reservationParamsOf(req: Request): { productId: string; reservationId: string } {
  return quickReservationParams(req.params) ?? parse(reservationParams, req.params, 'path');
}

export function reservationRoutes(
  handlers: Record<keyof typeof RESERVATION_PATHS, ReservationHandler>,
  requireRole: RequireRole,
): Router {
  const router = Router();
  router.post(RESERVATION_PATHS.reserve, requireRole('client'), handlers.reserve);
  router.get(RESERVATION_PATHS.get, requireRole('client'), handlers.get);
  router.post(RESERVATION_PATHS.commit, requireRole('client'), handlers.commit);
  router.post(RESERVATION_PATHS.release, requireRole('client'), handlers.release);
  return router;
}
