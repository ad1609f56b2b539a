// The sign-in page: after signing in, go to the route wanted (`#/login?next=/bots/x`).
import { useState } from "preact/hooks";
import { errorText, useApp } from "../components";

/** The login form; `next` is the route to open after signing in. */
export function LoginPage(props: { next: string }) {
  const { api } = useApp();
  const [user, setUser] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api.login(user, password);
      location.hash = `#${props.next.startsWith("/") && !props.next.startsWith("/login") ? props.next : "/bots"}`;
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="login" aria-labelledby="login-title">
      <h1 id="login-title">Sign in to tradebus</h1>
      <form class="card" onSubmit={(e) => void submit(e)}>
        <label>
          User
          <input data-testid="login-user" autocomplete="username" value={user} required onInput={(e) => setUser((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Password
          <input
            data-testid="login-password"
            type="password"
            autocomplete="current-password"
            value={password}
            required
            onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
          />
        </label>
        {error && (
          <p class="error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <button type="submit" data-testid="login-submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </section>
  );
}
