import { useEffect, useRef, useState } from 'preact/hooks';
import { signIn, type Session } from '../session.js';

export function SignIn({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  // Keyboard users start typing the key at once.
  useEffect(() => input.current?.focus(), []);
  return (
    <section class="signin card">
      <h1>quota-allocator console</h1>
      <p class="note">
        Sign in with an API key. It is kept in this tab only (session storage) and sent only to this service.
      </p>
      <form
        aria-label="Sign in"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          const result = await signIn(key);
          setBusy(false);
          if (result.ok) onSignedIn(result.session);
          else setError(result.message);
        }}
      >
        <div class="field">
          <label for="api-key">API key</label>
          <input
            ref={input}
            id="api-key"
            type="password"
            autocomplete="off"
            required
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
          />
        </div>
        <p>
          <button type="submit" disabled={busy}>
            Sign in
          </button>
        </p>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </section>
  );
}
