/** `quota product show|pause|resume|close <product>` */
import type { Pool } from '@quota-allocator/client';
import type { Command } from 'commander';
import { valueOf } from '../connection.js';
import { emit, money, table } from '../io.js';
import type { Registrar } from '../main.js';
import { connectFrom, optionsOf, parseWhen } from './common.js';

export function registerProduct(program: Command, { io, wrap }: Registrar): void {
  const product = program.command('product').description("show a product's pool, or pause, resume or close it");

  product
    .command('show <product>')
    .description('the pool snapshot: capacity, held, committed, settled, available, status')
    .action(
      wrap(async (productId: string, _opts: unknown, command: Command) => {
        const { client } = connectFrom(command, io);
        const pool = valueOf(await client.getProduct(productId), `product ${productId}`);
        emit(io, !!optionsOf(command).json, pool, () => describePool(pool));
      }),
    );

  product
    .command('pause <product>')
    .description('stop new draws (commits of existing holds still go through)')
    .option('--reason <text>', 'shown to customers in the refusal')
    .option('--until <time>', 'when draws open again by themselves: ISO time or 30m/2h/1d (sent as Retry-After)')
    .action(
      wrap(async (productId: string, opts: { reason?: string; until?: string }, command: Command) => {
        const { client } = connectFrom(command, io);
        const changes = {
          status: 'paused' as const,
          ...(opts.reason ? { pauseReason: opts.reason } : {}),
          ...(opts.until ? { resumeAt: parseWhen(opts.until, '--until') } : {}),
        };
        const pool = valueOf(await client.admin.patchProduct(productId, changes), `pause ${productId}`);
        emit(
          io,
          !!optionsOf(command).json,
          pool,
          () => `paused ${productId}${pool.resumeAt ? ` until ${pool.resumeAt}` : ''}\n${describePool(pool)}`,
        );
      }),
    );

  for (const [name, status, text] of [
    ['resume', 'open', 'open the product for draws again'],
    ['close', 'closed', 'close the product for new draws for good (existing holds can still commit)'],
  ] as const) {
    product
      .command(`${name} <product>`)
      .description(text)
      .action(
        wrap(async (productId: string, _opts: unknown, command: Command) => {
          const { client } = connectFrom(command, io);
          const pool = valueOf(await client.admin.patchProduct(productId, { status }), `${name} ${productId}`);
          emit(io, !!optionsOf(command).json, pool, () => `${productId} is ${pool.status}\n${describePool(pool)}`);
        }),
      );
  }
}

export function describePool(pool: Pool): string {
  return table([
    ['product', pool.productId],
    [
      'status',
      pool.status +
        (pool.pauseReason ? ` (${pool.pauseReason})` : '') +
        (pool.resumeAt ? `, resumes ${pool.resumeAt}` : ''),
    ],
    ['window', `${pool.opensAt ?? 'always'} → ${pool.closesAt ?? 'open-ended'}`],
    ['capacity', money(pool.capacity)],
    ['held', money(pool.held)],
    ['committed', money(pool.committed)],
    ['settled', money(pool.settled)],
    ['available', money(pool.available)],
    ['available to all tiers', money(pool.availableToAllTiers)],
    ['draw range', `${money(pool.minAmount)} – ${pool.maxAmount === null ? 'no cap' : money(pool.maxAmount)}`],
    ['hold TTL', `${pool.holdTtlSeconds} s`],
  ]);
}
