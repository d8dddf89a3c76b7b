/**
 * "Why can't this customer draw?": the line, `drawable`, every blocker
 * explained in the chosen language, and the customer's holds with their
 * events. Looked up again when the language changes.
 */
import type { Line, Pool, QuotaClient, Reservation, ReservationEvent } from '@quota-allocator/client';
import { useEffect, useRef, useState } from 'preact/hooks';
import { explainBlockers } from '../blockerTexts.js';
import { amount, time } from '../format.js';
import { describeError, type Language, type Role } from '../session.js';

interface Props {
  client: QuotaClient;
  role: Role;
  language: Language;
  onUnauthenticated: () => void;
}

interface Holds {
  items: Reservation[];
  /** Why there is no list, when the service could not give it. */
  note?: string;
  events: Record<string, ReservationEvent[]>;
}

interface Found {
  productId: string;
  customerId: string;
  line: Line;
  pool: Pool | undefined;
  holds: Holds;
}

const EVENTS_SHOWN_FOR = 10;

export function CustomerLookup({ client, role, language, onUnauthenticated }: Props) {
  const [productId, setProductId] = useState('');
  const [customerId, setCustomerId] = useState('');
  const [asked, setAsked] = useState<{ productId: string; customerId: string } | null>(null);
  const [found, setFound] = useState<Found | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const productInput = useRef<HTMLInputElement>(null);
  // The first view after signing in: the cursor waits in its first field.
  useEffect(() => productInput.current?.focus(), []);

  // Runs for each question, and again with the new client when the language changes.
  useEffect(() => {
    if (!asked) return;
    let current = true;
    setBusy(true);
    setError(null);
    lookUp(client, role, asked.productId, asked.customerId)
      .then((result) => {
        if (!current) return;
        if (result.unauthenticated) return onUnauthenticated();
        if (result.error) {
          setFound(null);
          setError(result.error);
        } else setFound(result.found!);
      })
      .catch((err: unknown) => current && setError(describeError(err)))
      .finally(() => current && setBusy(false));
    return () => {
      current = false;
    };
  }, [asked, client]);

  return (
    <section aria-labelledby="lookup-heading">
      <h2 id="lookup-heading">Customer lookup</h2>
      <form
        class="inline"
        aria-label="Customer lookup"
        onSubmit={(e) => {
          e.preventDefault();
          setAsked({ productId: productId.trim(), customerId: customerId.trim() });
        }}
      >
        <div class="field">
          <label for="lookup-product">Product</label>
          <input
            ref={productInput}
            id="lookup-product"
            required
            value={productId}
            onInput={(e) => setProductId(e.currentTarget.value)}
          />
        </div>
        <div class="field">
          <label for="lookup-customer">Customer</label>
          <input
            id="lookup-customer"
            required
            value={customerId}
            onInput={(e) => setCustomerId(e.currentTarget.value)}
          />
        </div>
        <button type="submit" disabled={busy}>
          Look up
        </button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {found && <LineReport found={found} role={role} language={language} />}
    </section>
  );
}

function LineReport({ found, role, language }: { found: Found; role: Role; language: Language }) {
  const { line, pool, holds } = found;
  const explanations = explainBlockers(line, pool, language);
  return (
    <div data-testid="line-report">
      <div class="card">
        <h3>
          {found.customerId} in {found.productId}
        </h3>
        <p class="drawable">
          drawable: <strong data-testid="drawable">{amount(line.drawable)}</strong>
        </p>
        <dl class="facts">
          <dt>status</dt>
          <dd class={`status-${line.status}`} data-testid="line-status">
            {line.status}
            {line.statusReason ? ` (${line.statusReason})` : ''}
          </dd>
          <dt>limit</dt>
          <dd>{amount(line.limit)}</dd>
          <dt>held</dt>
          <dd>{amount(line.held)}</dd>
          <dt>drawn</dt>
          <dd>{amount(line.drawn)}</dd>
          <dt>settling</dt>
          <dd>{amount(line.settling)}</dd>
          <dt>available</dt>
          <dd>{amount(line.available)}</dd>
          <dt>tier</dt>
          <dd>{line.tier ?? '—'}</dd>
        </dl>
      </div>
      <div class="card">
        <h3>Why it cannot draw</h3>
        {explanations.length === 0 ? (
          <p>Nothing blocks a draw now.</p>
        ) : (
          <ul class="blockers" data-testid="blockers" lang={language === 'zh-CN' ? 'zh-CN' : 'en'}>
            {explanations.map((e) => (
              <li key={e.code} data-code={e.code} data-source={e.source}>
                <strong>{e.title}</strong>: {e.detail} <code>{e.code}</code>
              </li>
            ))}
          </ul>
        )}
      </div>
      <div class="card">
        <h3>Holds and their events</h3>
        {holds.note && <p class="note">{holds.note}</p>}
        {holds.items.length === 0 ? (
          <p>No reservations to show.</p>
        ) : (
          <table data-testid="holds">
            <thead>
              <tr>
                <th>reservation</th>
                <th>status</th>
                <th class="num">amount</th>
                <th class="num">committed</th>
                <th>created</th>
                <th>expires</th>
                {role === 'admin' && <th>events</th>}
              </tr>
            </thead>
            <tbody>
              {holds.items.map((r) => (
                <tr key={r.reservationId}>
                  <td>
                    <code>{r.reservationId}</code>
                  </td>
                  <td class={`status-${r.status}`}>{r.status}</td>
                  <td class="num">{amount(r.amount)}</td>
                  <td class="num">{amount(r.committedAmount)}</td>
                  <td>{time(r.createdAt)}</td>
                  <td>{time(r.expiresAt)}</td>
                  {role === 'admin' && (
                    <td>
                      <ol class="events">
                        {(holds.events[r.reservationId] ?? []).map((ev, i) => (
                          <li key={i}>
                            {time(ev.at)}: {ev.from ?? 'new'} → {ev.to} {amount(ev.amount)}
                            {ev.reason ? ` (${ev.reason})` : ''}
                          </li>
                        ))}
                      </ol>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </div>
  );
}

interface LookUpResult {
  found?: Found;
  error?: string;
  unauthenticated?: boolean;
}

async function lookUp(client: QuotaClient, role: Role, productId: string, customerId: string): Promise<LookUpResult> {
  const [line, pool] = await Promise.all([client.getLine(productId, customerId), client.getProduct(productId)]);
  if (!line.ok) {
    if (line.problem.code === 'UNAUTHENTICATED') return { unauthenticated: true };
    return { error: `${line.problem.title}: ${line.problem.detail} (${line.problem.code})` };
  }
  const holds = await customerHolds(client, role, productId, customerId);
  return { found: { productId, customerId, line: line.value, pool: pool.ok ? pool.value : undefined, holds } };
}

/** The customer's reservations in the product, newest first; admins also get each one's events. */
async function customerHolds(client: QuotaClient, role: Role, productId: string, customerId: string): Promise<Holds> {
  const own = await client.listCustomerReservations(productId, customerId, { limit: 50 });
  if (!own.ok)
    return { items: [], note: `Reservations not available: ${own.problem.detail} (${own.problem.code})`, events: {} };
  const holds: Holds = { items: own.value.items, events: {} };
  if (role === 'admin') {
    const shown = holds.items.slice(0, EVENTS_SHOWN_FOR);
    const answers = await Promise.all(shown.map((r) => client.admin.events(productId, r.reservationId)));
    answers.forEach((a, i) => {
      if (a.ok) holds.events[shown[i]!.reservationId] = a.value.events;
    });
  }
  return holds;
}
