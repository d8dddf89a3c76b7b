/**
 * The bare express app the issue compares our routes with: express 5 and
 * express.json(), and per route one EVALSHA of the minimal script
 * (bench/lua/minimal-*.lua): no auth, validation, metrics, logs, deadline or
 * idempotency fingerprint (its in-app latency is recorded only when the
 * harness turns it on, for the half-peak run). A benchmark program, run as a node:cluster worker
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

// Latency inside the app, only while the harness asks for it (the half-peak run), so the peak runs pay nothing for
// it: timed from the first middleware to 'finish', as the service's request log times its histogram.
let inService: number[] | undefined;
app.use((_req, res, next) => {
  if (inService) {
    const started = performance.now();
    res.on('finish', () => inService?.push(performance.now() - started));
  }
  next();
});
app.post('/in-service/start', (_req, res) => {
  inService = [];
  res.end();
});
app.get('/in-service', (_req, res) => {
  res.json(inService ?? []);
  inService = undefined;
});

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
