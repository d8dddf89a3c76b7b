/**
 * Products with live pool numbers, refreshed every couple of seconds. The
 * list comes from `GET /v1/products`; on a deployment without that route
 * the operator adds products by id (kept in this tab's session storage).
 * Admins can pause (with a reason and an optional reopening time) and resume.
 */
import type { Pool, QuotaClient } from '@quota-allocator/client';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { amount, time, windowText } from '../format.js';
import { describeError, type Role } from '../session.js';

const REFRESH_MS = 2_000;
const MAX_PAGES = 10;
const TYPED_ITEM = 'quota-console.products';

interface Props {
  client: QuotaClient;
  role: Role;
  onUnauthenticated: () => void;
}

function typedProducts(): string[] {
  try {
    const stored = JSON.parse(window.sessionStorage.getItem(TYPED_ITEM) ?? '[]') as unknown;
    return Array.isArray(stored) ? stored.filter((s): s is string => typeof s === 'string') : [];
  } catch {
    return [];
  }
}

export function Products({ client, role, onUnauthenticated }: Props) {
  const [typed, setTyped] = useState<string[]>(typedProducts);
  const [pools, setPools] = useState<Pool[]>([]);
  const [listed, setListed] = useState<boolean | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [newProduct, setNewProduct] = useState('');
  const [pausing, setPausing] = useState<string | null>(null);
  const [refreshedAt, setRefreshedAt] = useState<string>('');

  const refresh = useCallback(async () => {
    try {
      const result = await loadPools(client, typed);
      if (result.unauthenticated) return onUnauthenticated();
      setListed(result.listed);
      setPools(result.pools);
      setError(result.errors.length ? result.errors.join(' ') : null);
      setRefreshedAt(new Date().toISOString());
    } catch (err) {
      setError(describeError(err));
    }
  }, [client, typed]);

  useEffect(() => {
    void refresh();
    const timer = window.setInterval(() => void refresh(), REFRESH_MS);
    return () => window.clearInterval(timer);
  }, [refresh]);

  const change = async (productId: string, patch: Parameters<QuotaClient['admin']['patchProduct']>[1], done: string) => {
    const answer = await client.admin.patchProduct(productId, patch).catch((err: unknown) => ({ ok: false as const, problem: { detail: describeError(err), code: 'NETWORK' } }));
    if (answer.ok) setMessage(done);
    else setMessage(`${productId}: ${answer.problem.detail} (${answer.problem.code})`);
    setPausing(null);
    await refresh();
  };

  return (
    <section aria-labelledby="products-heading">
      <h2 id="products-heading">Products</h2>
      <form
        class="inline"
        aria-label="Add product"
        onSubmit={(e) => {
          e.preventDefault();
          const id = newProduct.trim();
          if (!id || typed.includes(id)) return;
          const next = [...typed, id];
          window.sessionStorage.setItem(TYPED_ITEM, JSON.stringify(next));
          setTyped(next);
          setNewProduct('');
        }}
      >
        <div class="field">
          <label for="add-product">Product</label>
          <input id="add-product" value={newProduct} onInput={(e) => setNewProduct(e.currentTarget.value)} />
        </div>
        <button type="submit">Add to the list</button>
      </form>
      {listed === false && (
        <p class="note" data-testid="typed-mode">
          This deployment does not list its products (<code>GET /v1/products</code>): the table shows the products added above.
        </p>
      )}
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
      <table data-testid="products">
        <caption class="note">Amounts in minor units; refreshed every {REFRESH_MS / 1000} s{refreshedAt ? ` (last ${time(refreshedAt)})` : ''}.</caption>
        <thead>
          <tr>
            <th>product</th>
            <th>status</th>
            <th>window</th>
            <th class="num">capacity</th>
            <th class="num">held</th>
            <th class="num">committed</th>
            <th class="num">settled</th>
            <th class="num">available</th>
            {role === 'admin' && <th>actions</th>}
          </tr>
        </thead>
        <tbody>
          {pools.map((p) => (
            <tr key={p.productId} data-product={p.productId}>
              <th scope="row">{p.productId}</th>
              <td class={`status-${p.status}`} data-field="status">
                {p.status}
                {p.status === 'paused' && p.pauseReason ? ` (${p.pauseReason})` : ''}
                {p.status === 'paused' && p.resumeAt ? ` until ${time(p.resumeAt)}` : ''}
              </td>
              <td>{windowText(p.opensAt, p.closesAt)}</td>
              {(['capacity', 'held', 'committed', 'settled', 'available'] as const).map((field) => (
                <td key={field} class="num" data-field={field} data-value={String(p[field])}>
                  {amount(p[field])}
                </td>
              ))}
              {role === 'admin' && (
                <td>
                  {p.status === 'open' && pausing !== p.productId && (
                    <button type="button" onClick={() => setPausing(p.productId)}>
                      Pause
                    </button>
                  )}
                  {p.status === 'paused' && (
                    <button type="button" onClick={() => void change(p.productId, { status: 'open', pauseReason: null, resumeAt: null }, `${p.productId} resumed.`)}>
                      Resume
                    </button>
                  )}
                  {pausing === p.productId && (
                    <PauseForm
                      productId={p.productId}
                      onCancel={() => setPausing(null)}
                      onPause={(pauseReason, resumeAt) =>
                        void change(p.productId, { status: 'paused', pauseReason: pauseReason || null, resumeAt }, `${p.productId} paused.`)
                      }
                    />
                  )}
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function PauseForm({ productId, onPause, onCancel }: { productId: string; onPause: (reason: string, resumeAt: string | null) => void; onCancel: () => void }) {
  const [reason, setReason] = useState('');
  const [until, setUntil] = useState('');
  const [invalid, setInvalid] = useState<string | null>(null);
  const id = `pause-${productId}`;
  return (
    <form
      aria-label={`Pause ${productId}`}
      onSubmit={(e) => {
        e.preventDefault();
        let resumeAt: string | null = null;
        if (until.trim()) {
          const at = Date.parse(until.trim());
          if (Number.isNaN(at)) return setInvalid('Reopens at: give an ISO 8601 time, e.g. 2026-06-18T12:00:00Z');
          resumeAt = new Date(at).toISOString();
        }
        onPause(reason.trim(), resumeAt);
      }}
    >
      <div class="field">
        <label for={`${id}-reason`}>Pause reason</label>
        <input id={`${id}-reason`} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
      </div>
      <div class="field">
        <label for={`${id}-until`}>Reopens at (optional, UTC)</label>
        <input id={`${id}-until`} placeholder="2026-06-18T12:00:00Z" value={until} onInput={(e) => setUntil(e.currentTarget.value)} />
      </div>
      {invalid && <p class="error">{invalid}</p>}
      <button type="submit">Confirm pause</button>{' '}
      <button type="button" class="secondary" onClick={onCancel}>
        Cancel
      </button>
    </form>
  );
}

interface Loaded {
  pools: Pool[];
  listed: boolean;
  errors: string[];
  unauthenticated?: boolean;
}

/** Every listed product (a few pages), plus any product added by id that the list did not hold. */
async function loadPools(client: QuotaClient, typed: string[]): Promise<Loaded> {
  const pools: Pool[] = [];
  const errors: string[] = [];
  let listed = true;
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const answer = await client.listProducts(cursor === undefined ? { limit: 500 } : { limit: 500, cursor });
    if (!answer.ok) {
      if (answer.problem.code === 'UNAUTHENTICATED') return { pools, listed, errors, unauthenticated: true };
      listed = false;
      if (answer.problem.code !== 'ROUTE_NOT_FOUND') errors.push(`Listing products: ${answer.problem.detail} (${answer.problem.code})`);
      break;
    }
    pools.push(...answer.value.items);
    if (!answer.value.nextCursor) break;
    cursor = answer.value.nextCursor;
  }
  const missing = typed.filter((id) => !pools.some((p) => p.productId === id));
  const extra = await Promise.all(missing.map((id) => client.getProduct(id)));
  extra.forEach((answer, i) => {
    if (answer.ok) pools.push(answer.value);
    else errors.push(`${missing[i]}: ${answer.problem.detail} (${answer.problem.code})`);
  });
  return { pools, listed, errors };
}
