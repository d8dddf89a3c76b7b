/**
 * Sharded products, one node: the same spike of reserves on a product with 1
 * and with 4 sub-pools, in one run (ratios, not absolutes: the machine is
 * shared). Throughput and p99 of engine.reserve (FCALL round trips, 64 in
 * flight), and Redis time per reserve from INFO commandstats (every command
 * of the run, borrowing's included, divided by the reserves).
 *
 * Run: npx tsc -p tsconfig.bench.json && node dist/bench/sharding.js [reserves per round, default 20000] [rounds, default 3] [capacity / demand, default 0.8]
 * It starts its own redis-server on a free port and stops it.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { createQuotaEngine } from '../src/engine/quotaEngine.js';
import { createKeys } from '../src/redis/keys.js';

const RESERVES = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 3);
/** Capacity as a share of the demand: 0.8 (default) runs out near the end; 2 never runs out. */
const COVER = Number(process.argv[4] ?? 0.8);
const IN_FLIGHT = 64;
const CUSTOMERS = 2_000;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });

async function main() {
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 300));
  const redis = new Redis({ port, host: '127.0.0.1' });
  try {
    const counts = { borrowGranted: 0, borrowRefused: 0, transfers: 0 };
    const keys = createKeys(`bench${Date.now()}`);
    const engine = createQuotaEngine({
      redis,
      keys,
      shardEvents: {
        onBorrow: (_p, o) => (o === 'granted' ? counts.borrowGranted++ : counts.borrowRefused++),
        onTransfer: () => counts.transfers++,
      },
    });
    await engine.loadScripts();
    const results: Record<string, { rps: number[]; p99: number[]; usPerReserve: number[] }> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const shards of [1, 4]) {
        const productId = `bench-${shards}-${round}-${randomUUID().slice(0, 8)}`;
        // COVER 0.8: capacity runs out at about 80% of the demand, the end of the spike borrows and refuses.
        await engine.upsertProduct(productId, { capacity: Math.floor(RESERVES * 50 * COVER), shards }, 'put');
        for (let i = 0; i < CUSTOMERS; i += 500) {
          await engine.upsertLines(
            productId,
            Array.from({ length: 500 }, (_, j) => ({ customerId: `c${i + j}`, limit: 1_000_000, status: 'active' as const, statusReason: null, tier: null })),
          );
        }
        await redis.call('CONFIG', 'RESETSTAT');
        const latencies: number[] = [];
        let next = 0;
        const started = process.hrtime.bigint();
        await Promise.all(
          Array.from({ length: IN_FLIGHT }, async () => {
            while (next < RESERVES) {
              const i = next++;
              const t0 = process.hrtime.bigint();
              await engine.reserve({
                productId,
                customerId: `c${i % CUSTOMERS}`,
                amount: 1 + ((i * 7919) % 99),
                reservationId: randomUUID(),
                idempotencyKey: randomUUID(),
                fingerprint: 'f',
              });
              latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
            }
          }),
        );
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const stats = (await redis.call('INFO', 'commandstats')) as string;
        // Every command of the run (FCALLs, the layout and transfer reads, HDELs), not the stats commands.
        const usec = [...stats.matchAll(/cmdstat_(\w+):calls=\d+,usec=(\d+)/g)]
          .filter((m) => m[1] !== 'info' && m[1] !== 'config')
          .reduce((s, m) => s + Number(m[2]), 0);
        latencies.sort((a, b) => a - b);
        const r = (results[shards] ??= { rps: [], p99: [], usPerReserve: [] });
        r.rps.push(RESERVES / seconds);
        r.p99.push(latencies[Math.floor(latencies.length * 0.99)]!);
        r.usPerReserve.push(usec / RESERVES);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const m = (s: number) => ({ rps: median(results[s]!.rps), p99: median(results[s]!.p99), us: median(results[s]!.usPerReserve) });
    const one = m(1);
    const four = m(4);
    console.log(`reserves per round ${RESERVES}, ${IN_FLIGHT} in flight, rounds ${ROUNDS}, capacity ${COVER} x demand (medians)`);
    console.log(`1 shard : ${one.rps.toFixed(0)} reserves/s, p99 ${one.p99.toFixed(2)} ms, Redis ${one.us.toFixed(1)} µs per reserve`);
    console.log(`4 shards: ${four.rps.toFixed(0)} reserves/s, p99 ${four.p99.toFixed(2)} ms, Redis ${four.us.toFixed(1)} µs per reserve`);
    console.log(`ratios (4/1): throughput ${(four.rps / one.rps).toFixed(2)}, p99 ${(four.p99 / one.p99).toFixed(2)}, Redis time per reserve ${(four.us / one.us).toFixed(2)}`);
    console.log(`4-shard runs: reserves that borrowed ${counts.borrowGranted} granted, ${counts.borrowRefused} refused; transfers ${counts.transfers}`);
  } finally {
    redis.disconnect();
    server.kill('SIGTERM');
  }
}

void main();
