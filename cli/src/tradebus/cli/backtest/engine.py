"""The backtest engine: one strategy core against the paper venue, no NATS, no database.

A run is the live path with the bus and the ledger taken out. The core is
built by :func:`tradebus.strategy.registry.build_bot` (the very code a
strategy host runs); the orders go to one :class:`PaperExchange` account (the
very fill model execution uses, shared/STRATEGIES.md "Paper fill model").
Per market event, exactly rule 5:

1. the event fills the live orders (``PaperExchange.on_trade``; a quote only
   makes due orders live, ``on_quote``), in placement order;
2. the bot hears each fill as :class:`OrderFilled` (``cum_qty``/``leaves_qty``
   as execution's ``events.py`` computes them);
3. the bot sees the event itself (``on_trade``/``on_quote``).

Intents the bot returns are handled at once, in order, as execution would:
a place is checked (:func:`~tradebus.execution.risk.check_order_shape`), a
``clamp_to_free`` spot sell sized by the free base balance
(:func:`~tradebus.execution.sizing.clamp_to_free`), then placed with
``trigger_ts`` = the event's ``ts_recv`` (live from the next event, rule 1);
the bot hears :class:`OrderAccepted` or :class:`OrderRejected` right away,
and :class:`OrderCanceled` / :class:`CancelRejected` for cancels. Intents it
returns in answer are queued behind the current ones (first in, first out),
which is the order the bus would deliver them in. A core that overrides
``on_balances`` gets the account's balances before the first event and then
every :data:`BALANCES_INTERVAL_NS` of market time, like the host's poll.

Not simulated: the account's risk limits and kill switch (no accounts
file), stale-tick filtering (recorded data), and the latency between the
services (the bot always hears of its orders before the next event).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec

from tradebus.common.markets import Market, MarketCatalog, MarketKind
from tradebus.common.messages import (
    AccountBalances,
    CancelAll,
    CancelOrder,
    CancelRejected,
    Intent,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    QuoteTick,
    TradeTick,
)
from tradebus.common.money import ONE, ZERO
from tradebus.common.positions import Position
from tradebus.execution.accounts import trades_perpetual
from tradebus.execution.paper import PaperExchange
from tradebus.execution.risk import Refusal, check_order_shape
from tradebus.execution.sizing import clamp_to_free, wants_free_balance
from tradebus.execution.venue import VenueFill, VenueOrder, VenueRejected
from tradebus.strategy.core import BotBase, Strategy
from tradebus.strategy.registry import (
    STRATEGIES,
    BotSpec,
    build_bot,
    spec_problems,
)

VENUE = "backtest"
"""The venue name of the markets, the bot spec and the events of a backtest."""
ACCOUNT = "backtest"
USER = "backtest"
BOT_ID = "bt"
BALANCES_INTERVAL_NS = 5_000_000_000
"""How often (market time) a core that wants balances is given them (the host polls too)."""
MAX_SAMPLES = 4096
"""Chart samples kept (the stride doubles when full, so memory stays flat)."""
KNOWN_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "TRY", "BTC", "ETH")
"""Quote assets recognised at the end of a symbol when ``base``/``quote`` are not given."""

MARKET_FIELDS = ("tick_size", "step_size", "min_qty", "min_notional", "base", "quote", "kind")
SETUP_FIELDS = {
    "symbol",
    "maker_fee_bps",
    "taker_fee_bps",
    "balances",
    "market_kind",
    "leverage",
    "markets",
    *MARKET_FIELDS,
}
"""Keys of the params file that are not strategy parameters."""


class SetupError(ValueError):
    """The params file is invalid; ``problems`` are ``(field path, message)``."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


class BacktestError(RuntimeError):
    """The run could not go on (the core raised); names the event it was at."""


@dataclass(frozen=True)
class Setup:
    """Everything a run needs besides its events: bot spec, markets, account."""

    spec: BotSpec
    catalog: MarketCatalog
    symbols: tuple[str, ...]
    balances: dict[str, Decimal]
    maker_fee_bps: Decimal
    taker_fee_bps: Decimal
    market_kind: MarketKind = "spot"
    leverage: Decimal = ONE

    @property
    def markets(self) -> tuple[Market, ...]:
        """The bot's markets, the primary one first."""
        return tuple(self.catalog.get(VENUE, s) for s in self.symbols)


def split_symbol(symbol: str) -> tuple[str, str] | None:
    """``BTCUSDT -> (BTC, USDT)`` by the known quote assets; None if none matches."""
    for quote in KNOWN_QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return None


def _decimal(value: Any, path: str, problems: list[tuple[str, str]], positive: bool) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        problems.append((path, f"expected a number, got {value!r}"))
        return ZERO
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        problems.append((path, f"expected a number, got {value!r}"))
        return ZERO
    if not out.is_finite() or out < 0 or (positive and out == 0):
        problems.append((path, "must be > 0" if positive else "must be >= 0"))
    return out


def _market(
    symbol: str, raw: Mapping[str, Any], where: str, problems: list[tuple[str, str]]
) -> Market | None:
    """The market ``symbol`` from the file's (possibly per-symbol) fields."""
    found = len(problems)
    sizes: dict[str, Decimal] = {}
    for name in ("tick_size", "step_size"):
        if raw.get(name) is None:
            problems.append((f"{where}{name}", "required"))
        else:
            sizes[name] = _decimal(raw[name], f"{where}{name}", problems, positive=True)
    for name in ("min_qty", "min_notional"):
        if raw.get(name) is not None:
            sizes[name] = _decimal(raw[name], f"{where}{name}", problems, positive=False)
    base, quote = raw.get("base"), raw.get("quote")
    if base is None or quote is None:
        guess = split_symbol(symbol)
        if guess is None:
            problems.append(
                (f"{where}quote", f"cannot tell the assets of {symbol!r}: set base/quote")
            )
            return None
        base, quote = base or guess[0], quote or guess[1]
    kind = raw.get("kind", "spot")
    if kind not in ("spot", "perpetual"):
        problems.append((f"{where}kind", "must be spot or perpetual"))
    if len(problems) > found:
        return None
    return Market(symbol=symbol, base=str(base), quote=str(quote), kind=kind, **sizes)


def make_setup(strategy: str, raw: Mapping[str, Any]) -> Setup:
    """Build the bot spec, markets and account of a run from a params file's mapping.

    ``raw`` holds the strategy's parameters plus ``symbol`` (single-market
    strategies), ``tick_size``, ``step_size``, optional ``min_qty``,
    ``min_notional``, ``base``/``quote`` (else guessed from the symbol),
    ``maker_fee_bps``, ``taker_fee_bps``, ``balances`` ({asset: amount}),
    ``market_kind`` (``spot``; ``perpetual`` by default for ``spread``),
    ``leverage``, and ``markets`` ({symbol: {tick_size: ..., ...}}) for
    per-symbol market fields (a spread's two legs).

    Raises
    ------
    SetupError
        Naming every bad field (strategy parameters by their own name, with
        the strategy's validation messages).
    """
    if strategy not in STRATEGIES:
        known = ", ".join(sorted(STRATEGIES))
        raise SetupError([("strategy", f"unknown strategy {strategy!r} (known: {known})")])
    problems: list[tuple[str, str]] = []
    params = {k: v for k, v in raw.items() if k not in SETUP_FIELDS}
    per_symbol = raw.get("markets") or {}
    if not isinstance(per_symbol, dict):
        problems.append(("markets", "expected a mapping of symbol -> market fields"))
        per_symbol = {}
    symbol = raw.get("symbol")
    if symbol is not None and not isinstance(symbol, str):
        problems.append(("symbol", f"expected a symbol, got {symbol!r}"))
        symbol = None
    spec = BotSpec(
        id=BOT_ID,
        user=USER,
        account=ACCOUNT,
        strategy=strategy,
        venue=VENUE,
        symbol=symbol,
        params=_normalize(params),
    )
    typed_problems = [p for p in spec_problems(spec, MarketCatalog({})) if p[0] != "venue"]
    names = ("symbol_a", "symbol_b") if strategy == "spread" else ()
    wanted = [params.get(n) for n in names] if names else [symbol]
    symbols = [s for s in wanted if isinstance(s, str) and s]
    problems += [(f.removeprefix("params."), m) for f, m in typed_problems]
    markets = []
    for s in symbols:
        own = per_symbol.get(s) or {}
        if not isinstance(own, dict):
            problems.append((f"markets.{s}", "expected a mapping of market fields"))
            own = {}
        merged = {k: raw[k] for k in MARKET_FIELDS if k in raw} | own
        where = f"markets.{s}." if own else ""
        m = _market(s, merged, where, problems)
        if m is not None:
            markets.append(m)
    fees = {
        name: _decimal(raw.get(name, 0), name, problems, positive=False)
        for name in ("maker_fee_bps", "taker_fee_bps")
    }
    balances: dict[str, Decimal] = {}
    raw_balances = raw.get("balances")
    if not isinstance(raw_balances, dict) or not raw_balances:
        problems.append(("balances", "required: starting balances, e.g. {USDT: '10000'}"))
    else:
        for asset, amount in raw_balances.items():
            balances[str(asset)] = _decimal(amount, f"balances.{asset}", problems, positive=False)
    default_kind = "perpetual" if strategy == "spread" else "spot"
    market_kind = raw.get("market_kind", default_kind)
    if market_kind not in ("spot", "perpetual"):
        problems.append(("market_kind", "must be spot or perpetual"))
    leverage = _decimal(raw.get("leverage", 1), "leverage", problems, positive=True)
    if leverage < 1 and not any(f == "leverage" for f, _ in problems):
        problems.append(("leverage", "must be >= 1"))
    if problems:
        raise SetupError(problems)
    return Setup(
        spec=spec,
        catalog=MarketCatalog({VENUE: markets}),
        symbols=tuple(symbols),
        balances=balances,
        maker_fee_bps=fees["maker_fee_bps"],
        taker_fee_bps=fees["taker_fee_bps"],
        market_kind=market_kind,
        leverage=leverage,
    )


def _normalize(params: dict[str, Any]) -> dict[str, Any]:
    """YAML floats as text, so ``0.1`` is Decimal("0.1") (as ``bots apply`` does)."""
    return {k: str(v) if isinstance(v, float) else v for k, v in params.items()}


# ------------------------------------------------------------------------ run
@dataclass(frozen=True)
class Fill:
    """One fill of the run (quote-asset fee; ``ts_ns`` = the filling trade's ``ts_recv``)."""

    ts_ns: int
    order_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    liquidity: str


@dataclass
class Sample:
    """Chart samples: time, each symbol's price, equity (quote), primary position (base)."""

    ts: list[int] = field(default_factory=list)
    prices: list[tuple[Decimal | None, ...]] = field(default_factory=list)
    equity: list[Decimal] = field(default_factory=list)
    position: list[Decimal] = field(default_factory=list)


@dataclass
class Result:
    """What a run produced: its fills, chart samples and summary (JSON-ready)."""

    fills: list[Fill]
    samples: Sample
    summary: dict[str, Any]
    symbols: tuple[str, ...]


class _Order:
    """Execution's view of one order: its intent, client id, placed and filled quantity."""

    __slots__ = ("client_id", "filled", "intent", "open", "qty")

    def __init__(self, intent: PlaceOrder, client_id: str, qty: Decimal) -> None:
        self.intent = intent
        self.client_id = client_id
        self.qty = qty
        self.filled = ZERO
        self.open = True


Progress = Callable[[int], None]
"""Called with the number of events processed so far."""


class Backtest:
    """One bot, one paper account, fed one stream of market events (see the module doc)."""

    def __init__(self, setup: Setup, run: int = 1) -> None:
        self.setup = setup
        self.exchange = PaperExchange(setup.catalog, VENUE)
        self.exchange.open_account(
            ACCOUNT,
            dict(setup.balances),
            setup.maker_fee_bps,
            setup.taker_fee_bps,
            market_kind=setup.market_kind,
            leverage=setup.leverage,
        )
        self.bot: Strategy = build_bot(setup.spec, setup.catalog, run=run)
        self._markets = {m.symbol: m for m in setup.markets}
        self._orders: dict[str, _Order] = {}
        self._client_seq = 0
        self._queue: deque[Intent] = deque()
        self._wants_balances = type(self.bot).on_balances is not BotBase.on_balances  # type: ignore[comparison-overlap]
        self._next_balances = 0
        self.fills: list[Fill] = []
        self.positions = {s: Position() for s in setup.symbols}
        self.rejected = 0
        self.placed = 0
        self.events = 0
        self.trades = 0
        # equity = initial quote + sum(qty_s * p_s) - _k; the drawdown is tracked on it
        quote = setup.markets[0].quote
        self._initial = setup.balances.get(quote, ZERO)
        self._k = -self._initial
        self._qty = {s: ZERO for s in setup.symbols}
        self._last: dict[str, Decimal | None] = {s: None for s in setup.symbols}
        self._traded: set[str] = set()
        self._peak: Decimal | None = None
        self._equity = self._initial
        self.max_drawdown = ZERO
        self.samples = Sample()
        self._stride = 1
        self._ts = 0

    # ---------------------------------------------------------------- driving
    def run(
        self, events: Iterable[QuoteTick | TradeTick], progress: Progress | None = None
    ) -> Result:
        """Feed every event (in order) and return the result; ``progress`` every 8192 events."""
        started = time.perf_counter()
        step = self.step
        n = 0
        for event in events:  # errors of the reader (a bad data file) pass through as they are
            try:
                step(event)
            except Exception as exc:
                raise BacktestError(f"event {n + 1} (ts_recv {self._ts}): {exc!r}") from exc
            n += 1
            if progress is not None and not n & 8191:
                progress(n)
        if progress is not None:
            progress(n)
        elapsed = time.perf_counter() - started
        self._sample(force=True)
        return Result(
            fills=self.fills,
            samples=self.samples,
            summary=self.summary(elapsed),
            symbols=self.setup.symbols,
        )

    def step(self, event: QuoteTick | TradeTick) -> None:
        """One market event: fills first, then the bot sees the event (rule 5)."""
        ts = event.ts_recv
        self._ts = ts
        self.events += 1
        bot = self.bot
        if self._wants_balances and ts >= self._next_balances:
            self._next_balances = ts + BALANCES_INTERVAL_NS
            self._give_balances(ts)
        if type(event) is TradeTick:
            self.trades += 1
            fills = self.exchange.on_trade(event)
            symbol, price = event.symbol, event.price
            self._traded.add(symbol)
            if fills:
                answers: list[Intent] = []
                for fill in fills:
                    answers += self._on_fill(fill, ts)
                if answers:
                    self._handle(answers, ts)
            intents = bot.on_trade(event)
        else:
            self.exchange.on_quote(event)  # type: ignore[arg-type]
            fills = None
            symbol = event.symbol
            price = None if symbol in self._traded else event.mid  # type: ignore[union-attr]
            intents = bot.on_quote(event)  # type: ignore[arg-type]
        if intents:
            self._handle(intents, ts)
        if price is not None:
            self._mark(symbol, price, bool(fills))
        if fills or self.events % self._stride == 0:
            self._sample()

    # ---------------------------------------------------------------- equity
    def _mark(self, symbol: str, price: Decimal, filled: bool) -> None:
        """A new price of ``symbol`` (after its fills): re-value and track the drawdown."""
        self._last[symbol] = price
        if not filled and not self._qty[symbol] and self._peak is not None:
            return  # flat in this symbol: its price moves nothing
        self._revalue()

    def _revalue(self) -> None:
        equity = -self._k
        for s, qty in self._qty.items():
            if qty:
                p = self._last[s]
                if p is not None:
                    equity += qty * p
        self._equity = equity
        if self._peak is None or equity > self._peak:
            self._peak = equity
        elif self._peak - equity > self.max_drawdown:
            self.max_drawdown = self._peak - equity

    def _sample(self, force: bool = False) -> None:
        sm = self.samples
        if len(sm.ts) >= MAX_SAMPLES:
            for series in (sm.ts, sm.prices, sm.equity, sm.position):
                del series[1::2]
            self._stride *= 2
        if force and sm.ts and sm.ts[-1] == self._ts:
            return
        sm.ts.append(self._ts)
        sm.prices.append(tuple(self._last.values()))
        sm.equity.append(self._equity)
        sm.position.append(self._qty[self.setup.symbols[0]])

    # ---------------------------------------------------------------- balances
    def _give_balances(self, ts: int) -> None:
        balances = AccountBalances(
            account=ACCOUNT,
            venue=VENUE,
            balances=self.exchange.balances(ACCOUNT),
            ledger_watermark=0,
        )
        intents = self.bot.on_balances(balances)
        if intents:
            self._handle(intents, ts)

    # ------------------------------------------------------------------ fills
    def _on_fill(self, fill: VenueFill, ts: int) -> list[Intent]:
        """Book one fill and tell the bot; return its answer (run after every fill is told)."""
        order = self._orders[fill.intent_id]
        order.filled += fill.qty
        leaves = order.qty - order.filled
        if leaves <= 0:
            order.open = False
        market = self._markets[fill.symbol]
        fee = fill.fee if fill.fee_asset == market.quote else fill.fee * fill.price
        self.fills.append(
            Fill(
                ts,
                fill.intent_id,
                fill.symbol,
                fill.side,
                fill.price,
                fill.qty,
                fee,
                fill.liquidity,
            )
        )
        position = self.positions[fill.symbol]
        before_k = position.open_cost + position.open_fees - position.realized_pnl
        position.apply(fill.side, fill.qty, fill.price, fee)
        self._k += position.open_cost + position.open_fees - position.realized_pnl - before_k
        self._qty[fill.symbol] = position.qty
        event = OrderFilled(
            intent_id=fill.intent_id,
            user=USER,
            source=BOT_ID,
            account=ACCOUNT,
            symbol=fill.symbol,
            side=fill.side,
            trade_id=fill.trade_id,
            price=fill.price,
            qty=fill.qty,
            fee=fill.fee,
            fee_asset=fill.fee_asset,
            liquidity=fill.liquidity,
            cum_qty=order.filled,
            leaves_qty=leaves,
            ts_event=fill.ts_event,
        )
        return self.bot.on_order_event(event)

    # ---------------------------------------------------------------- intents
    def _handle(self, intents: list[Intent], ts: int) -> None:
        """Execute ``intents`` and what the bot answers to their events, first in, first out."""
        queue = self._queue
        busy = bool(queue)
        queue.extend(intents)
        if busy:
            return  # an outer call is draining the queue
        while queue:
            intent = queue[0]
            if type(intent) is PlaceOrder:
                event: OrderEvent | None = self._place(intent, ts)
                events = [event] if event is not None else []
            elif type(intent) is CancelOrder:
                events = [self._cancel(intent, ts)]
            else:
                events = self._cancel_all(intent, ts)  # type: ignore[arg-type]
            for ev in events:
                answer = self.bot.on_order_event(ev)
                if answer:
                    queue.extend(answer)
            queue.popleft()

    def _reject(self, intent: PlaceOrder, reason: str, message: str, ts: int) -> OrderRejected:
        self.rejected += 1
        return OrderRejected(
            intent_id=intent.intent_id,
            user=USER,
            source=BOT_ID,
            account=intent.account,
            reason=reason,
            message=message,
            ts_event=ts,
        )

    def _place(self, intent: PlaceOrder, ts: int) -> OrderEvent | None:
        if intent.intent_id in self._orders:
            return self._reject(
                intent, "duplicate_intent_id", f"intent id {intent.intent_id!r} already used", ts
            )
        market = self._markets.get(intent.symbol)
        if market is None:
            return self._reject(intent, "unknown_symbol", f"no market {intent.symbol}", ts)
        refusal = check_order_shape(intent, market)
        perpetual = trades_perpetual(self.setup.market_kind, market)
        if refusal is None and wants_free_balance(intent, perpetual):
            bal = self.exchange.accounts[ACCOUNT].balance(market.base)
            sized = clamp_to_free(intent, market, bal.total - bal.locked)
            if isinstance(sized, Refusal):
                refusal = sized
            else:
                intent, refusal = sized, check_order_shape(sized, market)
        if refusal is not None:
            return self._reject(intent, refusal.reason, refusal.message, ts)
        self._client_seq += 1
        client_id = str(self._client_seq)
        order = VenueOrder(
            client_order_id=client_id,
            intent_id=intent.intent_id,
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            price=intent.price,
            qty=intent.qty,
            trigger_ts=ts,
        )
        try:
            ack = self.exchange.place(ACCOUNT, order)
        except VenueRejected as exc:
            return self._reject(intent, exc.reason, exc.message, ts)
        self.placed += 1
        self._orders[intent.intent_id] = _Order(intent, client_id, intent.qty)
        return OrderAccepted(
            intent_id=intent.intent_id,
            user=USER,
            source=BOT_ID,
            account=ACCOUNT,
            symbol=intent.symbol,
            side=intent.side,
            order_type=intent.order_type,
            price=intent.price,
            qty=intent.qty,
            client_order_id=client_id,
            venue_order_id=ack.venue_order_id,
            ts_event=ts,
        )

    def _canceled(self, order: _Order, cancel_id: str, ts: int) -> OrderCanceled:
        order.open = False
        return OrderCanceled(
            intent_id=order.intent.intent_id,
            user=USER,
            source=BOT_ID,
            account=ACCOUNT,
            symbol=order.intent.symbol,
            filled_qty=order.filled,
            cancel_intent_id=cancel_id,
            ts_event=ts,
        )

    def _cancel(self, intent: CancelOrder, ts: int) -> OrderEvent:
        order = self._orders.get(intent.target_intent_id)
        if order is None:
            reason, message = "unknown_order", "no such order on that account"
        elif order.open and self.exchange.cancel(order.client_id):
            return self._canceled(order, intent.intent_id, ts)
        else:
            reason, message = "not_open", "order is not open"
        return CancelRejected(
            intent_id=intent.intent_id,
            user=USER,
            source=BOT_ID,
            target_intent_id=intent.target_intent_id,
            reason=reason,
            message=message,
            ts_event=ts,
        )

    def _cancel_all(self, intent: CancelAll, ts: int) -> list[OrderEvent]:
        out: list[OrderEvent] = []
        for order in list(self._orders.values()):
            if not order.open or (intent.symbol and order.intent.symbol != intent.symbol):
                continue
            if self.exchange.cancel(order.client_id):
                out.append(self._canceled(order, intent.intent_id, ts))
        return out

    # ---------------------------------------------------------------- summary
    def summary(self, elapsed: float) -> dict[str, Any]:
        """The run's figures; money and quantities as decimal strings."""
        status = self.bot.status()
        symbols = self.setup.symbols
        single = len(symbols) == 1

        def per_symbol(values: dict[str, Decimal]) -> str | dict[str, str]:
            return str(values[symbols[0]]) if single else {s: str(v) for s, v in values.items()}

        pos = self.positions
        unrealized = sum(
            (p.unrealized_pnl(self._last[s]) for s, p in pos.items() if self._last[s] is not None),
            ZERO,
        )
        realized = sum((p.realized_pnl for p in pos.values()), ZERO)
        return {
            "strategy": self.setup.spec.strategy,
            "symbols": list(symbols),
            "events": self.events,
            "trades": self.trades,
            "quotes": self.events - self.trades,
            "fills": len(self.fills),
            "orders_placed": self.placed,
            "orders_rejected": self.rejected,
            "open_orders": sum(1 for o in self._orders.values() if o.open),
            "buy_qty": per_symbol({s: p.bought_qty for s, p in pos.items()}),
            "sell_qty": per_symbol({s: p.sold_qty for s, p in pos.items()}),
            "buy_quote": str(sum((p.bought_notional for p in pos.values()), ZERO)),
            "sell_quote": str(sum((p.sold_notional for p in pos.values()), ZERO)),
            "fees": str(sum((p.fees for p in pos.values()), ZERO)),
            "realized_pnl": str(realized),
            "unrealized_pnl": str(unrealized),
            "final_position": per_symbol({s: p.qty for s, p in pos.items()}),
            "final_price": per_symbol({s: v for s, v in self._last.items() if v is not None})
            if all(v is not None for v in self._last.values())
            else None,
            "final_equity": str(self._initial + realized + unrealized),
            "max_drawdown": str(self.max_drawdown),
            "cycles_completed": status.cycles_completed,
            "phase": status.phase,
            "error": status.error,
            "first_ts": self.samples.ts[0] if self.samples.ts else None,
            "last_ts": self._ts if self.events else None,
            "elapsed_seconds": round(elapsed, 6),
            "events_per_second": round(self.events / elapsed) if elapsed > 0 else None,
        }


def run_backtest(
    setup: Setup, events: Iterable[QuoteTick | TradeTick], progress: Progress | None = None
) -> Result:
    """Run ``setup``'s bot over ``events`` (see :class:`Backtest`)."""
    return Backtest(setup).run(events, progress)


def encode_summary(summary: dict[str, Any]) -> bytes:
    """``summary.json``'s bytes (sorted keys, indented)."""
    return msgspec.json.format(msgspec.json.encode(summary, order="sorted"), indent=2) + b"\n"


def open_events(setup: Setup, paths: list[Path], fmt: str) -> Iterator[QuoteTick | TradeTick]:
    """The events of the bot's markets from ``paths`` (:mod:`.readers`), merged by ``ts_recv``.

    A two-market bot (``spread``) reads the files once per symbol; ties keep
    the primary symbol first, so a run is deterministic. Only ``binance-raw``
    frames name their symbol: in the other formats a file holds one market,
    so a spread takes one ``--data`` file per leg, in the legs' order
    (``symbol_a`` first).

    Raises
    ------
    ValueError
        If a spread in a format without symbols is not given one file per leg.
    """
    from tradebus.cli.backtest.readers import read_events

    symbols = list(setup.symbols)
    if len(symbols) > 1 and fmt != "binance-raw":
        if len(paths) != len(symbols):
            raise ValueError(
                f"{fmt} files hold one market each: give one --data file per leg"
                f" ({', '.join(symbols)}, in that order), got {len(paths)}"
            )
        pairs = zip(paths, symbols, strict=True)
        streams = [read_events([p], fmt, s, venue=VENUE) for p, s in pairs]
        return heapq.merge(*streams, key=_ts_recv)
    streams = [read_events(paths, fmt, s, venue=VENUE) for s in symbols]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=_ts_recv)


def _ts_recv(event: QuoteTick | TradeTick) -> int:
    return event.ts_recv
