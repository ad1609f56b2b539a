// The bots overview: one row per bot, live from the WebSocket; commands; a new-bot form.
import { memo } from "preact/compat";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { query } from "../api";
import { BotControls, FieldError, OtherFieldErrors, errorText, useApp } from "../components";
import { fmtDec, fmtMoney } from "../format";
import type { Places } from "../markets";
import { ApiError } from "../api";
import type { AccountView, Bot, BotStatus, Frame } from "../types";

/**
 * Apply one frame to one bot: a status replaces the bot's; an order event bumps its counts.
 * Returns the same object when the frame does not change the bot (so memoized rows skip it).
 */
export function applyFrameToBot(bot: Bot, frame: Frame): Bot {
  if (frame.type === "status") {
    return frame.bot === bot.id ? { ...bot, status: frame.status } : bot;
  }
  if (frame.type === "order") {
    const ev = frame.event;
    if (ev.source !== bot.id || !bot.status) return bot;
    const s: BotStatus = { ...bot.status };
    if (ev.type === "OrderAccepted") {
      s.open_orders += 1;
      s.orders_placed += 1;
    } else if (ev.type === "OrderFilled") {
      if (ev.leaves_qty !== undefined && Number(ev.leaves_qty) === 0) s.open_orders = Math.max(0, s.open_orders - 1);
      s.orders_filled += 1;
    } else if (ev.type === "OrderCanceled") {
      s.open_orders = Math.max(0, s.open_orders - 1);
    } else {
      return bot;
    }
    return { ...bot, status: s };
  }
  return bot;
}

/** The id of the bot a frame is about (status or order frames), else null. */
function frameBot(frame: Frame): string | null {
  if (frame.type === "status") return frame.bot;
  if (frame.type === "order") return frame.event.source;
  return null;
}

/** The table of bots (also the admins' "all bots" page, with `showUser`). */
export function BotsTable(props: { bots: Bot[]; showUser?: boolean; onCommand?: () => void }) {
  const { markets } = useApp();
  return (
    <table data-testid="bots-table">
      <thead>
        <tr>
          <th scope="col">Bot</th>
          {props.showUser && <th scope="col">User</th>}
          <th scope="col">Strategy</th>
          <th scope="col">Symbol</th>
          <th scope="col">State</th>
          <th scope="col">Phase</th>
          <th scope="col" class="num">Position</th>
          <th scope="col" class="num">Avg price</th>
          <th scope="col" class="num">Last price</th>
          <th scope="col" class="num">Unrealized</th>
          <th scope="col" class="num">Realized</th>
          <th scope="col" class="num">Cycles</th>
          <th scope="col" class="num">Open</th>
          <th scope="col">Actions</th>
        </tr>
      </thead>
      <tbody>
        {props.bots.map((b) => (
          <BotRow
            key={b.id}
            bot={b}
            places={markets.places(b.status?.venue ?? b.spec.venue, b.status?.symbol ?? b.spec.symbol)}
            showUser={props.showUser} onCommand={props.onCommand} />
        ))}
      </tbody>
    </table>
  );
}

/** One bot's row; memoized: re-renders only when its `bot` object (or the other props) change. */
const BotRow = memo(function BotRow(props: { bot: Bot; places?: Places; showUser?: boolean; onCommand?: () => void }) {
  const { id, spec, status: s } = props.bot;
  const price = props.places?.price;
  const qty = props.places?.qty;
  return (
    <tr data-testid={`bot-row-${id}`}>
      <td>
        <a href={`#/bots/${encodeURIComponent(id)}`} data-testid={`bot-link-${id}`}>
          {id}
        </a>
      </td>
      {props.showUser && <td>{spec.user}</td>}
      <td>{spec.strategy}</td>
      <td>{s?.symbol ?? spec.symbol ?? "–"}</td>
      <td data-testid={`bot-state-${id}`} class={`state state-${s?.state ?? "stopped"}`}>
        {s?.state ?? "stopped"}
      </td>
      <td data-testid={`bot-phase-${id}`}>{s?.phase || "–"}</td>
      <td class="num" data-testid={`bot-position-${id}`}>{fmtDec(s?.position, qty)}</td>
      <td class="num">{fmtDec(s?.avg_price, price)}</td>
      <td class="num">{fmtDec(s?.last_price, price)}</td>
      <td class={`num ${sign(s?.unrealized_pnl)}`} data-testid={`bot-upnl-${id}`}>{fmtMoney(s?.unrealized_pnl)}</td>
      <td class={`num ${sign(s?.realized_pnl)}`} data-testid={`bot-rpnl-${id}`}>{fmtMoney(s?.realized_pnl)}</td>
      <td class="num">{s?.cycles_completed ?? "–"}</td>
      <td class="num" data-testid={`bot-open-${id}`}>{s?.open_orders ?? 0}</td>
      <td>
        <BotControls id={id} onDone={props.onCommand} />
      </td>
    </tr>
  );
});

/** `pos` / `neg` class of a signed decimal string. */
export function sign(v: string | null | undefined): string {
  if (!v) return "";
  const n = Number(v);
  return n > 0 ? "pos" : n < 0 ? "neg" : "";
}

/**
 * The overview page: the caller's bots, live.
 *
 * Frames are applied to a mutable map (`live`, id → latest Bot) as they arrive; ONE state
 * update per animation frame (or after FLUSH_FALLBACK_MS when the tab is hidden and
 * requestAnimationFrame does not fire) swaps in the changed bots only, so rows of unchanged
 * bots keep their object and their memoized BotRow skips the render.
 */
export function BotsPage() {
  const { api, events } = useApp();
  const [bots, setBots] = useState<Bot[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const me = api.me?.user;
  const live = useRef<Map<string, Bot> | null>(null); // null until the first list
  const dirty = useRef(new Set<string>());
  const timers = useRef<{ raf: number | null; timeout: ReturnType<typeof setTimeout> | null }>({ raf: null, timeout: null });
  const loading = useRef<{ busy: boolean; again: boolean }>({ busy: false, again: false });

  const cancelFlush = () => {
    const t = timers.current;
    if (t.raf !== null) cancelAnimationFrame(t.raf);
    if (t.timeout !== null) clearTimeout(t.timeout);
    t.raf = null;
    t.timeout = null;
  };

  const flush = () => {
    cancelFlush();
    const map = live.current;
    if (!map || dirty.current.size === 0) return;
    const changed = dirty.current;
    dirty.current = new Set();
    setBots((prev) => (prev ? prev.map((b) => (changed.has(b.id) ? (map.get(b.id) ?? b) : b)) : prev));
  };

  const schedule = () => {
    const t = timers.current;
    if (t.raf === null) t.raf = requestAnimationFrame(flush);
    if (t.timeout === null) t.timeout = setTimeout(flush, FLUSH_FALLBACK_MS);
  };

  const load = async () => {
    if (loading.current.busy) {
      loading.current.again = true;
      return;
    }
    loading.current.busy = true;
    try {
      const list = await api.get<Bot[]>(`/api/v1/bots${query({ user: me?.role === "admin" ? me.id : undefined })}`);
      const merged = mergeLive(list, live.current);
      live.current = new Map(merged.map((b) => [b.id, b]));
      dirty.current = new Set();
      cancelFlush();
      setBots(merged);
      setError(null);
    } catch (err) {
      setError(errorText(err));
    } finally {
      loading.current.busy = false;
      if (loading.current.again) {
        loading.current.again = false;
        void load();
      }
    }
  };
  const onCommand = useCallback(() => void load(), []);

  useEffect(() => {
    void load();
    return cancelFlush;
  }, []);

  useEffect(() => {
    if (!events) return;
    return events.on((frame) => {
      const id = frameBot(frame);
      const map = live.current;
      if (id === null || !map) return;
      const bot = map.get(id);
      if (!bot) {
        if (frame.type === "status" && me && frame.user === me.id) void load(); // a bot we have not listed yet
        return;
      }
      const next = applyFrameToBot(bot, frame);
      if (next === bot) return;
      map.set(id, next);
      dirty.current.add(id);
      schedule();
    });
  }, [events]);

  return (
    <section aria-labelledby="bots-title">
      <div class="row between">
        <h1 id="bots-title">Bots</h1>
        <button type="button" data-testid="new-bot" onClick={() => setCreating(!creating)}>
          New bot
        </button>
      </div>
      {creating && (
        <BotForm
          onCreated={() => {
            setCreating(false);
            void load();
          }}
        />
      )}
      {error && <p class="error" role="alert">{error}</p>}
      {bots === null ? <p>Loading…</p> : bots.length === 0 ? <p>No bots yet.</p> : <BotsTable bots={bots} onCommand={onCommand} />}
    </section>
  );
}

/** Flush pending frames after this long even if no animation frame comes (hidden tab), ms. */
const FLUSH_FALLBACK_MS = 100;

/** A fresh list keeps a live status newer than the list's (the list's can be a second old). */
function mergeLive(list: Bot[], prev: Map<string, Bot> | null): Bot[] {
  if (!prev) return list;
  return list.map((b) => {
    const old = prev.get(b.id);
    return b.status || !old ? b : { ...b, status: old.status };
  });
}

const EXAMPLES: Record<string, Record<string, unknown>> = {
  ladder: { total_quote: "1000", order_count: 5, max_drop_pct: "0.3", increment_pct: "20", take_profit_pct: "0.08" },
  martingale: {
    base_quote: "300",
    safety_quote: "200",
    max_safety_orders: 4,
    price_deviation_pct: "0.05",
    step_scale: "1.5",
    volume_scale: "1.5",
    take_profit_pct: "0.05",
  },
  spread: {},
  volume: {},
};

/** The new-bot form: strategy, account, symbol, params (JSON); errors by field. */
function BotForm(props: { onCreated: () => void }) {
  const { api } = useApp();
  const [accounts, setAccounts] = useState<AccountView[]>([]);
  const [strategy, setStrategy] = useState("ladder");
  const [account, setAccount] = useState("");
  const [symbol, setSymbol] = useState("BTCUSDT");
  const [params, setParams] = useState(JSON.stringify(EXAMPLES.ladder, null, 2));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [message, setMessage] = useState<string | null>(null);

  useEffect(() => {
    void api.get<{ accounts: AccountView[] }>(`/api/v1/accounts${query({ user: api.me?.user.role === "admin" ? api.me.user.id : undefined })}`).then(
      (r) => {
        const mine = r.accounts.filter((a) => !a.deleted_ns);
        setAccounts(mine);
        if (mine.length && !account) setAccount(mine[0].id);
      },
      (err) => setMessage(errorText(err)),
    );
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setErrors({});
    setMessage(null);
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(params || "{}") as Record<string, unknown>;
    } catch (err) {
      setErrors({ params: `not JSON: ${errorText(err)}` });
      return;
    }
    try {
      await api.request("POST", "/api/v1/bots", { strategy, account, symbol: symbol || null, params: parsed });
      props.onCreated();
    } catch (err) {
      if (err instanceof ApiError && Object.keys(err.fieldErrors()).length) setErrors(err.fieldErrors());
      setMessage(errorText(err));
    }
  };

  return (
    <form data-testid="bot-form" class="card" onSubmit={(e) => void submit(e)}>
      <label>
        Strategy
        <select
          data-testid="bot-form-strategy"
          value={strategy}
          onChange={(e) => {
            const v = (e.target as HTMLSelectElement).value;
            setStrategy(v);
            setParams(JSON.stringify(EXAMPLES[v] ?? {}, null, 2));
          }}
        >
          {Object.keys(EXAMPLES).map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <FieldError errors={errors} field="strategy" />
      </label>
      <label>
        Account
        <select data-testid="bot-form-account" value={account} onChange={(e) => setAccount((e.target as HTMLSelectElement).value)}>
          {accounts.map((a) => (
            <option key={a.id} value={a.id}>
              {a.id} ({a.venue})
            </option>
          ))}
        </select>
        <FieldError errors={errors} field="account" />
      </label>
      <label>
        Symbol
        <input data-testid="bot-form-symbol" value={symbol} onInput={(e) => setSymbol((e.target as HTMLInputElement).value)} />
        <FieldError errors={errors} field="symbol" />
      </label>
      <label>
        Parameters (JSON)
        <textarea data-testid="bot-form-params" rows={8} value={params} onInput={(e) => setParams((e.target as HTMLTextAreaElement).value)} />
        <FieldError errors={errors} field="params" />
      </label>
      <OtherFieldErrors errors={errors} shown={["strategy", "account", "symbol", "params"]} />
      {message && <p class="error" role="alert">{message}</p>}
      <button type="submit" data-testid="bot-form-submit">
        Create
      </button>
    </form>
  );
}
