import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import type { QuotaEngine } from '../../engine/quotaEngine.js';
import type { RequireRole } from '../auth.js';
import type { RateLimits } from '../rateLimits.js';
import { fingerprint } from '../fingerprint.js';
import { idempotencyKeyOf, parse, sendOutcome, type JsonBodyReader } from '../respond.js';
import { reservationJson } from '../../wireFormat.js';
import { commitBody, idempotencyKeyHeader, productParams, reservationParams, reserveBody } from '../schemas.js';

/** Called after every successful commit answer (enqueues settlement; idempotent). */
export type OnCommitted = (productId: string, reservationId: string) => Promise<void>;

export function reservationRoutes(
  engine: QuotaEngine,
  requireRole: RequireRole,
  readBody: JsonBodyReader,
  onCommitted: OnCommitted,
  rateLimits: Pick<RateLimits, 'checkCustomer'>,
): Router {
  const router = Router();
  const base = '/v1/products/:productId/reservations';

  router.post(base, requireRole('client'), async (req, res) => {
    const { productId } = parse(productParams, req.params, 'path');
    const idempotencyKey = idempotencyKeyOf(req, idempotencyKeyHeader);
    const rawBody = await readBody(req, res);
    const body = parse(reserveBody, rawBody, 'body');
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
  });

  router.get(`${base}/:reservationId`, requireRole('client'), async (req, res) => {
    const { productId, reservationId } = parse(reservationParams, req.params, 'path');
    sendOutcome(res, await engine.getReservation(productId, reservationId), 200, reservationJson);
  });

  router.post(`${base}/:reservationId/commit`, requireRole('client'), async (req, res) => {
    const { productId, reservationId } = parse(reservationParams, req.params, 'path');
    const { amount } = parse(commitBody, (await readBody(req, res)) ?? {}, 'body');
    const outcome = await engine.commit(productId, reservationId, amount);
    if (outcome.ok && outcome.value.status === 'committed') await onCommitted(productId, reservationId);
    sendOutcome(res, outcome, 200, reservationJson);
  });

  router.post(`${base}/:reservationId/release`, requireRole('client'), async (req, res) => {
    const { productId, reservationId } = parse(reservationParams, req.params, 'path');
    parse(commitBody.pick({}), (await readBody(req, res)) ?? {}, 'body');
    sendOutcome(res, await engine.release(productId, reservationId), 200, reservationJson);
  });

  return router;
}
