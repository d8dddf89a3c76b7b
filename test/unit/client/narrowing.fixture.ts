/**
 * Compiled by narrowing.test.ts (and by the repo's typecheck): each
 * `@ts-expect-error` marks a line that must NOT compile, so a client whose
 * codes were not narrowed per operation fails the test ("unused directive").
 */
import { QuotaClient, QuotaClientError } from '@quota-allocator/client';

export async function narrowing(client: QuotaClient): Promise<string[]> {
  const seen: string[] = [];
  const reserved = await client.reserve('p', { customerId: 'c', amount: 100 });
  if (reserved.ok) {
    seen.push(reserved.value.reservationId);
    // @ts-expect-error a success has no problem
    seen.push(reserved.problem.code);
  } else {
    if (reserved.problem.code === 'POOL_EXHAUSTED') seen.push(String(reserved.problem.drawable));
    // @ts-expect-error a reserve never answers a commit's code
    if (reserved.problem.code === 'COMMIT_EXCEEDS_HOLD') seen.push('impossible');
    // @ts-expect-error a typo is not a code
    if (reserved.problem.code === 'POOL_EXHAUSTD') seen.push('typo');
  }

  // The key every attempt sent is on both branches of a reserve (and a repayment), for the caller's own retry.
  const key: string = reserved.idempotencyKey;
  try {
    const again = await client.reserve('p', { customerId: 'c', amount: 100 }, { idempotencyKey: key });
    if (!again.ok && again.problem.code === 'UNAVAILABLE') seen.push(again.idempotencyKey);
  } catch (err) {
    // A broken call: the key it sent, when it was a reserve or a repayment.
    if (err instanceof QuotaClientError && err.details.idempotencyKey !== undefined)
      seen.push(err.details.idempotencyKey);
  }

  const committed = await client.commit('p', 'r');
  if (!committed.ok) {
    if (committed.problem.code === 'RESERVATION_EXPIRED') seen.push('expired');
    // @ts-expect-error a commit is never refused for the pool
    if (committed.problem.code === 'POOL_EXHAUSTED') seen.push('impossible');
  }
  // @ts-expect-error a commit sends no Idempotency-Key (it is idempotent by state)
  seen.push(committed.idempotencyKey);

  const line = await client.getLine('p', 'c');
  if (!line.ok) {
    switch (line.problem.code) {
      case 'NO_CREDIT_LINE':
      case 'PRODUCT_NOT_FOUND':
        seen.push('missing');
        break;
      // @ts-expect-error a read never answers a quota refusal
      case 'CUSTOMER_LIMIT_EXCEEDED':
        break;
    }
  }

  const repaid = await client.repay('p', 'c', 100);
  if (!repaid.ok && repaid.problem.code === 'REPAYMENT_EXCEEDS_DRAWN') seen.push('too much');
  if (!repaid.ok && repaid.problem.code === 'REQUEST_TIMEOUT') {
    const retried = await client.repay('p', 'c', 100, { idempotencyKey: repaid.idempotencyKey });
    seen.push(retried.idempotencyKey);
  }

  const resolved = await client.admin.resolve('p', 'r', 'settled');
  if (!resolved.ok && resolved.problem.code === 'RESERVATION_STATE_CONFLICT') seen.push('conflict');
  // @ts-expect-error the outcome is settled or reversed
  await client.admin.resolve('p', 'r', 'unknown');
  return seen;
}
