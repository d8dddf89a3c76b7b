/**
 * Exact accounting of reserves, from the answers alone: every 201 adds its
 * amount to the product's and the line's granted total; refusals are
 * counted by code. An answer that says nothing about the outcome (a 5xx, a
 * timeout, a dropped connection) leaves the request outstanding, and after
 * the load it is sent again with the same Idempotency-Key: the stored answer
 * (or a first decision, if it never ran) settles it. So the totals are exact
 * even when some answers are lost, which is what the counters are then
 * compared with.
 */
import type autocannon from 'autocannon';
import { sleep } from '../../test/support/wait.js';
import { CLIENT_KEY, type ApiClient } from './api.js';

export interface ReserveIntent {
  productId: string;
  customerId: string;
  amount: number;
  key: string;
  ttlSeconds?: number;
}

export interface Grant {
  productId: string;
  reservationId: string;
  customerId: string;
  amount: number;
}

export interface ProductGrants {
  granted: number;
  holds: number;
  perLine: Map<string, number>;
}

/** Refusals a reserve under load may answer; anything else is unexpected. */
const EXPECTED_REFUSALS = new Set(['POOL_EXHAUSTED', 'CUSTOMER_LIMIT_EXCEEDED']);

export const reservePath = (productId: string) => `/v1/products/${productId}/reservations`;
export const reserveBody = (i: ReserveIntent) =>
  JSON.stringify(
    i.ttlSeconds === undefined
      ? { customerId: i.customerId, amount: i.amount }
      : { customerId: i.customerId, amount: i.amount, ttlSeconds: i.ttlSeconds },
  );
export const jsonHeaders = { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' };

export function createGrantBook() {
  const products = new Map<string, ProductGrants>();
  const grants: Grant[] = [];
  const refusals: Record<string, number> = {};
  const outstanding = new Map<string, ReserveIntent>();
  const unexpected: string[] = [];
  let requests = 0;
  let lostAnswers = 0;
  let replays = 0;
  /** Replays answered from the stored answer (the first request had been decided; only its answer was lost). */
  let replayedStored = 0;

  const productOf = (productId: string) => {
    let p = products.get(productId);
    if (!p) products.set(productId, (p = { granted: 0, holds: 0, perLine: new Map() }));
    return p;
  };

  function begin(intent: ReserveIntent) {
    requests++;
    outstanding.set(intent.key, intent);
  }

  /** Books one answer; returns the grant for a 201. */
  function answer(key: string, status: number, text: string): Grant | undefined {
    const intent = outstanding.get(key);
    if (!intent) {
      unexpected.push(`answer for unknown key ${key}: ${status}`);
      return undefined;
    }
    if (status >= 500 || status === 0) {
      lostAnswers++;
      return undefined; // outcome unknown: stays outstanding, replayed later
    }
    outstanding.delete(key);
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      unexpected.push(`${key}: ${status} with a body that is not JSON: ${text.slice(0, 200)}`);
      return undefined;
    }
    if (status === 201) {
      if (body.amount !== intent.amount || body.customerId !== intent.customerId || body.status !== 'held') {
        unexpected.push(`${key}: 201 does not match the request: ${text.slice(0, 300)}`);
        return undefined;
      }
      const p = productOf(intent.productId);
      p.granted += intent.amount;
      p.holds++;
      p.perLine.set(intent.customerId, (p.perLine.get(intent.customerId) ?? 0) + intent.amount);
      const grant = {
        productId: intent.productId,
        reservationId: String(body.reservationId),
        customerId: intent.customerId,
        amount: intent.amount,
      };
      grants.push(grant);
      return grant;
    }
    if (status === 409 && EXPECTED_REFUSALS.has(body.code)) {
      refusals[body.code] = (refusals[body.code] ?? 0) + 1;
      if (!(typeof body.drawable === 'number' && body.drawable < intent.amount)) {
        unexpected.push(`${key}: ${body.code} with drawable ${body.drawable} >= amount ${intent.amount}`);
      }
      return undefined;
    }
    unexpected.push(`${key}: ${status} ${text.slice(0, 300)}`);
    return undefined;
  }

  /** Sends every outstanding request again with its Idempotency-Key until each has a definite answer. */
  async function replayOutstanding(api: ApiClient, onGrant?: (g: Grant) => void): Promise<void> {
    for (let attempt = 0; attempt < 5 && outstanding.size > 0; attempt++) {
      if (attempt > 0) await sleep(1_000);
      for (const intent of [...outstanding.values()]) {
        replays++;
        try {
          const r = await api.client('POST', reservePath(intent.productId), reserveBody(intent), {
            'idempotency-key': intent.key,
          });
          if (r.headers.get('idempotent-replayed') === 'true') replayedStored++;
          const grant = answer(intent.key, r.status, r.text);
          if (grant) onGrant?.(grant);
        } catch {
          // still unknown: next attempt
        }
      }
    }
    for (const intent of outstanding.values()) unexpected.push(`${intent.key}: no definite answer after replays`);
  }

  return {
    products,
    grants,
    refusals,
    unexpected,
    begin,
    answer,
    replayOutstanding,
    product: productOf,
    totals() {
      let granted = 0;
      let holds = 0;
      for (const p of products.values()) {
        granted += p.granted;
        holds += p.holds;
      }
      return {
        requests,
        granted,
        holds,
        refusals: { ...refusals },
        lostAnswers,
        replays,
        replayedStored,
        unexpected: unexpected.length,
      };
    },
  };
}

export type GrantBook = ReturnType<typeof createGrantBook>;

interface ReserveContext {
  key?: string;
}

/**
 * An autocannon request that reserves the next intent of a plan, and books
 * its answer. With one request in flight per connection, the connection's
 * context carries the key from setupRequest to onResponse.
 */
export function reserveRequest(
  book: GrantBook,
  next: () => ReserveIntent | undefined,
  onGrant?: (g: Grant, ctx: object) => void,
): autocannon.Request {
  return {
    method: 'POST',
    setupRequest(req, context) {
      const ctx = context as ReserveContext;
      const intent = next();
      if (!intent) {
        // The plan is used up (only possible if autocannon sends more than asked): a harmless request.
        ctx.key = undefined;
        return { ...req, method: 'GET', path: '/healthz', body: undefined };
      }
      book.begin(intent);
      ctx.key = intent.key;
      return {
        ...req,
        method: 'POST',
        path: reservePath(intent.productId),
        headers: { ...req.headers, ...jsonHeaders, 'idempotency-key': intent.key },
        body: reserveBody(intent),
      };
    },
    onResponse(status, body, context) {
      const ctx = context as ReserveContext;
      if (ctx.key === undefined) return;
      const grant = book.answer(ctx.key, status, body);
      if (grant) onGrant?.(grant, context);
    },
  };
}
