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
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradebus.cli.backtest.accounting import Books, Result
from tradebus.cli.backtest.setup import ACCOUNT, BOT_ID, USER, VENUE, Setup
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
from tradebus.common.money import ZERO
from tradebus.execution.accounts import trades_perpetual
from tradebus.execution.paper import PaperExchange
from tradebus.execution.risk import Refusal, check_order_shape
from tradebus.execution.sizing import clamp_to_free, wants_free_balance
from tradebus.execution.venue import VenueFill, VenueOrder, VenueRejected
from tradebus.strategy.core import BotBase, Strategy
from tradebus.strategy.registry import build_bot

BALANCES_INTERVAL_NS = 5_000_000_000
"""How often (market time) a core that wants balances is given them (the host polls too)."""


class BacktestError(RuntimeError):
    """The run could not go on (the core raised); names the event it was at."""


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
        # every order is placed before the next event is fed: no late orders to replay
        self.exchange = PaperExchange(setup.catalog, VENUE, late_orders=False)
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
        self.books = Books(setup)
        self.rejected = 0
        self.placed = 0
        self.events = 0
        self.trades = 0
        self._traded: set[str] = set()
        self._ts = 0

    # ---------------------------------------------------------------- driving
    def run(
        self, events: Iterable[QuoteTick | TradeTick], progress: Progress | None = None
    ) -> Result:
        """Feed every event (in order) and return the result; ``progress`` every 8192 events.

        The loop is :meth:`step` inlined (same order of work, same results),
        with what it touches per event held in locals.
        """
        started = time.perf_counter()
        exchange = self.exchange
        waiting = exchange.waiting  # a quote of a symbol absent here is a no-op for the venue
        exchange_quote, exchange_trade = exchange.on_quote, exchange.on_trade
        bot = self.bot
        bot_quote, bot_trade = bot.on_quote, bot.on_trade
        books = self.books
        mark, sample = books.mark, books.sample
        stride = books.stride  # changes only in sample()
        traded = self._traded
        trade_type = TradeTick
        handle, on_fill = self._handle, self._on_fill
        wants_balances = self._wants_balances
        count, trades, ts = self.events, self.trades, self._ts
        n = 0
        for event in events:  # errors of the reader (a bad data file) pass through as they are
            try:
                ts = event.ts_recv
                count += 1
                if wants_balances and ts >= self._next_balances:
                    self._next_balances = ts + BALANCES_INTERVAL_NS
                    self._give_balances(ts)
                if type(event) is trade_type:
                    trades += 1
                    symbol = event.symbol
                    fills = exchange_trade(event)
                    traded.add(symbol)
                    if fills:
                        answers: list[Intent] = []
                        for fill in fills:
                            answers += on_fill(fill, ts)
                        if answers:
                            handle(answers, ts)
                    intents = bot_trade(event)
                    if intents:
                        handle(intents, ts)
                    mark(symbol, event.price, bool(fills))  # type: ignore[union-attr]
                    if fills or count % stride == 0:
                        sample(ts)
                        stride = books.stride
                else:
                    symbol = event.symbol
                    if symbol in waiting:
                        exchange_quote(event)  # type: ignore[arg-type]
                    intents = bot_quote(event)  # type: ignore[arg-type]
                    if intents:
                        handle(intents, ts)
                    if symbol not in traded:
                        mark(symbol, event.mid, False)  # type: ignore[union-attr]
                    if count % stride == 0:
                        sample(ts)
                        stride = books.stride
            except Exception as exc:
                self._ts, self.events, self.trades = ts, count, trades
                raise BacktestError(f"event {n + 1} (ts_recv {ts}): {exc!r}") from exc
            n += 1
            if progress is not None and not n & 8191:
                self._ts, self.events, self.trades = ts, count, trades
                progress(n)
        self._ts, self.events, self.trades = ts, count, trades
        if progress is not None:
            progress(n)
        elapsed = time.perf_counter() - started
        self.books.sample(self._ts, force=True)
        return Result(
            fills=self.books.fills,
            samples=self.books.samples,
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
        books = self.books
        if price is not None:
            books.mark(symbol, price, bool(fills))
        if fills or self.events % books.stride == 0:
            books.sample(ts)

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
        self.books.book(fill, self._markets[fill.symbol], ts)
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
        """The run's figures (:meth:`Books.summary`); money and quantities as decimal strings."""
        return self.books.summary(
            strategy=self.setup.spec.strategy,
            status=self.bot.status(),
            events=self.events,
            trades=self.trades,
            placed=self.placed,
            rejected=self.rejected,
            open_orders=sum(1 for o in self._orders.values() if o.open),
            last_ts=self._ts if self.events else None,
            elapsed=elapsed,
        )


def run_backtest(
    setup: Setup, events: Iterable[QuoteTick | TradeTick], progress: Progress | None = None
) -> Result:
    """Run ``setup``'s bot over ``events`` (see :class:`Backtest`)."""
    return Backtest(setup).run(events, progress)


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
