/**
 * REDIS_PASSWORD on a Redis Cluster whose every node requires it
 * (requirepass, and masterauth for the replicas): the API and BullMQ's
 * Cluster clients authenticate on every master, so reserves and commits
 * answer on products of each master and the commits settle into the
 * internal ledger; a wrong password fails the start within a bound, naming
 * the auth error and REDIS_PASSWORD; a master killed last: its replica,
 * promoted, is authenticated on. One cluster, started here and stopped
 * even when a test fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeys } from '../../src/redis/keys.js';
import { uniqueId } from '../support/api.js';
import { productsPerMaster, startLocalCluster, type LocalCluster } from '../support/redisCluster.js';
import { expectCommitSettles, expectStartRefused, expectWritesAgain, REFUSED_PASSWORDS } from '../support/redisAuth.js';
import { startServiceContext, type ServiceContext } from '../support/serviceContext.js';
import { makeLine, makeProduct, reserveAndCommit, waitStatus } from '../support/settlement.js';

const PASSWORD = 'cluster-pw-5d1e';

let cluster: LocalCluster;

beforeAll(async () => {
  cluster = await startLocalCluster({ password: PASSWORD });
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
});

/** The service on the cluster with the password, in a key space of its own, with quick settlement timings. */
async function startOnCluster(label: string, env: Record<string, string> = {}) {
  const prefix = uniqueId(label);
  const svc: ServiceContext = await startServiceContext({
    REDIS_CLUSTER_NODES: cluster.seeds,
    REDIS_PASSWORD: PASSWORD,
    KEY_PREFIX: prefix,
    RELAY_INTERVAL_MS: '500',
    RELAY_GRACE_MS: '500',
    SETTLEMENT_BACKOFF_MS: '100',
    AUDIT_INTERVAL_MS: '3600000',
    ...env,
  });
  return { svc, prefix, keys: createKeys(prefix) };
}

describe('REDIS_PASSWORD on a Redis Cluster (requirepass on every node)', () => {
  it('the API and the BullMQ workers authenticate on every master: commits settle into the ledger', async () => {
    const { svc, keys, prefix } = await startOnCluster('ca');
    try {
      expect(svc.service.redis.kind).toBe('cluster');
      const byMaster = await productsPerMaster(cluster, (p) => keys.pool(p), 1, `${prefix}-p`);
      expect(byMaster.size).toBe(3);
      for (const [port, [productId]] of byMaster) {
        expect(await cluster.masterOf(keys.pool(productId!))).toBe(port);
        await expectCommitSettles(svc, productId);
      }
    } finally {
      await svc.stop();
    }
  }, 40_000);

  it.each(REFUSED_PASSWORDS)(
    '%s fails the start within 3 s, naming the auth error and REDIS_PASSWORD',
    (_, password, error) =>
      expectStartRefused(
        { REDIS_CLUSTER_NODES: cluster.seeds, ...(password === undefined ? {} : { REDIS_PASSWORD: password }) },
        'REDIS_CLUSTER_NODES',
        error,
      ),
    20_000,
  );

  it('a master killed: its products answer again on the promoted replica, a commit settles', async () => {
    const { svc, keys, prefix } = await startOnCluster('cf', { SETTLEMENT_LOCK_MS: '5000' });
    try {
      const byMaster = await productsPerMaster(cluster, (p) => keys.pool(p), 1, `${prefix}-p`);
      const [killed, [productId]] = [...byMaster].find(([, list]) => list.length > 0)!;
      await makeProduct(svc, 10_000, productId);
      await makeLine(svc, productId!, 'c1');
      await cluster.kill(killed);
      await expectWritesAgain(svc, productId!, 20_000);
      expect(await cluster.masterOf(keys.pool(productId!))).not.toBe(killed);
      const committed = await reserveAndCommit(svc, productId!, 'c1', 300, 250);
      expect((await waitStatus(svc, productId!, committed.reservationId, 20_000)).status).toBe('settled');
    } finally {
      await svc.stop();
    }
  }, 50_000);
});
