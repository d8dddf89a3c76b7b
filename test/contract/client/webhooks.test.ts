/**
 * @quota-allocator/client/webhooks against real deliveries: the service (in
 * process, real Redis, BullMQ) POSTs an event to a receiver here, which keeps
 * the exact bytes and headers; verifyWebhookSignature accepts that delivery
 * and refuses it once one byte of the body is altered, once it is signed with
 * another secret, and with a missing or malformed header. (The scheme has no
 * timestamp, so there is no tolerance to test: receivers dedupe by `id`.)
 */
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { QuotaClient } from '@quota-allocator/client';
import { WEBHOOK_SIGNATURE_HEADER, verifyWebhookSignature } from '@quota-allocator/client/webhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueId } from '../../support/engineContext.js';
import { ADMIN_KEY, startServiceContext, type ServiceContext } from '../../support/serviceContext.js';
import { waitFor } from '../../support/wait.js';

const SECRET = 'webhook-client-secret-0001';
const OTHER_SECRET = 'webhook-client-secret-0002';

interface Delivery {
  body: Buffer;
  headers: Record<string, string | string[] | undefined>;
}

const deliveries: Delivery[] = [];
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    deliveries.push({ body: Buffer.concat(chunks), headers: req.headers });
    res.writeHead(204).end();
  });
});

let svc: ServiceContext;
let delivery: Delivery;
let signature: string;

beforeAll(async () => {
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const { port } = receiver.address() as AddressInfo;
  svc = await startServiceContext({
    WEBHOOK_URL: `http://127.0.0.1:${port}/hooks`,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_RELAY_INTERVAL_MS: '200',
  });
  const admin = new QuotaClient({ baseUrl: svc.baseUrl, apiKey: ADMIN_KEY });
  const p = uniqueId('p');
  expect((await admin.admin.putProduct(p, { capacity: 1_000 })).ok).toBe(true);
  expect((await admin.admin.patchProduct(p, { status: 'paused', pauseReason: '系统维护' })).ok).toBe(true);
  delivery = await waitFor(
    'the product.status_changed delivery',
    async () => deliveries.find((d) => JSON.parse(d.body.toString('utf8')).productId === p),
    { timeoutMs: 15_000 },
  );
  signature = delivery.headers[WEBHOOK_SIGNATURE_HEADER] as string;
});
afterAll(async () => {
  await svc?.stop();
  receiver.closeAllConnections();
  await new Promise((resolve) => receiver.close(resolve));
});

describe('verifyWebhookSignature on a real delivery', () => {
  it('accepts the delivery as it arrived, as bytes or as its UTF-8 text', () => {
    expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(JSON.parse(delivery.body.toString('utf8'))).toMatchObject({ type: 'product.status_changed' });
    expect(verifyWebhookSignature(delivery.body, signature, SECRET)).toBe(true);
    expect(verifyWebhookSignature(new Uint8Array(delivery.body), signature, SECRET)).toBe(true);
    expect(verifyWebhookSignature(delivery.body.toString('utf8'), signature, SECRET)).toBe(true);
  });

  it('refuses the body altered by one byte, wherever it is (first, middle, last, in a non-ASCII text)', () => {
    const reasonAt = delivery.body.indexOf(Buffer.from('系统维护'));
    expect(reasonAt).toBeGreaterThan(0);
    for (const at of [0, delivery.body.length >> 1, delivery.body.length - 1, reasonAt + 1]) {
      for (const flip of [0x01, 0x20, 0x80]) {
        const altered = Buffer.from(delivery.body);
        altered[at]! ^= flip;
        expect(verifyWebhookSignature(altered, signature, SECRET), `byte ${at} ^ ${flip}`).toBe(false);
      }
    }
    expect(verifyWebhookSignature(delivery.body.subarray(0, -1), signature, SECRET)).toBe(false);
    expect(verifyWebhookSignature(Buffer.concat([delivery.body, Buffer.from('\n')]), signature, SECRET)).toBe(false);
    // Re-serialised JSON is other bytes: verify what arrived, before parsing.
    const reserialised = JSON.stringify(JSON.parse(delivery.body.toString('utf8')), null, 1);
    expect(verifyWebhookSignature(reserialised, signature, SECRET)).toBe(false);
  });

  it('refuses the body signed with another secret, and a genuine signature checked with another secret', () => {
    const forged = 'sha256=' + createHmac('sha256', OTHER_SECRET).update(delivery.body).digest('hex');
    expect(verifyWebhookSignature(delivery.body, forged, SECRET)).toBe(false);
    expect(verifyWebhookSignature(delivery.body, signature, OTHER_SECRET)).toBe(false);
    expect(verifyWebhookSignature(delivery.body, signature, SECRET.slice(0, -1))).toBe(false);
  });

  it('refuses a missing or malformed header; an empty secret is a configuration error', () => {
    const hex = signature.slice('sha256='.length);
    for (const header of [undefined, null, '', hex, `sha1=${hex}`, `sha256=${hex.slice(0, -2)}`, `sha256=${hex}00`]) {
      expect(verifyWebhookSignature(delivery.body, header, SECRET), String(header)).toBe(false);
    }
    expect(
      verifyWebhookSignature(delivery.body, `sha256=${hex.slice(0, -1)}${hex.endsWith('0') ? '1' : '0'}`, SECRET),
    ).toBe(false);
    expect(() => verifyWebhookSignature(delivery.body, signature, '')).toThrow(TypeError);
  });
});
