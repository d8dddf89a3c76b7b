/**
 * REDIS_PASSWORD under Sentinel is the data nodes' password (requirepass,
 * masterauth; the sentinels reach them with auth-pass), and the sentinels'
 * too when they require one (the same). The API and BullMQ's workers
 * authenticate on the master the sentinels name, so a commit settles; a
 * wrong or missing password fails the start within a bound, naming the
 * auth error and REDIS_PASSWORD. Two Sentinel setups (open sentinels,
 * protected sentinels, whose master is killed last: the promoted replica is
 * authenticated on), each started once and stopped even when a test fails.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startLocalSentinel, type LocalSentinel } from '../support/redisSentinel.js';
import { expectCommitSettles, expectStartRefused, expectWritesAgain, REFUSED_PASSWORDS } from '../support/redisAuth.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import { makeLine, makeProduct, reserveAndCommit, waitStatus } from '../support/settlement.js';

const PASSWORD = 'sentinel-data-pw-7c2a';

function sentinelEnv(sentinel: LocalSentinel, password: string | undefined): Record<string, string> {
  return {
    REDIS_SENTINELS: sentinel.sentinels,
    REDIS_SENTINEL_NAME: sentinel.name,
    RELAY_INTERVAL_MS: '500',
    ...(password === undefined ? {} : { REDIS_PASSWORD: password }),
  };
}

/** Starts the service, reserves and commits over HTTP, and waits until the commit is settled in the ledger. */
async function commitSettles(env: Record<string, string>): Promise<void> {
  const svc: ServiceContext = await startServiceContext(env);
  try {
    expect(svc.service.redis.kind).toBe('sentinel');
    await expectCommitSettles(svc);
  } finally {
    await svc.stop();
  }
}

describe('REDIS_PASSWORD under Sentinel: requirepass on the data nodes, open sentinels', () => {
  let sentinel: LocalSentinel;
  beforeAll(async () => {
    sentinel = await startLocalSentinel({ password: PASSWORD });
  }, 30_000);
  afterAll(async () => {
    await sentinel?.stop();
  });

  it('the API and the BullMQ workers authenticate on the master: a commit settles; no warning', async () => {
    // ioredis warns on stderr, outside the service's log, on each sentinel connection given a password it does not ask.
    const warn = vi.spyOn(console, 'warn');
    try {
      await commitSettles(sentinelEnv(sentinel, PASSWORD));
      expect(warn.mock.calls.map((c) => String(c[0])).filter((m) => /password/i.test(m))).toEqual([]);
    } finally {
      warn.mockRestore();
    }
  }, 30_000);

  it.each(REFUSED_PASSWORDS)(
    '%s fails the start within 3 s, naming the auth error and REDIS_PASSWORD',
    (_, password, error) => expectStartRefused(sentinelEnv(sentinel, password), 'REDIS_SENTINELS', error),
    20_000,
  );
});

describe('REDIS_PASSWORD under Sentinel: the same password on the sentinels (their requirepass)', () => {
  let sentinel: LocalSentinel;
  beforeAll(async () => {
    sentinel = await startLocalSentinel({ password: PASSWORD, sentinelPassword: PASSWORD });
  }, 30_000);
  afterAll(async () => {
    await sentinel?.stop();
  });

  it('the service authenticates on the sentinels and on the master: a commit settles', async () => {
    await commitSettles(sentinelEnv(sentinel, PASSWORD));
  }, 30_000);

  it.each(REFUSED_PASSWORDS)(
    '%s fails the start within 3 s, naming the auth error and REDIS_PASSWORD',
    (_, password, error) => expectStartRefused(sentinelEnv(sentinel, password), 'REDIS_SENTINELS', error),
    20_000,
  );

  it('after the master is killed: writes answer again on the promoted replica, a commit settles', async () => {
    const svc = await startServiceContext(sentinelEnv(sentinel, PASSWORD));
    try {
      const productId = await makeProduct(svc, 10_000);
      await makeLine(svc, productId, 'c1');
      await sentinel.kill(sentinel.masterPort);
      await expectWritesAgain(svc, productId, 15_000);
      expect(await sentinel.currentMaster()).toBe(sentinel.replicaPort);
      const committed = await reserveAndCommit(svc, productId, 'c1', 300, 250);
      expect((await waitStatus(svc, productId, committed.reservationId, 20_000)).status).toBe('settled');
    } finally {
      await svc.stop();
    }
  }, 45_000);
});
