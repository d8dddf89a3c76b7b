/**
 * The bare express app the issue compares our routes with: express 5 and
 * express.json(), and per route one EVALSHA of the minimal script
 * (bench/lua/minimal-*.lua): no auth, validation, metrics, logs, deadline or
 * idempotency fingerprint. A benchmark program, run as a node:cluster worker
 * by the harness.
 *
 * Environment: PORT, REDIS_URL, MINIMAL_SHAS (JSON {reserve, commit, release}).
 */
import { randomUUID } from 'node:crypto';
import express from 'express';
import { Redis } from 'ioredis';
import { minimalArgs, type MinimalShas } from './minimalScripts.js';

const port = Number(process.env.PORT);
const shas = JSON.parse(process.env.MINIMAL_SHAS!) as MinimalShas;
const redis = new Redis(process.env.REDIS_URL!);

const app = express();
app.use(express.json());

app.get('/hello', (_req, res) => {
  res.send('hello');
});

const base = '/v1/products/:productId/reservations';

app.post(base, async (req, res) => {
  const { customerId, amount } = req.body as { customerId: string; amount: number };
  const reservationId = randomUUID();
  const code = (await redis.call(
    'EVALSHA',
    shas.reserve,
    ...minimalArgs.reserve(reservationId, req.get('idempotency-key')!, customerId, amount),
  )) as string;
  res.status(code === 'OK' ? 201 : 409).json({
    reservationId,
    productId: req.params.productId,
    customerId,
    amount,
    status: code === 'OK' ? 'held' : code,
  });
});

const ENDED = { commit: 'committed', release: 'released' } as const;
for (const op of ['commit', 'release'] as const) {
  app.post(`${base}/:reservationId/${op}`, async (req, res) => {
    const { reservationId } = req.params;
    const code = (await redis.call('EVALSHA', shas[op], ...minimalArgs[op](reservationId))) as string;
    res.status(code === 'OK' ? 200 : 409).json({ reservationId, status: code === 'OK' ? ENDED[op] : code });
  });
}

const server = app.listen(port, '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  server.closeIdleConnections();
  redis.disconnect();
  process.exit(0);
});
