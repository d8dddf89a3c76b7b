import { Router } from 'express';
import type { QuotaEngine } from '../../engine/quotaEngine.js';
import type { RequireRole } from '../auth.js';
import type { RateLimits } from '../rateLimits.js';
import { fingerprint } from '../fingerprint.js';
import { lineView } from '../lineView.js';
import { languageOf } from '../problems.js';
import { idempotencyKeyOf, invalid, parse, sendOutcome, sendRefusal, type JsonBodyReader } from '../respond.js';
import { lineJson } from '../../wireFormat.js';
import { idempotencyKeyHeader, lineParams, linePutBody, repayBody } from '../schemas.js';

export function lineRoutes(
  engine: QuotaEngine,
  requireRole: RequireRole,
  readBody: JsonBodyReader,
  rateLimits: Pick<RateLimits, 'checkCustomer'>,
): Router {
  const router = Router();
  const path = '/v1/products/:productId/customers/:customerId';

  router.put(path, requireRole('admin'), async (req, res) => {
    const { productId, customerId } = parse(lineParams, req.params, 'path');
    const body = parse(linePutBody, await readBody(req, res), 'body');
    if (body.customerId !== undefined && body.customerId !== customerId)
      throw invalid('body.customerId: differs from the path');
    const outcome = await engine.upsertLines(productId, [{ ...body, customerId }]);
    if (!outcome.ok) return sendRefusal(res, outcome);
    const created = outcome.value.created === 1;
    if (created) res.setHeader('Location', `/v1/products/${productId}/customers/${customerId}`);
    res.status(created ? 201 : 200).json(lineJson(outcome.value.line));
  });

  router.get(path, requireRole('client'), async (req, res) => {
    const { productId, customerId } = parse(lineParams, req.params, 'path');
    const outcome = await engine.readLineWithPool(productId, customerId);
    if (!outcome.ok) return sendRefusal(res, outcome);
    res.vary('Accept-Language');
    res.status(200).json(lineView(outcome.value.line, outcome.value.pool, languageOf(req)));
  });

  router.post(`${path}/repayments`, requireRole('client'), async (req, res) => {
    const { productId, customerId } = parse(lineParams, req.params, 'path');
    const idempotencyKey = idempotencyKeyOf(req, idempotencyKeyHeader);
    const rawBody = await readBody(req, res);
    const { amount } = parse(repayBody, rawBody, 'body');
    await rateLimits.checkCustomer(productId, customerId);
    const outcome = await engine.repay({
      productId,
      customerId,
      amount,
      idempotencyKey,
      fingerprint: fingerprint({ customerId, body: rawBody }),
    });
    sendOutcome(res, outcome, 200, lineJson);
  });

  return router;
}
