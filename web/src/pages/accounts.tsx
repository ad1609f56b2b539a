// Accounts: list with balances and the latest reconciliation, add one (paper or a ccxt
// venue with its keys, never shown again), the kill switch.
import { useEffect, useState } from "preact/hooks";
import { ApiError, query } from "../api";
import { FieldError, OtherFieldErrors, errorText, useApp } from "../components";
import { fmtDec, fmtTime } from "../format";
import type { AccountDetail, AccountView, KillSwitchState } from "../types";

/** The accounts page. */
export function AccountsPage() {
  const { api } = useApp();
  const [accounts, setAccounts] = useState<AccountView[] | null>(null);
  const [adding, setAdding] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const me = api.me?.user;

  const load = () =>
    api.get<{ accounts: AccountView[] }>(`/api/v1/accounts${query({ user: me?.role === "admin" ? me.id : undefined })}`).then(
      (r) => setAccounts(r.accounts.filter((a) => !a.deleted_ns)),
      (err) => setError(errorText(err)),
    );

  useEffect(() => {
    void load();
  }, []);

  return (
    <section aria-labelledby="accounts-title">
      <div class="row between">
        <h1 id="accounts-title">Accounts</h1>
        <button type="button" data-testid="add-paper" onClick={() => setAdding(!adding)}>
          Add account
        </button>
      </div>
      {adding && (
        <AccountForm
          onAdded={() => {
            setAdding(false);
            void load();
          }}
        />
      )}
      {error && <p class="error" role="alert">{error}</p>}
      {accounts === null ? (
        <p>Loading…</p>
      ) : (
        <table data-testid="accounts-table">
          <thead>
            <tr>
              <th scope="col">Account</th>
              <th scope="col">Venue</th>
              <th scope="col">Balances</th>
              <th scope="col">Reconciliation</th>
              <th scope="col">Kill switch</th>
            </tr>
          </thead>
          <tbody>
            {accounts.map((a) => (
              <AccountRow key={a.id} account={a} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function AccountRow(props: { account: AccountView }) {
  const { api } = useApp();
  const a = props.account;
  const [detail, setDetail] = useState<AccountDetail | null>(null);
  const [kill, setKill] = useState<KillSwitchState | null>(null);
  const [error, setError] = useState<string | null>(null);
  const path = `/api/v1/accounts/${encodeURIComponent(a.id)}`;

  useEffect(() => {
    api.get<AccountDetail>(path).then(setDetail, (err) => setError(errorText(err)));
    api.request<KillSwitchState>("POST", `${path}/killswitch`, { action: "status" }).then(setKill, () => setKill(null));
  }, [a.id]);

  const [busy, setBusy] = useState(false);
  const toggle = async () => {
    setError(null);
    setBusy(true);
    try {
      const action = kill?.engaged ? "release" : "engage";
      setKill(await api.request<KillSwitchState>("POST", `${path}/killswitch`, { action, reason: "from the web page" }));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const recon = detail?.reconciliation;
  return (
    <tr data-testid={`account-row-${a.id}`}>
      <td>
        {a.id}
        {a.live ? " (live)" : " (paper)"}
      </td>
      <td>{a.venue}</td>
      <td data-testid={`balances-${a.id}`}>
        {detail?.balances
          ? detail.balances.map((b) => (
              <div key={b.asset}>
                {b.asset} {fmtDec(b.total)} <small>(free {fmtDec(b.free)})</small>
              </div>
            ))
          : detail?.balances_error ?? (detail ? "–" : "…")}
      </td>
      <td data-testid={`recon-${a.id}`}>{recon ? `${recon.status} at ${fmtTime(recon.ts)}` : "none yet"}</td>
      <td>
        <label>
          <input type="checkbox" data-testid={`killswitch-${a.id}`} checked={kill?.engaged ?? false} disabled={busy} onChange={() => void toggle()} />{" "}
          {/* execution's answer, not the box's click: the state it confirmed */}
          <span data-testid={`killswitch-state-${a.id}`}>{busy ? "…" : kill?.engaged ? `engaged${kill.reason ? `: ${kill.reason}` : ""}` : "off"}</span>
        </label>
        {kill?.global_engaged && <div class="error">global kill switch engaged</div>}
        {error && (
          <div class="error" role="alert">
            {error}
          </div>
        )}
      </td>
    </tr>
  );
}


/** Parse `USDT=10000, BTC=0.5` into a balances object; throws naming the bad part. */
export function parseBalances(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(/[,\s]+/).filter(Boolean)) {
    const m = /^([A-Za-z0-9]+)=(\d+(?:\.\d+)?)$/.exec(part);
    if (!m) throw new Error(`${part}: expected ASSET=amount`);
    out[m[1].toUpperCase()] = m[2];
  }
  return out;
}

function AccountForm(props: { onAdded: () => void }) {
  const { api, markets } = useApp();
  const [id, setId] = useState("");
  const [venue, setVenue] = useState("paper");
  const [feed, setFeed] = useState<string | null>(null); // market data; null: follow the venue
  const dataVenues = markets.venues.length ? markets.venues : ["binance"];
  const marketData = feed ?? (dataVenues.includes(venue) ? venue : dataVenues.includes("binance") ? "binance" : dataVenues[0]);
  const [balances, setBalances] = useState("USDT=10000");
  const [keys, setKeys] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [message, setMessage] = useState<string | null>(null);
  // the venues and, for the one chosen, the credentials it requires (ccxt's requiredCredentials)
  const [venues, setVenues] = useState<string[]>(["paper"]);
  const [keyFields, setKeyFields] = useState<string[]>([]);
  useEffect(() => {
    api.get<{ venues: string[] }>("/api/v1/venues").then((v) => setVenues(v.venues), (err) => setMessage(errorText(err)));
  }, []);
  useEffect(() => {
    setKeyFields([]);
    if (venue === "paper") return;
    api.get<{ credentials: string[] }>(`/api/v1/venues/${encodeURIComponent(venue)}`).then(
      (v) => setKeyFields(v.credentials),
      (err) => setMessage(errorText(err)),
    );
  }, [venue]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setErrors({});
    setMessage(null);
    const body: Record<string, unknown> = { id, venue, market_data: marketData };
    if (venue === "paper") {
      try {
        body.balances = parseBalances(balances);
      } catch (err) {
        setErrors({ balances: errorText(err) });
        return;
      }
    } else {
      body.credentials = Object.fromEntries(keyFields.map((k) => [k, keys[k] ?? ""]));
    }
    try {
      await api.request("POST", "/api/v1/accounts", body);
      setKeys({}); // never kept after saving
      props.onAdded();
    } catch (err) {
      if (err instanceof ApiError) setErrors(err.fieldErrors());
      setMessage(errorText(err));
    }
  };

  return (
    <form data-testid="account-form" class="card" onSubmit={(e) => void submit(e)} autocomplete="off">
      <label>
        Account id
        <input data-testid="account-form-id" value={id} required onInput={(e) => setId((e.target as HTMLInputElement).value)} />
        <FieldError errors={errors} field="id" />
      </label>
      <label>
        Venue
        <select data-testid="account-form-venue" value={venue} onChange={(e) => setVenue((e.target as HTMLSelectElement).value)}>
          {venues.map((v) => (
            <option key={v} value={v}>
              {v}
            </option>
          ))}
        </select>
        <FieldError errors={errors} field="venue" />
      </label>
      <label>
        Market data (the prices its bots trade on)
        <select data-testid="account-form-market-data" value={marketData} onChange={(e) => setFeed((e.target as HTMLSelectElement).value)}>
          {dataVenues.map((v) => (
            <option key={v} value={v}>
              {v}
            </option>
          ))}
        </select>
        <FieldError errors={errors} field="market_data" />
      </label>
      {venue === "paper" ? (
        <label>
          Starting balances
          <input data-testid="account-form-balances" value={balances} onInput={(e) => setBalances((e.target as HTMLInputElement).value)} />
          <FieldError errors={errors} field="balances" />
        </label>
      ) : (
        keyFields.map((k) => (
          <label key={k}>
            {k}
            <input type="password" autocomplete="new-password" data-testid={`account-form-key-${k}`} value={keys[k] ?? ""} onInput={(e) => setKeys({ ...keys, [k]: (e.target as HTMLInputElement).value })} />
            <FieldError errors={errors} field={`credentials.${k}`} />
          </label>
        ))
      )}
      <OtherFieldErrors errors={errors} shown={["id", "venue", "market_data", "balances", ...keyFields.map((k) => `credentials.${k}`)]} />
      {message && <p class="error" role="alert">{message}</p>}
      <button type="submit" data-testid="account-form-submit">
        Add
      </button>
    </form>
  );
}
