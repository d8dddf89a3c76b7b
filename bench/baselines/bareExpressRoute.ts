/**
 * The bare route: an express 5 app whose reserve route does only the same
 * single FCALL of our reserve function as the service (same keys, same
 * arguments, from the script catalogue), with no validation, auth, metrics, logs or idempotency
 * fingerprint. Measured against our real route, the difference is the cost
 * of the service's production features. Also a bare hello route (express
 * alone). A benchmark program, run as a node:cluster worker by the harness.
 *
 * Environment: PORT, REDIS_URL, KEY_PREFIX, RESERVE_FUNCTION (the loaded library's reserve function).
 */
import { randomUUID } from 'node:crypto';
import express from 'express';
import { Redis } from 'ioredis';
import { keysFor, SCRIPTS, type ReserveRequest } from '../../src/engine/scriptCatalogue.js';
import { createKeys } from '../../src/redis/keys.js';

const port = Number(process.env.PORT);
const reserveFunction = process.env.RESERVE_FUNCTION!;
const settings = { reclaimLimit: 100, idempotencyTtlSeconds: 86_400, idempotencyRefusalTtlSeconds: 3_600 };
const keys = createKeys(process.env.KEY_PREFIX ?? 'qa');
const redis = new Redis(process.env.REDIS_URL!);

const app = express();
app.use(express.json());

app.get('/hello', (_req, res) => {
  res.send('hello');
});

app.post('/v1/products/:productId/reservations', async (req, res) => {
  const productId = req.params.productId;
  const { customerId, amount } = req.body as { customerId: string; amount: number };
  const idempotencyKey = req.get('idempotency-key')!;
  const reservationId = randomUUID();
  const request: ReserveRequest = { productId, customerId, reservationId, amount, idempotencyKey, fingerprint: 'fp' };
  const scriptKeys = keysFor(SCRIPTS.reserve, request, keys);
  const args = SCRIPTS.reserve.args(request, settings);
  const [code, , , payload] = (await redis.call(
    'FCALL',
    reserveFunction,
    scriptKeys.length,
    ...scriptKeys,
    ...args,
  )) as [string, string, string, string];
  res
    .status(code === 'OK' ? 201 : 409)
    .type('application/json')
    .send(payload);
});

const server = app.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  server.closeIdleConnections();
  redis.disconnect();
  process.exit(0);
});
