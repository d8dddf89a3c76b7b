/**
 * Draws whose settlement outcome is unknown (the ledger never said), oldest
 * first, with buttons to record what the ledger really did: settled, or
 * reversed (quota returned). Admins only: the listing and resolve routes are.
 */
import type { QuotaClient, Reservation } from '@quota-allocator/client';
import { useEffect, useState } from 'preact/hooks';
import { amount, time } from '../format.js';
import { describeError } from '../session.js';

interface Props {
  client: QuotaClient;
  onUnauthenticated: () => void;
}

export function Settlements({ client, onUnauthenticated }: Props) {
  const [productId, setProductId] = useState('');
  const [shown, setShown] = useState<string | null>(null);
  const [items, setItems] = useState<Reservation[] | null>(null);
  const [reasons, setReasons] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);
  const [resolving, setResolving] = useState<string | null>(null);

  useEffect(() => {
    if (!shown) return;
    let current = true;
    client.admin
      .listReservations(shown, 'settlement_unknown', { limit: 500 })
      .then((answer) => {
        if (!current) return;
        if (answer.ok) {
          setItems(answer.value.items);
          setError(null);
        } else if (answer.problem.code === 'UNAUTHENTICATED') onUnauthenticated();
        else {
          setItems(null);
          setError(`${answer.problem.detail} (${answer.problem.code})`);
        }
      })
      .catch((err: unknown) => current && setError(describeError(err)));
    return () => {
      current = false;
    };
  }, [shown, client, generation]);

  const resolve = async (r: Reservation, outcome: 'settled' | 'reversed') => {
    const reason = reasons[r.reservationId]?.trim();
    setResolving(r.reservationId);
    try {
      const answer = await client.admin.resolve(r.productId, r.reservationId, outcome, reason || undefined);
      if (answer.ok) setMessage(`${r.reservationId} resolved: ${answer.value.status}.`);
      else setMessage(`${r.reservationId}: ${answer.problem.detail} (${answer.problem.code})`);
    } catch (err) {
      setMessage(describeError(err));
    }
    setResolving(null);
    setGeneration((g) => g + 1);
  };

  return (
    <section aria-labelledby="settlements-heading">
      <h2 id="settlements-heading">Unknown settlements</h2>
      <form
        class="inline"
        aria-label="Unknown settlements"
        onSubmit={(e) => {
          e.preventDefault();
          setMessage(null);
          setShown(productId.trim());
          setGeneration((g) => g + 1);
        }}
      >
        <div class="field">
          <label for="settlements-product">Product</label>
          <input
            id="settlements-product"
            required
            value={productId}
            onInput={(e) => setProductId(e.currentTarget.value)}
          />
        </div>
        <button type="submit">Show</button>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {message && (
        <p class="note" role="status">
          {message}
        </p>
      )}
      {items && items.length === 0 && <p data-testid="no-unknown">No settlement of {shown} is unknown.</p>}
      {items && items.length > 0 && (
        <table data-testid="unknown-settlements">
          <thead>
            <tr>
              <th>reservation</th>
              <th>customer</th>
              <th class="num">committed</th>
              <th class="num">attempts</th>
              <th>last error</th>
              <th>created</th>
              <th>resolve</th>
            </tr>
          </thead>
          <tbody>
            {items.map((r) => (
              <tr key={r.reservationId} data-reservation={r.reservationId}>
                <th scope="row">
                  <code>{r.reservationId}</code>
                </th>
                <td>{r.customerId}</td>
                <td class="num">{amount(r.committedAmount)}</td>
                <td class="num">{r.attempts}</td>
                <td>{r.lastError ?? '—'}</td>
                <td>{time(r.createdAt)}</td>
                <td>
                  <div class="field">
                    <label for={`reason-${r.reservationId}`}>Reason</label>
                    <input
                      id={`reason-${r.reservationId}`}
                      value={reasons[r.reservationId] ?? ''}
                      onInput={(e) => setReasons({ ...reasons, [r.reservationId]: e.currentTarget.value })}
                    />
                  </div>
                  <button type="button" disabled={resolving !== null} onClick={() => void resolve(r, 'settled')}>
                    Settled
                  </button>{' '}
                  <button
                    type="button"
                    class="secondary"
                    disabled={resolving !== null}
                    onClick={() => void resolve(r, 'reversed')}
                  >
                    Reversed
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
