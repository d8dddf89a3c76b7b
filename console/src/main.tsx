/**
 * The operators' web console: sign in with an API key, then three views on
 * the published API (through @quota-allocator/client): the customer lookup
 * (first, as the contract asks), products with live pool numbers, and the
 * unknown settlements (admins only). What the key's role may not do is not
 * shown.
 */
import { render } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import { CustomerLookup } from './views/CustomerLookup.js';
import { Products } from './views/Products.js';
import { Settlements } from './views/Settlements.js';
import { SignIn } from './views/SignIn.js';
import {
  forgetSession,
  makeClient,
  saveLanguage,
  saveSession,
  signIn,
  storedKey,
  storedLanguage,
  type Language,
  type Session,
} from './session.js';

type View = 'customers' | 'products' | 'settlements';

const VIEWS: { id: View; label: string; adminOnly: boolean }[] = [
  { id: 'customers', label: 'Customer lookup', adminOnly: false },
  { id: 'products', label: 'Products', adminOnly: false },
  { id: 'settlements', label: 'Unknown settlements', adminOnly: true },
];

function App({ resumed }: { resumed: Session | null }) {
  const [session, setSession] = useState<Session | null>(resumed);
  const [language, setLanguage] = useState<Language>(storedLanguage());
  const [view, setView] = useState<View>('customers');
  const client = useMemo(() => (session ? makeClient(session.apiKey, language) : null), [session, language]);

  if (!session || !client) {
    return (
      <SignIn
        onSignedIn={(s) => {
          saveSession(s);
          setView('customers');
          setSession(s);
        }}
      />
    );
  }
  const signOut = () => {
    forgetSession();
    setSession(null);
  };
  const views = VIEWS.filter((v) => !v.adminOnly || session.role === 'admin');
  return (
    <>
      <header class="bar">
        <h1>quota-allocator console</h1>
        <div class="who">
          <span class={`badge ${session.role}`} data-testid="role">
            signed in as {session.role}
          </span>
          <div class="field">
            <label for="language">Language</label>
            <select
              id="language"
              value={language}
              onChange={(e) => {
                const chosen = (e.currentTarget.value === 'zh-CN' ? 'zh-CN' : 'en') as Language;
                saveLanguage(chosen);
                setLanguage(chosen);
              }}
            >
              <option value="en">English</option>
              <option value="zh-CN">中文</option>
            </select>
          </div>
          <button type="button" class="secondary" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <nav class="tabs" aria-label="Views">
        {views.map((v) => (
          <button
            type="button"
            key={v.id}
            aria-current={view === v.id ? 'page' : undefined}
            onClick={() => setView(v.id)}
          >
            {v.label}
          </button>
        ))}
      </nav>
      {view === 'customers' && (
        <CustomerLookup client={client} role={session.role} language={language} onUnauthenticated={signOut} />
      )}
      {view === 'products' && <Products client={client} role={session.role} onUnauthenticated={signOut} />}
      {view === 'settlements' && session.role === 'admin' && (
        <Settlements client={client} onUnauthenticated={signOut} />
      )}
    </>
  );
}

/** A key kept from earlier in this tab is checked again (it may have been rotated away). */
async function start() {
  const root = document.getElementById('app')!;
  const key = storedKey();
  let resumed: Session | null = null;
  if (key) {
    const again = await signIn(key);
    if (again.ok) resumed = again.session;
    else forgetSession();
  }
  root.textContent = '';
  render(<App resumed={resumed} />, root);
}

void start();
