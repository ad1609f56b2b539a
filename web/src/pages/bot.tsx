// One bot: state and commands, price and P&L charts, fills and orders (paged, CSV),
// parameters editor, strategy-specific status. Built from history, then live frames.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, query } from "../api";
import { PnlChart, PriceChart, type ChartFill, type ChartOrder } from "../charts";
import { BotControls, FieldError, OtherFieldErrors, Pager, errorText, useApp } from "../components";
import { Precision, fmtDec, fmtMoney, fmtPct, fmtTime, mulDec } from "../format";
import type { Bot, FillRecord, OrderRecord, Page, PnlSeries, PnlPoint, PriceTrail } from "../types";
import { sign } from "./bots";

const PAGE = 50;
const RESTING = new Set(["pending", "accepted"]);

/** The bot page of `id`. */
export function BotPage(props: { id: string }) {
  const { api, events, markets } = useApp();
  const id = props.id;
  const [bot, setBot] = useState<Bot | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [fills, setFills] = useState<FillRecord[]>([]);
  const [orders, setOrders] = useState<OrderRecord[]>([]);
  const [pnl, setPnl] = useState<PnlPoint[]>([]);
  const [prices, setPrices] = useState<Map<number, number>>(new Map());
  const [tick, setTick] = useState(0); // bumps to reload the tables' first pages
  const precision = useRef(new Precision());
  const enc = encodeURIComponent(id);

  const loadBot = () =>
    api.get<Bot>(`/api/v1/bots/${enc}`).then(
      (b) => {
        setBot(b);
        setError(null);
        const st = b.status;
        if (st?.last_price && st.price_ts) {
          const at = st.price_ts;
          setPrices((prev) => new Map(prev).set(at, Number(st.last_price)));
        }
      },
      (err) => setError(errorText(err)),
    );

  const loadChartData = async () => {
    try {
      const [f, o, series] = await Promise.all([
        api.get<Page<FillRecord>>(`/api/v1/history/fills${query({ bot: id, limit: 1000 })}`),
        api.get<Page<OrderRecord>>(`/api/v1/history/orders${query({ bot: id, limit: 1000 })}`),
        api.get<PnlSeries>(`/api/v1/pnl/bots/${enc}/series`),
      ]);
      for (const x of f.items) precision.current.see(x.price, x.qty);
      for (const x of o.items) precision.current.see(x.price, x.qty);
      setFills(f.items);
      setOrders(o.items.filter((x) => RESTING.has(x.status)));
      setPnl(series.points);
      setPrices((prev) => {
        const next = new Map(prev);
        for (const x of f.items) next.set(x.ts_event, Number(x.price));
        return next;
      });
    } catch (err) {
      setError(errorText(err));
    }
  };

  useEffect(() => {
    void loadBot();
    void loadChartData();
  }, [id]);

  // the market's recent prices, as its bots reported them (the chart's line before now)
  const venue = bot?.status?.venue ?? bot?.spec.venue;
  const symbol = bot?.status?.symbol ?? bot?.spec.symbol;
  useEffect(() => {
    if (!venue || !symbol || !markets.places(venue, symbol)) return; // e.g. a spread's pair
    api.get<PriceTrail>(`/api/v1/markets/${encodeURIComponent(venue)}/${encodeURIComponent(symbol)}/prices`).then(
      (trail) =>
        setPrices((prev) => {
          const next = new Map(prev);
          for (const p of trail.points) next.set(p.ts, Number(p.price));
          return next;
        }),
      () => undefined, // the chart keeps the fills and the live prices
    );
  }, [venue, symbol, markets]);

  // live frames: status replaces the bot's; order events move the chart and the tables
  useEffect(() => {
    if (!events) return;
    let refetch: number | undefined;
    const later = () => {
      window.clearTimeout(refetch);
      refetch = window.setTimeout(() => {
        void loadChartData();
        setTick((t) => t + 1);
      }, 700);
    };
    const off = events.on((frame) => {
      if (frame.type === "status" && frame.bot === id) {
        const st = frame.status;
        setBot((b) => (b ? { ...b, status: st } : b));
        if (st?.last_price && st.price_ts) {
          // plotted at the tick's market time (as fills are), not when the host sent it
          precision.current.see(st.last_price);
          const price = Number(st.last_price);
          const at = st.price_ts;
          setPrices((prev) => new Map(prev).set(at, price));
        }
      } else if (frame.type === "order" && frame.event.source === id) {
        const ev = frame.event;
        if (ev.type === "OrderFilled" && ev.price && ev.qty) {
          precision.current.see(ev.price, ev.qty);
          const fill: FillRecord = {
            user: ev.user,
            trade_id: ev.trade_id ?? `${frame.seq}`,
            intent_id: ev.intent_id ?? "",
            bot: id,
            account: ev.account ?? "",
            venue: "",
            symbol: ev.symbol ?? "",
            side: ev.side ?? "",
            price: ev.price,
            qty: ev.qty,
            notional: mulDec(ev.price, ev.qty),
            fee: ev.fee ?? "0",
            fee_asset: ev.fee_asset ?? "",
            liquidity: ev.liquidity ?? "",
            ts_event: ev.ts_event,
            recorded_ns: ev.ts_event,
          };
          setFills((prev) => (prev.some((f) => f.trade_id === fill.trade_id) ? prev : [fill, ...prev]));
          setPrices((prev) => new Map(prev).set(ev.ts_event, Number(ev.price)));
          if (ev.leaves_qty !== undefined && Number(ev.leaves_qty) === 0) {
            setOrders((prev) => prev.filter((o) => o.intent_id !== ev.intent_id));
          }
        } else if (ev.type === "OrderAccepted" && ev.price && ev.intent_id) {
          const order: OrderRecord = {
            user: ev.user,
            intent_id: ev.intent_id,
            bot: id,
            account: ev.account ?? "",
            venue: "",
            symbol: ev.symbol ?? "",
            side: ev.side ?? "",
            type: String(ev.order_type ?? "limit"),
            price: ev.price,
            qty: ev.qty ?? "0",
            filled_qty: "0",
            avg_fill_price: null,
            status: "accepted",
            reason: null,
            created_ns: ev.ts_event,
            updated_ns: ev.ts_event,
          };
          setOrders((prev) => [order, ...prev.filter((o) => o.intent_id !== order.intent_id)]);
        } else if (ev.type === "OrderCanceled" || ev.type === "OrderRejected") {
          setOrders((prev) => prev.filter((o) => o.intent_id !== ev.intent_id));
        }
        later();
      }
    });
    return () => {
      off();
      window.clearTimeout(refetch);
    };
  }, [events, id]);

  const chartFills: ChartFill[] = useMemo(
    () => fills.map((f) => ({ id: f.trade_id, ts: f.ts_event, side: f.side, price: f.price, qty: f.qty })),
    [fills],
  );
  const chartOrders: ChartOrder[] = useMemo(
    () => orders.filter((o) => o.price).map((o) => ({ id: o.intent_id, side: o.side, price: o.price as string, qty: o.qty })),
    [orders],
  );

  if (error && !bot) return <p class="error" role="alert">{error}</p>;
  if (!bot) return <p>Loading…</p>;
  const s = bot.status;
  // the market's tick and step sizes; the digits seen for a market the gateway does not list
  const market = markets.places(s?.venue ?? bot.spec.venue, s?.symbol ?? bot.spec.symbol);
  const places = market?.price ?? (precision.current.price || undefined);
  const qtyPlaces = market?.qty ?? (precision.current.qty || undefined);

  return (
    <section data-testid="bot-page" aria-labelledby="bot-title">
      <div class="row between">
        <h1 id="bot-title">{id}</h1>
        <BotControls id={id} onDone={(r) => r.status && setBot({ ...bot, status: r.status })} />
      </div>
      <dl class="facts">
        <dt>Strategy</dt>
        <dd>{bot.spec.strategy}</dd>
        <dt>Market</dt>
        <dd>
          {bot.spec.venue} {s?.symbol ?? bot.spec.symbol ?? ""}
        </dd>
        <dt>Account</dt>
        <dd>{bot.spec.account}</dd>
        <dt>Orders</dt>
        <dd data-testid={`bot-mode-${id}`}>
          {bot.spec.execute_trades === false
            ? `dry run: simulated, never sent to the account (${s?.details?.dry_run_intents ?? 0} intents, ${s?.details?.dry_run_fills ?? 0} fills)`
            : "sent to the account"}
        </dd>
        <dt>State</dt>
        <dd data-testid={`bot-state-${id}`} class={`state state-${s?.state ?? "stopped"}`}>
          {s?.state ?? "stopped"}
        </dd>
        <dt>Phase</dt>
        <dd data-testid={`bot-phase-${id}`}>{s?.phase || "–"}</dd>
        <dt>Position</dt>
        <dd data-testid={`bot-position-${id}`}>{fmtDec(s?.position, qtyPlaces)}</dd>
        <dt>Avg / last price</dt>
        <dd>
          {fmtDec(s?.avg_price, places)} / {fmtDec(s?.last_price, places)}
        </dd>
        <dt>Unrealized</dt>
        <dd class={sign(s?.unrealized_pnl)} data-testid={`bot-upnl-${id}`}>
          {fmtMoney(s?.unrealized_pnl)} ({fmtPct(s?.unrealized_pct)})
        </dd>
        <dt>Realized</dt>
        <dd class={sign(s?.realized_pnl)} data-testid={`bot-rpnl-${id}`}>
          {fmtMoney(s?.realized_pnl)}
        </dd>
        <dt>Open orders</dt>
        <dd data-testid={`bot-open-${id}`}>{s?.open_orders ?? 0}</dd>
      </dl>
      {s?.error && <p class="error" role="alert">{s.error}</p>}
      {error && <p class="error" role="alert">{error}</p>}

      <h2>Price</h2>
      <PriceChart prices={prices} fills={chartFills} orders={chartOrders} pricePlaces={places ?? precision.current.price} />
      <h2>P&amp;L</h2>
      <PnlChart points={pnl} />

      <StrategyStatus bot={bot} pricePlaces={places} />
      <ParamsEditor bot={bot} onSaved={setBot} />

      <h2>Fills</h2>
      <HistoryTable<FillRecord>
        kind="fills"
        bot={id}
        reload={tick}
        live={fills}
        head={["Time", "Side", "Price", "Qty", "Fee", "Liquidity"]}
        row={(f) => (
          <tr data-testid="fill-row" key={f.trade_id}>
            <td>{fmtTime(f.ts_event)}</td>
            <td class={f.side}>{f.side}</td>
            <td class="num">{fmtDec(f.price, places)}</td>
            <td class="num">{fmtDec(f.qty, qtyPlaces)}</td>
            <td class="num">
              {fmtDec(f.fee)} {f.fee_asset}
            </td>
            <td>{f.liquidity}</td>
          </tr>
        )}
        keyOf={(f) => f.trade_id}
      />
      <h2>Orders</h2>
      <HistoryTable<OrderRecord>
        kind="orders"
        bot={id}
        reload={tick}
        live={orders}
        head={["Created", "Side", "Type", "Price", "Qty", "Filled", "Status"]}
        row={(o) => (
          <tr data-testid="order-row" key={o.intent_id}>
            <td>{fmtTime(o.created_ns)}</td>
            <td class={o.side}>{o.side}</td>
            <td>{o.type}</td>
            <td class="num">{fmtDec(o.price, places)}</td>
            <td class="num">{fmtDec(o.qty, qtyPlaces)}</td>
            <td class="num">{fmtDec(o.filled_qty, qtyPlaces)}</td>
            <td title={o.reason ?? undefined}>{o.status}</td>
          </tr>
        )}
        keyOf={(o) => o.intent_id}
      />
    </section>
  );
}

/**
 * A history table (`fills` or `orders`) paged with the API's cursor; on its first page,
 * rows that arrived live (`live`) show at once, before the ledger has them.
 */
function HistoryTable<T>(props: {
  kind: "fills" | "orders";
  bot: string;
  reload: number;
  live: T[];
  head: string[];
  row: (item: T) => preact.JSX.Element;
  keyOf: (item: T) => string;
}) {
  const { api } = useApp();
  const [cursors, setCursors] = useState<(string | null)[]>([null]); // cursor of each page seen
  const [page, setPage] = useState<Page<T> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const cursor = cursors[cursors.length - 1];
  const path = `/api/v1/history/${props.kind}`;

  useEffect(() => {
    api.get<Page<T>>(`${path}${query({ bot: props.bot, limit: PAGE, cursor })}`).then(
      (p) => {
        setPage(p);
        setError(null);
      },
      (err) => setError(errorText(err)),
    );
  }, [props.bot, cursor, cursors.length === 1 ? props.reload : 0]);

  let items = page?.items ?? [];
  if (cursors.length === 1 && props.kind === "fills") {
    const known = new Set(items.map(props.keyOf));
    const fresh = props.live.filter((x) => !known.has(props.keyOf(x)));
    items = [...fresh, ...items].slice(0, PAGE);
  }

  const csv = async (e: Event) => {
    e.preventDefault();
    try {
      await api.download(`${path}${query({ bot: props.bot, format: "csv" })}`, `${props.bot}-${props.kind}.csv`);
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <div>
      <div class="row">
        <a href={`${path}${query({ bot: props.bot, format: "csv" })}`} data-testid={`csv-${props.kind}`} onClick={(e) => void csv(e)}>
          Download CSV
        </a>
        <Pager cursors={cursors} setCursors={setCursors} next={page?.next_cursor} />
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      <table data-testid={`${props.kind}-table`}>
        <thead>
          <tr>
            {props.head.map((h) => (
              <th scope="col" key={h}>
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{items.map(props.row)}</tbody>
      </table>
    </div>
  );
}

const LABELS: Record<string, string> = {
  take_profit_progress_pct: "Take-profit progress",
  cycle: "Cycle",
  cycles_completed: "Cycles completed",
  orders_placed: "Orders placed",
  orders_filled: "Orders filled",
  filled_quote: "Filled (quote)",
  filled_qty: "Filled (base)",
  position_value: "Position value",
};

/** A `details` key for people: "take_profit_distance_pct" -> "Take profit distance (%)". */
function detailLabel(key: string): string {
  const words = key.replace(/_pct$/, "").replace(/_/g, " ");
  return `${words.charAt(0).toUpperCase()}${words.slice(1)}${key.endsWith("_pct") ? " (%)" : ""}`;
}

/** A `details` value: prices to the market's tick, percentages to 2 places, decimals trimmed. */
function detailText(key: string, value: string | number | boolean | null, pricePlaces?: number): string {
  if (value === null) return "–";
  if (typeof value !== "string") return String(value);
  if (key.endsWith("_pct")) return fmtDec(value, 2);
  if (key.endsWith("_price")) return fmtDec(value, pricePlaces);
  return fmtDec(value);
}

/** The strategy's own status: ladder levels, safety orders, spread legs, volume progress (`status.details`). */
function StrategyStatus(props: { bot: Bot; pricePlaces?: number }) {
  const s = props.bot.status;
  return (
    <section data-testid="strategy-status" aria-labelledby="strategy-status-title">
      <h2 id="strategy-status-title">{props.bot.spec.strategy} status</h2>
      {!s ? (
        <p>Not running.</p>
      ) : (
        <dl class="facts">
          <dt>{LABELS.take_profit_progress_pct}</dt>
          <dd>{fmtPct(s.take_profit_progress_pct)}</dd>
          <dt>{LABELS.cycle}</dt>
          <dd>{s.cycle}</dd>
          <dt>{LABELS.cycles_completed}</dt>
          <dd>{s.cycles_completed}</dd>
          <dt>{LABELS.orders_placed}</dt>
          <dd>{s.orders_placed}</dd>
          <dt>{LABELS.orders_filled}</dt>
          <dd>{s.orders_filled}</dd>
          <dt>{LABELS.filled_quote}</dt>
          <dd>{fmtMoney(s.filled_quote)}</dd>
          <dt>{LABELS.position_value}</dt>
          <dd>{fmtMoney(s.position_value)}</dd>
          {Object.entries(s.details).map(([k, v]) => [
            <dt key={`${k}-k`}>{detailLabel(k)}</dt>,
            <dd key={`${k}-v`} data-testid={`detail-${k}`}>
              {detailText(k, v, props.pricePlaces)}
            </dd>,
          ])}
        </dl>
      )}
    </section>
  );
}

/** The parameters editor: one input per parameter, PUT with the revision; errors by field. */
function ParamsEditor(props: { bot: Bot; onSaved: (b: Bot) => void }) {
  const { api } = useApp();
  const original = props.bot.spec.params;
  const [values, setValues] = useState<Record<string, string>>(() => texts(original));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [message, setMessage] = useState<string | null>(null);
  const editable = props.bot.spec.managed_by === "api";

  useEffect(() => setValues(texts(props.bot.spec.params)), [props.bot.revision]);

  const save = async (e: Event) => {
    e.preventDefault();
    setErrors({});
    setMessage(null);
    const params: Record<string, unknown> = {};
    for (const [k, text] of Object.entries(values)) {
      const before = original[k];
      if (typeof before === "number") params[k] = text.trim() === "" ? null : Number(text);
      else if (typeof before === "boolean") params[k] = text.trim() === "true";
      else if (before !== null && typeof before === "object") {
        try {
          params[k] = JSON.parse(text);
        } catch {
          setErrors({ [`params.${k}`]: "not JSON" });
          return;
        }
      } else params[k] = text;
    }
    try {
      const saved = await api.request<Bot>("PUT", `/api/v1/bots/${encodeURIComponent(props.bot.id)}`, {
        params,
        revision: props.bot.revision,
      });
      props.onSaved({ ...saved, status: saved.status ?? props.bot.status });
      setMessage("Saved.");
    } catch (err) {
      if (err instanceof ApiError) setErrors(err.fieldErrors());
      setMessage(errorText(err));
    }
  };

  const keys = Object.keys(values);
  return (
    <form data-testid="params-editor" class="card" onSubmit={(e) => void save(e)} aria-labelledby="params-title">
      <h2 id="params-title">Parameters (revision {props.bot.revision})</h2>
      {!editable && <p>This bot comes from the bot file: change it there.</p>}
      <div class="grid">
        {keys.map((k) => (
          <label key={k}>
            {k}
            <input
              name={k}
              value={values[k]}
              disabled={!editable}
              onInput={(e) => setValues({ ...values, [k]: (e.target as HTMLInputElement).value })}
            />
            <FieldError errors={errors} field={`params.${k}`} />
          </label>
        ))}
      </div>
      <OtherFieldErrors errors={errors} shown={keys.map((k) => `params.${k}`)} />
      {message && (
        <p class={Object.keys(errors).length || message !== "Saved." ? "error" : "ok"} role="status">
          {message}
        </p>
      )}
      <button type="submit" data-testid="params-save" disabled={!editable}>
        Save parameters
      </button>
    </form>
  );
}

function texts(params: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    out[k] = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  return out;
}
