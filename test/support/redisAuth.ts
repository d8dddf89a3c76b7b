/**
 * What the REDIS_PASSWORD tests on a Cluster and under Sentinel share: the refused start (it must fail fast,
 * naming the server's error and the variable) and writing again after a master is killed (the client's retry with
 * the same Idempotency-Key, as the contract has it).
 */
import { expect } from 'vitest';
import { startServiceContext, type ServiceContext } from './serviceContext.js';
import { makeLine, makeProduct, reserveAndCommit, sleep, uniqueId, waitStatus } from './settlement.js';

/** A wrong password and none: what each start is refused with. */
export const REFUSED_PASSWORDS: [string, string | undefined, RegExp][] = [
  ['a wrong password', 'wrong-password', /WRONGPASS/],
  ['no password', undefined, /NOAUTH/],
];

/** Starts the service (it must not start) and checks the error names `error`, the topology and REDIS_PASSWORD. */
export async function expectStartRefused(
  env: Record<string, string>,
  topologyVariable: 'REDIS_CLUSTER_NODES' | 'REDIS_SENTINELS',
  error: RegExp,
): Promise<void> {
  const started = Date.now();
  const outcome = await startServiceContext(env).then(
    async (svc) => {
      await svc.stop();
      return new Error('the service started');
    },
    (err: unknown) => err as Error,
  );
  const tookMs = Date.now() - started;
  console.log(`${topologyVariable} AUTH start refused in ${tookMs} ms: ${outcome.message}`);
  expect(outcome.message).toMatch(new RegExp(`\\(${topologyVariable}\\) does not answer: `));
  expect(outcome.message).toMatch(error);
  expect(outcome.message).toMatch(/; check REDIS_PASSWORD$/);
  expect(tookMs).toBeLessThan(3_000);
}

/** Reserves with one Idempotency-Key until it is answered 201 (only 503s before), within `withinMs`. */
export async function expectWritesAgain(svc: ServiceContext, productId: string, withinMs: number): Promise<void> {
  const since = Date.now();
  const key = uniqueId('k');
  let answered = 0;
  while (Date.now() - since < withinMs) {
    const r = await svc.client(
      'POST',
      `/v1/products/${productId}/reservations`,
      { customerId: 'c1', amount: 1 },
      { 'Idempotency-Key': key }, // the same key: the contract's retry
    );
    if (r.status === 201) {
      answered = r.status;
      break;
    }
    expect(r.status, JSON.stringify(r.body)).toBe(503);
    await sleep(100);
  }
  expect(answered, `writes answer again within ${withinMs / 1000} s`).toBe(201);
}

/** A line on `productId` (a new product unless it exists), a reserve and a commit: settled and in the ledger. */
export async function expectCommitSettles(svc: ServiceContext, productId?: string): Promise<void> {
  const p = await makeProduct(svc, 10_000, productId);
  await makeLine(svc, p, 'c1');
  const committed = await reserveAndCommit(svc, p, 'c1', 300, 250);
  expect((await waitStatus(svc, p, committed.reservationId, 20_000)).status).toBe('settled');
  const ledger = await svc.admin('GET', `/v1/products/${p}/ledger?count=10`);
  expect(ledger.status).toBe(200);
  expect((ledger.body.entries as { reservationId: string }[]).map((e) => e.reservationId)).toEqual([
    committed.reservationId,
  ]);
}
