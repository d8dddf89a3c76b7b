/** `quota why <product> <customer>`: the line, drawable, each blocker explained, live holds and recent events. */
import type { Line, Pool, Reservation, ReservationEvent } from '@quota-allocator/client';
import type { Command } from 'commander';
import { explainBlockers, type Explanation } from '../blockers.js';
import { problemError, valueOf } from '../connection.js';
import { emit, money, table } from '../io.js';
import type { Registrar } from '../main.js';
import { connectFrom, optionsOf } from './common.js';

const RECENT = 5;

interface Holds {
  /** null: the deployment has no per-customer list route yet (or the key may not read it). */
  live: Reservation[] | null;
  recent: { reservation: Reservation; events: ReservationEvent[] | null }[];
  note?: string;
}

export function registerWhy(program: Command, { io, wrap }: Registrar): void {
  program
    .command('why <product> <customer>')
    .description(
      "why can't this customer draw? The line, drawable, each blocker explained, live holds and recent events",
    )
    .action(
      wrap(async (productId: string, customerId: string, _opts: unknown, command: Command) => {
        const { client } = connectFrom(command, io);
        const options = optionsOf(command);
        const pool = valueOf(await client.getProduct(productId), `product ${productId}`);
        const lineAnswer = await client.getLine(productId, customerId);
        if (!lineAnswer.ok && lineAnswer.problem.code === 'NO_CREDIT_LINE') {
          const answer = {
            productId,
            customerId,
            line: null,
            drawable: 0,
            blockers: [
              {
                code: 'NO_CREDIT_LINE',
                text: 'The customer has no credit line in this product: import or create one first.',
                source: 'cli',
              },
            ],
          };
          emit(
            io,
            !!options.json,
            answer,
            () => `${customerId} in ${productId}: cannot draw.\n  NO_CREDIT_LINE  ${answer.blockers[0]!.text}`,
          );
          return;
        }
        const line = valueOf(lineAnswer, `line ${customerId} in ${productId}`);
        const explanations = explainBlockers(line, pool, options.lang);

        const holds: Holds = { live: null, recent: [] };
        const listed = await client.listCustomerReservations(productId, customerId, { limit: 50 });
        if (listed.ok) {
          holds.live = listed.value.items.filter((r) => r.status === 'held');
          for (const reservation of listed.value.items.slice(0, RECENT)) {
            const events = await client.admin.events(productId, reservation.reservationId);
            holds.recent.push({ reservation, events: events.ok ? events.value.events : null });
          }
        } else if (listed.problem.code === 'ROUTE_NOT_FOUND' || listed.problem.status === 403) {
          holds.note =
            listed.problem.code === 'ROUTE_NOT_FOUND'
              ? "this deployment cannot list a customer's reservations yet"
              : 'this key may not list reservations';
        } else {
          throw problemError(listed.problem, `reservations of ${customerId}`);
        }

        const answer = {
          productId,
          customerId,
          drawable: line.drawable,
          line,
          pool: poolSummary(pool),
          blockers: explanations,
          holds,
        };
        emit(io, !!options.json, answer, () => describe(line, explanations, holds));
      }),
    );
}

function poolSummary(pool: Pool) {
  const { status, available, availableToAllTiers, minAmount, maxAmount, pauseReason, resumeAt, opensAt, closesAt } =
    pool;
  return { status, available, availableToAllTiers, minAmount, maxAmount, pauseReason, resumeAt, opensAt, closesAt };
}

function describe(line: Line, explanations: Explanation[], holds: Holds): string {
  const head =
    line.drawable > 0
      ? `${line.customerId} in ${line.productId} can draw up to ${money(line.drawable)} now.`
      : `${line.customerId} in ${line.productId} cannot draw now.`;
  const parts = [
    head,
    table([
      ['line status', line.status + (line.statusReason ? ` (${line.statusReason})` : '')],
      ['limit', money(line.limit)],
      ['held', money(line.held)],
      ['drawn', money(line.drawn)],
      ['settling', money(line.settling)],
      ['available', money(line.available)],
      ['drawable', money(line.drawable)],
      ['tier', line.tier ?? '-'],
    ]),
  ];
  if (explanations.length > 0) parts.push(`Blockers:\n${explanations.map((e) => `  ${e.code}  ${e.text}`).join('\n')}`);
  if (holds.live === null) parts.push(`Holds: ${holds.note ?? 'not available'}`);
  else {
    parts.push(
      holds.live.length === 0
        ? 'Live holds: none'
        : [
            'Live holds:',
            ...holds.live.map((r) => `  ${r.reservationId}  ${money(r.amount)}  expires ${r.expiresAt}`),
          ].join('\n'),
    );
    if (holds.recent.length > 0) {
      const lines = holds.recent.flatMap(({ reservation, events }) => [
        `  ${reservation.reservationId}  ${reservation.status}  ${money(reservation.amount)}  ${reservation.createdAt}`,
        ...(events ?? []).map(
          (e) => `      ${e.at}  ${e.from ?? '-'} → ${e.to}  ${money(e.amount)}${e.reason ? `  ${e.reason}` : ''}`,
        ),
      ]);
      parts.push(`Recent reservations:\n${lines.join('\n')}`);
    }
  }
  return parts.join('\n');
}
