/**
 * The load test's traffic: each autocannon connection draws (a reserve with
 * its own Idempotency-Key, for a customer from the mix), then releases the
 * hold, or commits it with probability `commitRatio`; a refused draw is
 * followed by a read of the product, as an app refreshing its display would.
 * Every answer is booked; a request whose answer never came (timeout, lost
 * connection) is left in `inFlight` and settled afterwards by repeating it,
 * which the API makes safe (same key; commit/release idempotent by state).
 */
import type autocannon from 'autocannon';

export interface Customer {
  customerId: string;
  weight: number;
}

export interface TrafficPlan {
  productId: string;
  runId: string;
  customers: Customer[];
  minAmount: number;
  maxAmount: number;
  commitRatio: number;
  ttlSeconds: number;
}

export interface Draw {
  key: string;
  customerId: string;
  amount: number;
}

interface ConnectionContext {
  draw?: Draw;
  reservationId?: string;
  amount?: number;
  followUp?: { op: 'release' | 'commit'; reservationId: string; amount: number };
}

export function createBook() {
  return {
    answersByCode: {} as Record<string, number>,
    answers: 0,
    drawsSent: 0,
    granted: 0,
    refused: 0,
    released: 0,
    committedCount: 0,
    committedAmount: 0,
    /** Holds granted and not yet released or committed: reservationId → amount. */
    outstanding: new Map<string, number>(),
    /** Reserves sent whose answer has not come: key → draw. */
    reservesInFlight: new Map<string, Draw>(),
    /** Follow-ups sent whose answer has not come: reservationId → op. */
    followUpsInFlight: new Map<string, { op: 'release' | 'commit'; amount: number }>(),
    count(label: string) {
      this.answers++;
      this.answersByCode[label] = (this.answersByCode[label] ?? 0) + 1;
    },
    recordGrant(reservationId: string, amount: number) {
      this.granted++;
      this.outstanding.set(reservationId, amount);
    },
    recordFollowUp(op: 'release' | 'commit', reservationId: string, amount: number) {
      if (!this.outstanding.delete(reservationId)) return;
      if (op === 'release') this.released++;
      else {
        this.committedCount++;
        this.committedAmount += amount;
      }
    },
  };
}

export type Book = ReturnType<typeof createBook>;

export function labelOf(status: number, body: string, op: string): string {
  if (status < 400) return `${status} ${op}`;
  try {
    const code = (JSON.parse(body) as { code?: string }).code;
    return `${status} ${code ?? op}`;
  } catch {
    return `${status} ${op}`;
  }
}

export function trafficRequests(plan: TrafficPlan, book: Book): autocannon.Request[] {
  const totalWeight = plan.customers.reduce((s, c) => s + c.weight, 0);
  let seq = 0;
  const pick = (): Customer => {
    let r = Math.random() * totalWeight;
    for (const c of plan.customers) if ((r -= c.weight) < 0) return c;
    return plan.customers[plan.customers.length - 1]!;
  };
  const json = { 'content-type': 'application/json' };
  const base = `/v1/products/${encodeURIComponent(plan.productId)}`;

  const reserve: autocannon.Request = {
    method: 'POST',
    setupRequest(req, context) {
      const ctx = context as ConnectionContext;
      const customer = pick();
      const amount = plan.minAmount + Math.floor(Math.random() * (plan.maxAmount - plan.minAmount + 1));
      const draw = { key: `${plan.runId}-${++seq}`, customerId: customer.customerId, amount };
      ctx.draw = draw;
      ctx.followUp = undefined;
      book.drawsSent++;
      book.reservesInFlight.set(draw.key, draw);
      return {
        ...req,
        method: 'POST',
        path: `${base}/reservations`,
        headers: { ...req.headers, ...json, 'idempotency-key': draw.key },
        body: JSON.stringify({
          customerId: customer.customerId,
          amount,
          ttlSeconds: plan.ttlSeconds,
          metadata: { loadtest: plan.runId },
        }),
      };
    },
    onResponse(status, body, context) {
      const ctx = context as ConnectionContext;
      const draw = ctx.draw;
      if (!draw) return;
      book.reservesInFlight.delete(draw.key);
      book.count(labelOf(status, body, 'reserve'));
      if (status === 201) {
        const reservationId = (JSON.parse(body) as { reservationId: string }).reservationId;
        book.recordGrant(reservationId, draw.amount);
        const op = Math.random() < plan.commitRatio ? 'commit' : 'release';
        ctx.followUp = { op, reservationId, amount: draw.amount };
      } else {
        book.refused++;
      }
    },
  };

  const followUp: autocannon.Request = {
    method: 'POST',
    setupRequest(req, context) {
      const ctx = context as ConnectionContext;
      const next = ctx.followUp;
      if (!next) return { ...req, method: 'GET', path: base, body: undefined, headers: { ...req.headers } };
      book.followUpsInFlight.set(next.reservationId, { op: next.op, amount: next.amount });
      return {
        ...req,
        method: 'POST',
        path: `${base}/reservations/${next.reservationId}/${next.op}`,
        headers: { ...req.headers, ...json },
        body: '{}',
      };
    },
    onResponse(status, body, context) {
      const ctx = context as ConnectionContext;
      const next = ctx.followUp;
      ctx.followUp = undefined;
      if (!next) {
        book.count(labelOf(status, body, 'read'));
        return;
      }
      book.followUpsInFlight.delete(next.reservationId);
      book.count(labelOf(status, body, next.op));
      if (status === 200) book.recordFollowUp(next.op, next.reservationId, next.amount);
    },
  };

  return [reserve, followUp];
}
