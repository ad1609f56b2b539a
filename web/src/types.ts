// Shapes of the gateway's answers (services/gateway/src/tradebus/gateway/routes/*.py).
// Money and quantities are decimal strings; times are integer ns since the epoch.

export type Dec = string;

export interface Me {
  id: string;
  role: "admin" | "user";
}

export interface BotStatus {
  bot: string;
  user: string;
  account: string;
  strategy: string;
  venue: string;
  symbol: string;
  state: string;
  phase: string;
  run: number;
  cycle: number;
  orders_placed: number;
  orders_filled: number;
  open_orders: number;
  filled_quote: Dec;
  filled_qty: Dec;
  avg_price: Dec | null;
  position: Dec;
  last_price: Dec | null;
  position_value: Dec;
  unrealized_pnl: Dec;
  unrealized_pct: Dec;
  take_profit_progress_pct: Dec;
  cycles_completed: number;
  realized_pnl: Dec;
  error: string | null;
  host: string | null;
  /** Market time (ns) of the latest tick behind last_price; null before the first. */
  price_ts?: number | null;
  details: Record<string, string | number | boolean | null>;
  /** Position check: last finding or correction; held - position; above its threshold. */
  position_check?: string | null;
  position_difference?: Dec | null;
  position_mismatch?: boolean;
  /** A position held at an average price of 0 (set it: POST /api/v1/bots/{id}/average). */
  average_missing?: boolean;
  /** The bot's execute_trades is false: its orders go to a simulated venue, not its account. */
  dry_run?: boolean;
}

export interface BotSpec {
  id: string;
  user: string;
  account: string;
  strategy: string;
  venue: string;
  symbol: string | null;
  group: string;
  params: Record<string, unknown>;
  enabled: boolean;
  managed_by: string;
  /** false: a dry run (README, "Dry run"). */
  execute_trades?: boolean;
  [key: string]: unknown;
}

export interface Bot {
  id: string;
  spec: BotSpec;
  revision: number;
  status: BotStatus | null;
}

export interface CommandResult {
  bot: string;
  command: string;
  ok: boolean;
  message: string;
  status: BotStatus | null;
  host: string;
}

export interface OrderRecord {
  user: string;
  intent_id: string;
  bot: string;
  account: string;
  venue: string;
  symbol: string;
  side: string;
  type: string;
  price: Dec | null;
  qty: Dec;
  filled_qty: Dec;
  avg_fill_price: Dec | null;
  status: string;
  reason: string | null;
  created_ns: number;
  updated_ns: number;
}

export interface FillRecord {
  user: string;
  trade_id: string;
  intent_id: string;
  bot: string;
  account: string;
  venue: string;
  symbol: string;
  side: string;
  price: Dec;
  qty: Dec;
  notional: Dec;
  fee: Dec;
  fee_asset: string;
  liquidity: string;
  ts_event: number;
  recorded_ns: number;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface PnlPoint {
  ts_event: number;
  symbol: string;
  side: string;
  price: Dec;
  qty: Dec;
  position: Dec;
  avg_price: Dec | null;
  realized_pnl: Dec;
  fees: Dec;
  unrealized_pnl: Dec;
  pnl: Dec;
}

export interface PnlSeries {
  bot: string;
  points: PnlPoint[];
}

export interface AccountView {
  id: string;
  user: string;
  venue: string;
  managed_by: "api" | "file";
  live: boolean;
  created_ns: number;
  market_data?: string | null;
  market_kind?: string | null;
  balances?: Record<string, Dec> | null;
  sealed_credentials: boolean;
  deleted_ns?: number | null;
}

export interface AssetBalance {
  asset: string;
  total: Dec;
  free: Dec;
  locked: Dec;
}

export interface ReconView {
  status: string;
  ledger_watermark: number;
  ts: number;
  rows: Record<string, unknown>[];
}

export interface AccountDetail {
  account: AccountView;
  balances: AssetBalance[] | null;
  ledger_watermark: number | null;
  balances_error: string | null;
  reconciliation: ReconView | null;
}

export interface KillSwitchState {
  account: string;
  engaged: boolean;
  reason: string | null;
  global_engaged: boolean;
  global_reason: string | null;
  canceled: number;
}

export interface UserView {
  id: string;
  role: string;
  disabled: boolean;
  nats_account: string | null;
  created_by: string;
  created_ns: number;
  updated_ns: number;
  disabled_ns: number | null;
}

export interface AuditRow {
  id: number;
  event_id: string;
  ts: number;
  actor: string;
  source: string;
  action: string;
  target: string;
  user: string | null;
  before: unknown;
  after: unknown;
  details: unknown;
}

/** An order event of the WebSocket (`event.type` is the bus message's class name). */
export interface OrderEvent {
  type: "OrderAccepted" | "OrderRejected" | "OrderFilled" | "OrderCanceled" | "CancelRejected" | string;
  intent_id?: string | null;
  user: string;
  source: string;
  account?: string | null;
  symbol?: string;
  side?: string;
  price?: Dec | null;
  qty?: Dec;
  trade_id?: string;
  fee?: Dec;
  fee_asset?: string;
  liquidity?: string;
  cum_qty?: Dec;
  leaves_qty?: Dec;
  ts_event: number;
  [key: string]: unknown;
}

export type Frame =
  | { type: "ready"; user: string; watching: string; queue_limit: number }
  | { type: "status"; bot: string; user: string; ts_event: number; status: BotStatus | null }
  | { type: "order"; seq: number; subject: string; event: OrderEvent }
  | { type: "caught_up"; seq: number; replayed: number; gap: boolean }
  | { type: "renewed"; expires: number };

/** One market of `GET /api/v1/markets` (routes/markets.py): increments as decimal strings. */
export interface MarketInfo {
  venue: string;
  symbol: string;
  base: string;
  quote: string;
  kind: "spot" | "perpetual";
  tick_size: Dec;
  step_size: Dec;
  min_notional: Dec;
  min_qty: Dec;
}

/** `GET /api/v1/markets/{venue}/{symbol}/prices`: recent prices, oldest first (ts: market ns). */
export interface PriceTrail {
  venue: string;
  symbol: string;
  points: { ts: number; price: Dec }[];
}
