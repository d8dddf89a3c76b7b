import { Router } from 'express';
import type { QuotaEngine } from '../../engine/quotaEngine.js';
import type { PoolConfig } from '../../engine/types.js';
import type { RequireRole } from '../auth.js';
import { invalid, parse, sendOutcome, sendRefusal, type JsonBodyReader } from '../respond.js';
import { poolJson } from '../../wireFormat.js';
import { productParams, productPatchBody, productPutBody } from '../schemas.js';

export function productRoutes(engine: QuotaEngine, requireRole: RequireRole, readBody: JsonBodyReader): Router {
  const router = Router();

  router.put('/v1/products/:productId', requireRole('admin'), async (req, res) => {
    const { productId } = parse(productParams, req.params, 'path');
    const { productId: bodyProductId, ...config } = parse(productPutBody, await readBody(req, res), 'body');
    if (bodyProductId !== undefined && bodyProductId !== productId)
      throw invalid('body.productId: differs from the path');
    const outcome = await engine.upsertProduct(productId, config as Partial<PoolConfig>, 'put');
    if (!outcome.ok) return sendRefusal(res, outcome);
    const { created, pool } = outcome.value;
    if (created) res.setHeader('Location', `/v1/products/${productId}`);
    res.status(created ? 201 : 200).json(poolJson(pool));
  });

  router.patch('/v1/products/:productId', requireRole('admin'), async (req, res) => {
    const { productId } = parse(productParams, req.params, 'path');
    const changes = parse(productPatchBody, await readBody(req, res), 'body');
    const outcome = await engine.upsertProduct(productId, changes as Partial<PoolConfig>, 'patch');
    if (!outcome.ok) return sendRefusal(res, outcome);
    res.status(200).json(poolJson(outcome.value.pool));
  });

  router.get('/v1/products/:productId', requireRole('client'), async (req, res) => {
    const { productId } = parse(productParams, req.params, 'path');
    sendOutcome(res, await engine.readPool(productId), 200, poolJson);
  });

  return router;
}
