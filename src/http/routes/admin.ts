/**
 * Operator routes (admin): resolve an unknown settlement, re-drive a stuck
 * one, list a product's reservations by status, read a reservation's audit
 * trail and the service's own ledger; and the bull-board queue dashboard.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import { Router, type RequestHandler, type Response } from 'express';
import type { QuotaEngine } from '../../engine/quotaEngine.js';
import type { Queries } from '../../engine/queries.js';
import type { RequireRole } from '../auth.js';
import { problem, sendProblem } from '../problems.js';
import { parse, sendRefusal, type JsonBodyReader } from '../respond.js';
import { pageJson, reservationEventJson, reservationJson } from '../../wireFormat.js';
import { badCursorAs400 } from './listings.js';
import { ledgerQuery, productParams, reservationListQuery, reservationParams, resolveBody } from '../schemas.js';

export interface SettlementControl {
  ensureJob(productId: string, reservationId: string): Promise<string>;
  queues: Queue[];
}

export function adminRoutes(
  engine: QuotaEngine,
  queries: Queries,
  settlement: SettlementControl,
  requireRole: RequireRole,
  readBody: JsonBodyReader,
): Router {
  const router = Router();
  // Admin reads of an unknown product are 404 PRODUCT_NOT_FOUND like every other route, not an empty page.
  const productExists = async (productId: string, res: Response) => {
    const pool = await engine.readPool(productId);
    if (!pool.ok) sendRefusal(res, pool);
    return pool.ok;
  };
  const base = '/v1/products/:productId/reservations';

  router.post(`${base}/:reservationId/resolve`, requireRole('admin'), async (req, res) => {
    const { productId, reservationId } = parse(reservationParams, req.params, 'path');
    const { outcome, reason } = parse(resolveBody, await readBody(req, res), 'body');
    const result = await engine.recordSettlement(
      productId,
      reservationId,
      outcome,
      reason ?? `resolved by an operator: ${outcome}`,
      'settlement_unknown',
    );
    if (!result.ok) return sendRefusal(res, result);
    res.status(200).json(reservationJson(result.value.reservation));
  });

  router.post(`${base}/:reservationId/redrive`, requireRole('admin'), async (req, res) => {
    const { productId, reservationId } = parse(reservationParams, req.params, 'path');
    const current = await engine.getReservation(productId, reservationId);
    if (!current.ok) return sendRefusal(res, current);
    if (current.value.status !== 'committed') {
      return sendProblem(
        res,
        problem('RESERVATION_STATE_CONFLICT', {
          message: `only a committed reservation can be re-driven; this one is ${current.value.status}`,
          reservation: current.value,
        }),
      );
    }
    const job = await settlement.ensureJob(productId, reservationId);
    res.status(202).json({ reservation: reservationJson(current.value), job });
  });

  router.get(base, requireRole('admin'), async (req, res) => {
    const { productId } = parse(productParams, req.params, 'path');
    const { status, cursor, limit } = parse(reservationListQuery, req.query, 'query');
    if (!(await productExists(productId, res))) return;
    const page = await queries.listReservations(productId, status, { cursor, limit }).catch(badCursorAs400);
    res.json(pageJson(page, reservationJson));
  });

  router.get(`${base}/:reservationId/events`, requireRole('admin'), async (req, res) => {
    const { productId, reservationId } = parse(reservationParams, req.params, 'path');
    if (!(await productExists(productId, res))) return;
    const events = await queries.reservationEvents(productId, reservationId);
    if (events === null) return sendProblem(res, problem('RESERVATION_NOT_FOUND'));
    res.json({ reservationId, events: events.map(reservationEventJson) });
  });

  router.get('/v1/products/:productId/ledger', requireRole('admin'), async (req, res) => {
    const { productId } = parse(productParams, req.params, 'path');
    const { cursor, count } = parse(ledgerQuery, req.query, 'query');
    if (!(await productExists(productId, res))) return;
    res.json(await queries.internalLedger(productId, cursor, count));
  });

  const board = new ExpressAdapter();
  board.setBasePath('/admin/queues');
  createBullBoard({ queues: settlement.queues.map((q) => new BullMQAdapter(q)), serverAdapter: board });
  router.use('/admin/queues', requireRole('admin', { browser: true }), board.getRouter() as RequestHandler);

  return router;
}
