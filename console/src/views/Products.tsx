/**
 * Products with live pool numbers (`GET /v1/products`), refreshed every
 * couple of seconds, narrowed by a filter. Admins can pause (with a reason
 * and an optional reopening time) and resume.
 */
import type { Pool, QuotaClient } from '@quota-allocator/client';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { amount, time, windowText } from '../format.js';
import { describeError, type Role } from '../session.js';

const REFRESH_MS = 2_000;
const MAX_PAGES = 10;
const PAGE_SIZE = 500;

interface Props {
  client: QuotaClient;
  role: Role;
  onUnauthenticated: () => void;
}

export function Products({ client, role, onUnauthenticated }: Props) {
  const [pools, setPools] = useState<Pool[]>([]);
  const [truncated, setTruncated] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [filter, setFilter] = useState('');
  const [pausing, setPausing] = useState<string | null>(null);
  const [refreshedAt, setRefreshedAt] = useState<string>('');

  const refresh = useCallback(async () => {
    try {
      const result = await loadPools(client);
      if (result.unauthenticated) return onUnauthenticated();
      setTruncated(result.truncated);
      setPools(result.pools);
      setError(result.errors.length ? result.errors.join(' ') : null);
      setRefreshedAt(new Date().toISOString());
    } catch (err) {
      setError(describeError(err));
    }
  }, [client]);

  useEffect(() => {
    void refresh();
    const timer = window.setInterval(() => void refresh(), REFRESH_MS);
    return () => window.clearInterval(timer);
  }, [refresh]);

  const change = async (
    productId: string,
    patch: Parameters<QuotaClient['admin']['patchProduct']>[1],
    done: string,
  ) => {
    const answer = await client.admin
      .patchProduct(productId, patch)
      .catch((err: unknown) => ({ ok: false as const, problem: { detail: describeError(err), code: 'NETWORK' } }));
    if (answer.ok) setMessage(done);
    else setMessage(`${productId}: ${answer.problem.detail} (${answer.problem.code})`);
    setPausing(null);
    await refresh();
  };

  const wanted = filter.trim().toLowerCase();
  const shown = wanted ? pools.filter((p) => p.productId.toLowerCase().includes(wanted)) : pools;
  return (
    <section aria-labelledby="products-heading">
      <h2 id="products-heading">Products</h2>
      <form class="inline" aria-label="Filter products" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="filter-products">Product</label>
          <input id="filter-products" type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
        </div>
      </form>
      {truncated && (
        <p class="note">
          Showing the first {(MAX_PAGES * PAGE_SIZE).toLocaleString('en-US')} products; narrow them with the filter.
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
        <caption class="note">
          Amounts in minor units; refreshed every {REFRESH_MS / 1000} s
          {refreshedAt ? ` (last ${time(refreshedAt)})` : ''}.
        </caption>
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
          {shown.map((p) => (
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
                    <button
                      type="button"
                      onClick={() =>
                        void change(
                          p.productId,
                          { status: 'open', pauseReason: null, resumeAt: null },
                          `${p.productId} resumed.`,
                        )
                      }
                    >
                      Resume
                    </button>
                  )}
                  {pausing === p.productId && (
                    <PauseForm
                      productId={p.productId}
                      onCancel={() => setPausing(null)}
                      onPause={(pauseReason, resumeAt) =>
                        void change(
                          p.productId,
                          { status: 'paused', pauseReason: pauseReason || null, resumeAt },
                          `${p.productId} paused.`,
                        )
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

function PauseForm({
  productId,
  onPause,
  onCancel,
}: {
  productId: string;
  onPause: (reason: string, resumeAt: string | null) => void;
  onCancel: () => void;
}) {
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
        <input
          id={`${id}-until`}
          placeholder="2026-06-18T12:00:00Z"
          value={until}
          onInput={(e) => setUntil(e.currentTarget.value)}
        />
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
  /** More products than the pages read. */
  truncated: boolean;
  errors: string[];
  unauthenticated?: boolean;
}

/** Every product, a few pages of the listing at most. */
async function loadPools(client: QuotaClient): Promise<Loaded> {
  const pools: Pool[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const answer = await client.listProducts(
      cursor === undefined ? { limit: PAGE_SIZE } : { limit: PAGE_SIZE, cursor },
    );
    if (!answer.ok) {
      if (answer.problem.code === 'UNAUTHENTICATED')
        return { pools, truncated: false, errors: [], unauthenticated: true };
      return {
        pools,
        truncated: false,
        errors: [`Listing products: ${answer.problem.detail} (${answer.problem.code})`],
      };
    }
    pools.push(...answer.value.items);
    if (!answer.value.nextCursor) return { pools, truncated: false, errors: [] };
    cursor = answer.value.nextCursor;
  }
  return { pools, truncated: true, errors: [] };
}
