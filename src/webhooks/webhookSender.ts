/**
 * One delivery of one event to WEBHOOK_URL: the body is serialised once and
 * signed as those exact bytes (`X-Signature: sha256=<hex HMAC>`), with
 * `Idempotency-Key: <event id>`. Only a 2xx counts as delivered; anything
 * else (3xx, 4xx, 5xx, a timeout, a lost connection) is retried.
 */
import { signBody } from '../bodySignature.js';
import type { WebhookEvent } from './webhookEvents.js';

export type DeliveryOutcome = { outcome: 'delivered' } | { outcome: 'failed' | 'error'; reason: string };

export interface WebhookSenderOptions {
  url: string;
  secret: string;
  timeoutMs: number;
}

export type WebhookSender = (event: WebhookEvent) => Promise<DeliveryOutcome>;

export function createWebhookSender(options: WebhookSenderOptions): WebhookSender {
  return async (event) => {
    const body = JSON.stringify(event);
    try {
      const response = await fetch(options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': event.id,
          'x-signature': signBody(options.secret, body),
        },
        body,
        // A redirect is not a delivery: followed, the POST would become a GET.
        redirect: 'manual',
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      await response.body?.cancel().catch(() => undefined);
      if (response.status >= 200 && response.status < 300) return { outcome: 'delivered' };
      return { outcome: 'failed', reason: `HTTP ${response.status}` };
    } catch (err) {
      return {
        outcome: 'error',
        reason:
          (err as Error).name === 'TimeoutError' ? `no answer within ${options.timeoutMs} ms` : (err as Error).message,
      };
    }
  };
}
