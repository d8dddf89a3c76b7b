/**
 * Settlement plumbing (README "Settlement"): duplicated and re-driven jobs
 * have no second effect, the outbox relay settles what was committed but
 * whose job was lost, the internal ledger without SETTLEMENT_URL, the audit trail,
 * the listing by status, and bull-board behind admin auth.
 */
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QuotaEngine } from '../../src/engine/quotaEngine.js';
import type { LedgerServer } from '../../testLedger/ledgerServer.js';
import type { SettlementJobData } from '../../src/settlement/settlementQueue.js';
import { createEngineContext, type EngineContext } from '../support/engineContext.js';
import type { ServiceContext } from '../support/serviceContext.js';
import {
  ADMIN_KEY,
  CLIENT_KEY,
  getLine,
  getPool,
  getReservation,
  listPage,
  makeLine,
  makeProduct,
  metric,
  reserve,
  reserveAndCommit,
  settlementQueueOf,
  startLedger,
  startService,
  uniqueId,
  waitUntil,
  waitStatus,
} from '../support/settlement.js';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

async function waitJobFinished(queue: Queue<SettlementJobData>, jobId: string) {
  return waitUntil(
    `job ${jobId} to finish`,
    async () => {
      // State first, then the job again: a job read while still active has no
      // returnvalue yet, even if it completes before getState() is asked.
      const state = (await (await queue.getJob(jobId))?.getState()) ?? 'missing';
      const job = await queue.getJob(jobId);
      return { state, returnvalue: job?.returnvalue };
    },
    (j) => j.state === 'completed' || j.state === 'failed',
  );
}

describe('settlement with an HTTP ledger: duplicates, re-drives, the outbox relay, the audit trail', () => {
  let ledger: LedgerServer;
  let svc: ServiceContext;
  let engineContext: EngineContext;
  let engine: QuotaEngine;
  let queue: Queue<SettlementJobData>;
  beforeAll(async () => {
    ledger = await startLedger();
    svc = await startService(ledger, { SETTLEMENT_TIMEOUT_MS: '1000' });
    engineContext = await createEngineContext(svc.keyPrefix);
    engine = engineContext.engine;
    queue = settlementQueueOf(svc);
  });
  afterAll(async () => {
    await queue?.close();
    await engineContext?.close();
    await svc?.stop();
    await ledger?.stop();
  });

  /** Reserve over HTTP, commit through the engine on the service's key prefix (the settlement feed queues it). */
  async function commitThroughEngine(p: string, customerId: string, amount: number) {
    const r = await reserve(svc, p, customerId, amount);
    const c = await engine.commit(p, r.reservationId);
    expect(c.ok, JSON.stringify(c)).toBe(true);
    return r.reservationId as string;
  }

  it('a settled reservation re-driven or re-enqueued changes nothing the second time', async () => {
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const r = await reserveAndCommit(svc, p, 'c1', 1_500);
    expect((await waitStatus(svc, p, r.reservationId)).status).toBe('settled');
    const pool = await getPool(svc, p);
    const line = await getLine(svc, p, 'c1');
    const stats = ledger.stats();
    expect(ledger.deliveries().get(r.reservationId)?.deliveries).toBe(1);

    // Redrive: only a committed reservation can be re-driven.
    const redrive = await svc.admin('POST', `/v1/products/${p}/reservations/${r.reservationId}/redrive`);
    expect(redrive.status, JSON.stringify(redrive.body)).toBe(409);
    expect(redrive.body.code).toBe('RESERVATION_STATE_CONFLICT');

    // A duplicate job straight into the queue, with a new job id.
    const jobId = uniqueId('dup');
    await queue.add('settle', { productId: p, reservationId: r.reservationId }, { jobId });
    const finished = await waitJobFinished(queue, jobId);
    expect(finished).toEqual({ state: 'completed', returnvalue: { skipped: 'settled' } });
    // And one with the reservation's own id again: a no-op while the first job is kept, else a job
    // that finds the reservation settled. Either way it is finished before the checks below.
    await queue.add('settle', { productId: p, reservationId: r.reservationId }, { jobId: r.reservationId });
    expect((await waitJobFinished(queue, r.reservationId)).state).toBe('completed');

    expect(await getPool(svc, p)).toEqual({ ...pool, updatedAt: expect.any(String) });
    expect(await getLine(svc, p, 'c1')).toEqual({ ...line, updatedAt: expect.any(String) });
    expect(ledger.stats()).toMatchObject({ applied: stats.applied, posts: stats.posts });
    expect(ledger.deliveries().get(r.reservationId)?.deliveries).toBe(1);
    const after = await getReservation(svc, p, r.reservationId);
    expect(after).toMatchObject({ status: 'settled', attempts: 0 });
  });

  it('several jobs racing on one committed reservation: one ledger effect, counters moved once', async () => {
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const id = await commitThroughEngine(p, 'c1', 900);
    await Promise.all(
      [1, 2, 3, 4].map((i) =>
        queue.add('settle', { productId: p, reservationId: id }, { jobId: `${id}-dup-${i}`, attempts: 3 }),
      ),
    );
    expect((await waitStatus(svc, p, id)).status).toBe('settled');
    for (const i of [1, 2, 3, 4]) expect((await waitJobFinished(queue, `${id}-dup-${i}`)).state).toBe('completed');

    const entry = ledger.deliveries().get(id);
    expect(entry?.body.amount).toBe(900);
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: 900, settled: 900, available: 9_100 });
    expect(await getLine(svc, p, 'c1')).toMatchObject({ held: 0, drawn: 900, settling: 0, available: 4_100 });
    const events = (await svc.admin('GET', `/v1/products/${p}/reservations/${id}/events`)).body.events;
    expect(events.map((e: any) => e.to)).toEqual(['held', 'committed', 'settled']);
  });

  it('redrive of a committed reservation whose job is still retrying: 202, no second effect', async () => {
    ledger.control({ hangAfterRecordMs: 2_000, hangRate: 1 });
    try {
      const p = await makeProduct(svc, 10_000);
      await makeLine(svc, p, 'c1', 5_000);
      const r = await reserveAndCommit(svc, p, 'c1', 333);
      // Its job is queued by the settlement feed within about 100 ms of the commit; then it is retrying.
      await waitUntil(
        'its settlement job',
        () => queue.getJob(r.reservationId),
        (job) => job !== undefined,
      );
      const res = await svc.admin('POST', `/v1/products/${p}/reservations/${r.reservationId}/redrive`);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect(res.body.job).toBe('live');
      expect(res.body.reservation).toMatchObject({ reservationId: r.reservationId, status: 'committed' });
      const redriveAsClient = await svc.client('POST', `/v1/products/${p}/reservations/${r.reservationId}/redrive`);
      expect(redriveAsClient.status).toBe(403);
      expect((await waitStatus(svc, p, r.reservationId)).status).toBe('settled');
      expect(ledger.deliveries().get(r.reservationId)).toBeDefined();
      expect(await getPool(svc, p)).toMatchObject({ committed: 333, settled: 333 });
    } finally {
      ledger.control({ hangAfterRecordMs: 0 });
    }
  });

  it('the outbox relay settles a committed reservation whose job was lost', async () => {
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const relayedBefore = await metric(svc, 'quota_settlement_relayed_total');
    // The ledger fails every attempt, so the job the feed queued waits between attempts (or has failed); then it
    // is lost, as a failover of the queue's node (another slot than the product's) could lose it.
    ledger.control({ failRate: 1 });
    let id: string;
    try {
      id = await commitThroughEngine(p, 'c1', 1_100);
      await waitUntil(
        'its job removed while it waits for a retry',
        async () => {
          const state = await queue.getJobState(id);
          if (state !== 'delayed' && state !== 'failed') return false;
          return queue.remove(id).then(
            (removed) => removed === 1,
            () => false, // taken by the worker meanwhile (locked): next time
          );
        },
        (removed) => removed,
        { everyMs: 20 },
      );
    } finally {
      ledger.control({ failRate: 0 });
    }
    const done = await waitStatus(svc, p, id, 10_000);
    expect(done.status).toBe('settled');
    expect(ledger.deliveries().get(id)?.body).toMatchObject({ reservationId: id, amount: 1_100, customerId: 'c1' });
    // The relay enqueued it under the reservation's own id.
    expect((await queue.getJob(id))?.data).toEqual({ productId: p, reservationId: id });
    expect(await metric(svc, 'quota_settlement_relayed_total')).toBeGreaterThanOrEqual(relayedBefore + 1);
    expect(await getPool(svc, p)).toMatchObject({ committed: 1_100, settled: 1_100 });
  });

  it('the outbox relay replaces a finished job that left its reservation committed', async () => {
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const r = await reserve(svc, p, 'c1', 1_234);
    // A job under the reservation's id runs while it is still held: it finishes doing nothing.
    await queue.add('settle', { productId: p, reservationId: r.reservationId }, { jobId: r.reservationId });
    expect(await waitJobFinished(queue, r.reservationId)).toEqual({
      state: 'completed',
      returnvalue: { skipped: 'held' },
    });
    // Committed over HTTP: the settlement feed's add is a no-op (same job id); the relay must notice.
    await svc.client('POST', `/v1/products/${p}/reservations/${r.reservationId}/commit`, {});
    expect((await waitStatus(svc, p, r.reservationId, 10_000)).status).toBe('settled');
    expect(ledger.deliveries().get(r.reservationId)?.deliveries).toBe(1);
  });

  it('the audit trail lists held -> committed -> settled with time, amount and reason', async () => {
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const r = await reserveAndCommit(svc, p, 'c1', 2_000, 1_600);
    expect((await waitStatus(svc, p, r.reservationId)).status).toBe('settled');

    const res = await svc.admin('GET', `/v1/products/${p}/reservations/${r.reservationId}/events`);
    expect(res.status).toBe(200);
    expect(res.body.reservationId).toBe(r.reservationId);
    const events: any[] = res.body.events;
    expect(events.map((e) => [e.from, e.to])).toEqual([
      [null, 'held'],
      ['held', 'committed'],
      ['committed', 'settled'],
    ]);
    expect(events.map((e) => e.amount)).toEqual([2_000, 1_600, 1_600]);
    expect(events[0].reason).toMatch(/reserved/);
    expect(events[1].reason).toMatch(/committed 1600, released 400/);
    for (const e of events) expect(e.at).toMatch(ISO);
    const times = events.map((e) => Date.parse(e.at));
    expect([...times].sort((a, b) => a - b)).toEqual(times);

    // A ledger rejection is in the trail with its reason.
    ledger.control({ rejectCustomers: ['c-rejected'] });
    try {
      await makeLine(svc, p, 'c-rejected', 5_000);
      const x = await reserveAndCommit(svc, p, 'c-rejected', 500);
      expect((await waitStatus(svc, p, x.reservationId)).status).toBe('reversed');
      const trail = (await svc.admin('GET', `/v1/products/${p}/reservations/${x.reservationId}/events`)).body.events;
      expect(trail.map((e: any) => e.to)).toEqual(['held', 'committed', 'reversed']);
      expect(trail[2].reason).toMatch(/422/);
    } finally {
      ledger.control({ rejectCustomers: [] });
    }

    // Admin only; unknown ids are 404.
    expect((await svc.client('GET', `/v1/products/${p}/reservations/${r.reservationId}/events`)).status).toBe(403);
    const missing = await svc.admin('GET', `/v1/products/${p}/reservations/nope/events`);
    expect(missing.status).toBe(404);
    expect(missing.body.code).toBe('RESERVATION_NOT_FOUND');
  });

  // README: "the audit trail: every transition with its time, amount and reason".
  it('every transition in the audit trail carries a reason, the settled one included', async () => {
    const p = await makeProduct(svc, 10_000);
    await makeLine(svc, p, 'c1', 5_000);
    const r = await reserveAndCommit(svc, p, 'c1', 800);
    expect((await waitStatus(svc, p, r.reservationId)).status).toBe('settled');
    const events: any[] = (await svc.admin('GET', `/v1/products/${p}/reservations/${r.reservationId}/events`)).body
      .events;
    expect(events.map((e) => e.to)).toEqual(['held', 'committed', 'settled']);
    for (const e of events) {
      expect(typeof e.reason, `the ${e.to} event should carry a reason: ${JSON.stringify(e)}`).toBe('string');
      expect(e.reason.length).toBeGreaterThan(0);
    }
  });

  it('the listing by status pages with cursor and limit, oldest transition first', async () => {
    const p = await makeProduct(svc, 100_000);
    await makeLine(svc, p, 'c1', 50_000);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const r = await reserveAndCommit(svc, p, 'c1', 100 + i);
      ids.push(r.reservationId);
      await waitStatus(svc, p, r.reservationId); // settle one by one: a known order of transitions
    }
    const pages = [await listPage(svc, p, 'settled', null, 3)];
    while (pages.length < 5 && pages.at(-1)!.nextCursor !== null) {
      pages.push(await listPage(svc, p, 'settled', pages.at(-1)!.nextCursor, 3));
    }
    expect(pages.map((pg) => pg.items.length)).toEqual([3, 3, 1]);
    expect(pages.map((pg) => pg.nextCursor === null)).toEqual([false, false, true]);
    expect(pages.flatMap((pg) => pg.items.map((x) => x.reservationId))).toEqual(ids);
    for (const item of pages.flatMap((pg) => pg.items)) expect(item).toMatchObject({ productId: p, status: 'settled' });
    expect((await listPage(svc, p, 'settled', null, 7)).nextCursor).toBeNull();
    expect((await listPage(svc, p, 'committed')).items).toEqual([]);

    expect((await svc.admin('GET', `/v1/products/${p}/reservations?status=bogus`)).status).toBe(400);
    expect((await svc.admin('GET', `/v1/products/${p}/reservations?status=settled&limit=0`)).status).toBe(400);
    expect((await svc.client('GET', `/v1/products/${p}/reservations?status=settled`)).status).toBe(403);
  });

  it('bull-board at /admin/queues: 200 with the admin key, 401 without a key, 403 with a client key', async () => {
    const asAdmin = await svc.call('GET', '/admin/queues', { key: ADMIN_KEY });
    expect(asAdmin.status).toBe(200);
    expect(String(asAdmin.headers.get('content-type'))).toMatch(/text\/html/);
    const api = await svc.call('GET', '/admin/queues/api/queues', { key: ADMIN_KEY });
    expect(api.status).toBe(200);
    expect(JSON.stringify(api.body)).toContain('settlement');

    expect((await svc.call('GET', '/admin/queues', { key: null })).status).toBe(401);
    expect((await svc.call('GET', '/admin/queues', { key: 'not-a-key-at-all' })).status).toBe(401);
    expect((await svc.call('GET', '/admin/queues', { key: CLIENT_KEY })).status).toBe(403);
    expect((await svc.call('GET', '/admin/queues/api/queues', { key: CLIENT_KEY })).status).toBe(403);
    expect((await svc.call('GET', '/admin/queues/api/queues', { key: null })).status).toBe(401);
  });

  it(
    'bull-board takes the admin key as a Basic auth password, so a ' +
      'browser can open it; asks for it with a Basic challenge',
    async () => {
      const basic = (user: string, key: string) => ({
        authorization: `Basic ${Buffer.from(`${user}:${key}`).toString('base64')}`,
      });
      const anonymous = await fetch(`${svc.baseUrl}/admin/queues`);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm="quota-allocator admin"/);

      const page = await fetch(`${svc.baseUrl}/admin/queues`, { headers: basic('ops', ADMIN_KEY) });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect((await fetch(`${svc.baseUrl}/admin/queues/api/queues`, { headers: basic('', ADMIN_KEY) })).status).toBe(
        200,
      );
      expect((await fetch(`${svc.baseUrl}/admin/queues`, { headers: basic('ops', CLIENT_KEY) })).status).toBe(403);
      expect((await fetch(`${svc.baseUrl}/admin/queues`, { headers: basic('ops', 'wrong') })).status).toBe(401);
      expect((await fetch(`${svc.baseUrl}/admin/queues`, { headers: basic(ADMIN_KEY, '') })).status).toBe(401);

      // The API itself stays Bearer only: Basic credentials there are no key at all.
      const api = await fetch(`${svc.baseUrl}/v1/products/none`, { headers: basic('ops', ADMIN_KEY) });
      expect(api.status).toBe(401);
      expect(api.headers.get('www-authenticate')).toBe('Bearer');
    },
  );
});

describe('without SETTLEMENT_URL: the internal ledger', () => {
  let svc: ServiceContext;
  beforeAll(async () => {
    svc = await startService(null);
  });
  afterAll(async () => {
    await svc?.stop();
  });

  it("commits settle through the queue into the service's own ledger, each listed once", async () => {
    const p = await makeProduct(svc, 100_000);
    await makeLine(svc, p, 'c1', 50_000);
    await makeLine(svc, p, 'c2', 50_000);
    const committed = [];
    for (let i = 0; i < 6; i++)
      committed.push(await reserveAndCommit(svc, p, i % 2 ? 'c2' : 'c1', 1_000 + i, i === 0 ? 600 : undefined));
    for (const r of committed) expect((await waitStatus(svc, p, r.reservationId)).status).toBe('settled');

    // A duplicate job changes nothing in the internal ledger either.
    const queue = settlementQueueOf(svc);
    try {
      await queue.add(
        'settle',
        { productId: p, reservationId: committed[0].reservationId },
        { jobId: uniqueId('dup') },
      );
      await waitUntil(
        'the duplicate job',
        async () => (await queue.getJobCounts('completed')).completed ?? 0,
        (n) => n >= committed.length + 1,
      );
    } finally {
      await queue.close();
    }

    const res = await svc.admin('GET', `/v1/products/${p}/ledger`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.nextCursor).toBeNull();
    const entries: any[] = res.body.entries;
    expect(entries).toHaveLength(committed.length);
    expect(new Set(entries.map((e) => e.reservationId))).toEqual(new Set(committed.map((r) => r.reservationId)));
    for (const r of committed) {
      const e = entries.find((x) => x.reservationId === r.reservationId);
      expect(e).toMatchObject({ productId: p, customerId: r.customerId, amount: r.committedAmount });
      expect(e.recordedAt).toMatch(ISO);
    }
    const total = committed.reduce((s, r) => s + r.committedAmount, 0);
    expect(await getPool(svc, p)).toMatchObject({ held: 0, committed: total, settled: total });
    expect((await svc.client('GET', `/v1/products/${p}/ledger`)).status).toBe(403);
    expect(await metric(svc, 'quota_settlement_outcomes_total{outcome="settled",changed="true"}')).toBe(
      committed.length,
    );
  });
});

describe('engine.recordSettlement is state-checked', () => {
  let ctx: EngineContext;
  beforeAll(async () => {
    ctx = await createEngineContext();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  async function committedReservation(amount: number) {
    const { engine } = ctx;
    const p = uniqueId('p');
    expect((await engine.upsertProduct(p, { capacity: 10_000 }, 'put')).ok).toBe(true);
    expect(
      (
        await engine.upsertLines(p, [
          { customerId: 'c1', limit: 5_000, status: 'active', statusReason: null, tier: null },
        ])
      ).ok,
    ).toBe(true);
    const id = uniqueId('r');
    const r = await engine.reserve({
      productId: p,
      customerId: 'c1',
      reservationId: id,
      amount,
      idempotencyKey: uniqueId('k'),
      fingerprint: 'f',
    });
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect((await engine.commit(p, id)).ok).toBe(true);
    return { p, id };
  }

  async function counters(p: string) {
    const pool = await ctx.engine.readPool(p);
    const line = await ctx.engine.readLine(p, 'c1');
    if (!pool.ok || !line.ok) throw new Error('read failed');
    return {
      committed: pool.value.committed,
      settled: pool.value.settled,
      drawn: line.value.drawn,
      settling: line.value.settling,
    };
  }

  it('settled twice: the second is changed: false, the counters moved once', async () => {
    const { p, id } = await committedReservation(700);
    expect(await counters(p)).toEqual({ committed: 700, settled: 0, drawn: 700, settling: 700 });
    const first = await ctx.engine.recordSettlement(p, id, 'settled');
    const second = await ctx.engine.recordSettlement(p, id, 'settled');
    expect(first.ok && first.value.changed).toBe(true);
    expect(second.ok && second.value.changed).toBe(false);
    expect(second.ok && second.value.reservation.status).toBe('settled');
    expect(await counters(p)).toEqual({ committed: 700, settled: 700, drawn: 700, settling: 0 });
    // A late attempt or reversal of a settled reservation does nothing either.
    const attempt = await ctx.engine.recordSettlement(p, id, 'attempt', 'late');
    expect(attempt.ok && attempt.value.changed).toBe(false);
    const reversal = await ctx.engine.recordSettlement(p, id, 'reversed', 'late rejection');
    expect(reversal.ok).toBe(false);
    expect(!reversal.ok && reversal.code).toBe('RESERVATION_STATE_CONFLICT');
    expect(await counters(p)).toEqual({ committed: 700, settled: 700, drawn: 700, settling: 0 });
  });

  it('reversed twice: quota returned once', async () => {
    const { p, id } = await committedReservation(400);
    const first = await ctx.engine.recordSettlement(p, id, 'reversed', 'rejected');
    const second = await ctx.engine.recordSettlement(p, id, 'reversed', 'rejected');
    expect(first.ok && first.value.changed).toBe(true);
    expect(second.ok && second.value.changed).toBe(false);
    expect(await counters(p)).toEqual({ committed: 0, settled: 0, drawn: 0, settling: 0 });
    const settle = await ctx.engine.recordSettlement(p, id, 'settled');
    expect(!settle.ok && settle.code).toBe('RESERVATION_STATE_CONFLICT');
    expect(await counters(p)).toEqual({ committed: 0, settled: 0, drawn: 0, settling: 0 });
  });

  it('concurrent settled and reversed on one reservation: exactly one applies', async () => {
    const { p, id } = await committedReservation(250);
    const results = await Promise.all([
      ctx.engine.recordSettlement(p, id, 'settled'),
      ctx.engine.recordSettlement(p, id, 'reversed', 'x'),
      ctx.engine.recordSettlement(p, id, 'settled'),
      ctx.engine.recordSettlement(p, id, 'reversed', 'x'),
    ]);
    expect(results.filter((r) => r.ok && r.value.changed)).toHaveLength(1);
    const c = await counters(p);
    expect([
      { committed: 250, settled: 250, drawn: 250, settling: 0 },
      { committed: 0, settled: 0, drawn: 0, settling: 0 },
    ]).toContainEqual(c);
  });
});
