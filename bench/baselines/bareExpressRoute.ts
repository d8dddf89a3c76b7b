/**
 * The bare route: an express 5 app whose reserve route does only the same
 * single EVALSHA of our reserve script as the service (same keys, same
 * arguments), with no validation, auth, metrics, logs or idempotency
 * fingerprint. Measured against our real route, the difference is the cost
 * of the service's production features. Also a bare hello route (express
 * alone). A benchmark program, run as a node:cluster worker by the harness.
 *
 * Environment: PORT, REDIS_URL, KEY_PREFIX, RESERVE_SHA.
 */
import { randomUUID } from 'node:crypto';
import express from 'express';
import { Redis } from 'ioredis';
import { createKeys } from '../../src/redis/keys.js';

const port = Number(process.env.PORT);
const sha = process.env.RESERVE_SHA!;
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
  const [code, , , payload] = (await redis.evalsha(
    sha,
    5,
    keys.pool(productId),
    keys.status(productId, 'held'),
    keys.line(productId, customerId),
    keys.idempotency(productId, 'reserve', idempotencyKey),
    keys.reservation(productId, reservationId),
    productId,
    customerId,
    reservationId,
    amount,
    '',
    '',
    'fp',
    86_400,
    100,
    idempotencyKey,
  )) as [string, string, string, string];
  res.status(code === 'OK' ? 201 : 409).type('application/json').send(payload);
});

const server = app.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  server.closeIdleConnections();
  redis.disconnect();
  process.exit(0);
});
