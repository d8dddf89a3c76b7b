/**
 * The PostgreSQL peer: the same reserve as one transaction that does a
 * conditional UPDATE of the line row, a conditional UPDATE of the hot pool
 * row and an INSERT of the hold (whose unique idempotency key is the
 * idempotency record), with durable commits (synchronous_commit on), called
 * from Node through a `pg` Pool with as many calls in flight as the engine's
 * run. The transaction is one PL/pgSQL function call: one round trip per
 * reserve, the cheapest way to ask PostgreSQL for it, so the ratio against
 * it is a conservative one.
 *
 * Uses a schema of its own with a unique name, dropped afterwards. Reached at
 * BENCH_PG_URL, else postgres://postgres@127.0.0.1:5432/test, else
 * postgres://root@127.0.0.1:5432/test; skipped with the reason otherwise.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { onCleanup } from '../lib/cleanup.js';
import { prng, randomInt } from '../lib/stats.js';
import { runInFlight, type InFlightRun } from './engineDirect.js';

export type PostgresResult =
  | { skipped: true; reason: string }
  | {
      skipped: false;
      url: string;
      version: string;
      settings: Record<string, string>;
      poolSize: number;
      run: InFlightRun;
      refusals: number;
    };

const CUSTOMERS = 1_000;

async function connect(env: NodeJS.ProcessEnv): Promise<{ pool: pg.Pool; url: string } | { reason: string }> {
  const candidates = env.BENCH_PG_URL
    ? [env.BENCH_PG_URL]
    : ['postgres://postgres@127.0.0.1:5432/test', 'postgres://root@127.0.0.1:5432/test'];
  const reasons: string[] = [];
  for (const url of candidates) {
    const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
    try {
      await probe.connect();
      await probe.end();
      return { pool: new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 5_000 }), url };
    } catch (err) {
      reasons.push(`${url.replace(/:[^:@/]*@/, ':***@')}: ${(err as Error).message}`);
      await probe.end().catch(() => {});
    }
  }
  return { reason: `no PostgreSQL reachable (${reasons.join('; ')}); set BENCH_PG_URL to one` };
}

export async function runPostgresPeer(
  env: NodeJS.ProcessEnv,
  inFlight: number,
  seconds: number,
  warmupSeconds: number,
  seed: number,
): Promise<PostgresResult> {
  const connected = await connect(env);
  if ('reason' in connected) return { skipped: true, reason: connected.reason };
  const admin = connected.pool;
  const schema = `qa_bench_${process.pid}_${Date.now().toString(36)}`;
  let pool: pg.Pool | undefined;
  const drop = async () => {
    await pool?.end().catch(() => {});
    await admin
      .query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      .catch((err: Error) => console.error(`could not drop schema ${schema}: ${err.message}`));
    await admin.end().catch(() => {});
  };
  const cancel = onCleanup(`PostgreSQL schema ${schema}`, drop);
  try {
    const version = (await admin.query('SHOW server_version')).rows[0].server_version as string;
    const settings: Record<string, string> = {};
    for (const name of ['synchronous_commit', 'fsync', 'wal_sync_method', 'max_connections']) {
      settings[name] = (await admin.query(`SHOW ${name}`)).rows[0][name] as string;
    }
    const used = Number((await admin.query('SELECT count(*) AS n FROM pg_stat_activity')).rows[0].n);
    // Leave room for everyone else on this server.
    const poolSize = Math.max(4, Math.min(inFlight, Number(settings.max_connections) - used - 10));

    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.query(`
      CREATE TABLE ${schema}.pool (id text PRIMARY KEY, capacity bigint NOT NULL, held bigint NOT NULL DEFAULT 0);
      CREATE TABLE ${schema}.line (product text NOT NULL, customer text NOT NULL, lim bigint NOT NULL,
                                   held bigint NOT NULL DEFAULT 0, PRIMARY KEY (product, customer));
      CREATE TABLE ${schema}.hold (id uuid PRIMARY KEY, product text NOT NULL, customer text NOT NULL,
                                   amount bigint NOT NULL, expires_at timestamptz NOT NULL,
                                   idempotency_key text NOT NULL UNIQUE);
      CREATE FUNCTION ${schema}.reserve(p text, c text, a bigint, rid uuid, k text) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE ${schema}.line SET held = held + a WHERE product = p AND customer = c AND held + a <= lim;
        IF NOT FOUND THEN RETURN 'CUSTOMER_LIMIT_EXCEEDED'; END IF;
        UPDATE ${schema}.pool SET held = held + a WHERE id = p AND held + a <= capacity;
        IF NOT FOUND THEN RAISE EXCEPTION 'POOL_EXHAUSTED'; END IF;  -- undoes the line update
        INSERT INTO ${schema}.hold VALUES (rid, p, c, a, now() + interval '5 minutes', k);
        RETURN 'OK';
      END $$;
    `);
    await admin.query(`INSERT INTO ${schema}.pool VALUES ('b', 1000000000000000, 0)`);
    await admin.query(
      `INSERT INTO ${schema}.line SELECT 'b', 'c' || i, ` +
        `1000000000000000, 0 FROM generate_series(0, ${CUSTOMERS - 1}) i`,
    );

    pool = new pg.Pool({ connectionString: connected.url, max: poolSize, connectionTimeoutMillis: 10_000 });
    pool.on('error', () => {});
    const random = prng(seed);
    let refusals = 0;
    const reserve = (tag: string) => async (i: number) => {
      const r = await pool!.query(`SELECT ${schema}.reserve($1, $2, $3, $4, $5) AS code`, [
        'b',
        `c${randomInt(random, 0, CUSTOMERS - 1)}`,
        randomInt(random, 1, 100),
        randomUUID(),
        `${tag}-${i}`,
      ]);
      if (r.rows[0].code !== 'OK') refusals++;
    };
    await runInFlight('warm-up', inFlight, warmupSeconds, reserve('w'));
    const run = await runInFlight(
      `PostgreSQL reserve, ${inFlight} in flight (pool of ${poolSize})`,
      inFlight,
      seconds,
      reserve('m'),
    );
    return { skipped: false, url: connected.url, version, settings, poolSize, run, refusals };
  } finally {
    cancel();
    await drop();
  }
}
