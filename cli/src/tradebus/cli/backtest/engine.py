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

Intents the bot returns are handled at once, in order, as execution would
(:class:`~tradebus.cli.backtest.executor.PaperDesk`); the bot hears
:class:`OrderAccepted` or :class:`OrderRejected` right away, and
:class:`OrderCanceled` / :class:`CancelRejected` for cancels. Intents it
returns in answer are queued behind the current ones (first in, first out),
which is the order the bus would deliver them in. A core that overrides
``on_balances`` gets the account's balances before the first event and then
every :data:`BALANCES_INTERVAL_NS` of market time, like the host's poll.

A bot is handed only the events that can make it act, as a strategy host
does (:mod:`tradebus.strategy.wake`): a single-market core that says which
ticks matter (:meth:`~tradebus.strategy.core.Strategy.wake`) skips the
others, and is caught up on the last trade and quote it skipped
(``note_tick``) before it is next called or read. The results are the same
as calling it on every event (``tests/unit/test_backtest_fast_paths.py``).

Not simulated: the account's risk limits and kill switch (no accounts
file), stale-tick filtering (recorded data), and the latency between the
services (the bot always hears of its orders before the next event).
"""

from __future__ import annotations

import heapq
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradebus.cli.backtest.accounting import Books, Result
from tradebus.cli.backtest.executor import PaperDesk
from tradebus.cli.backtest.setup import ACCOUNT, VENUE, Setup
from tradebus.common.messages import AccountBalances, Intent, QuoteTick, TradeTick
from tradebus.engine.venue import VenueFill
from tradebus.strategies.core import BotBase, Strategy
from tradebus.strategies.registry import build_bot

BALANCES_INTERVAL_NS = 5_000_000_000
"""How often (market time) a core that wants balances is given them (the host polls too)."""
NEVER_ABOVE = Decimal("Infinity")
NEVER_BELOW = Decimal("-Infinity")
NEVER_NS = sys.maxsize


class BacktestError(RuntimeError):
    """The run could not go on (the core raised); names the event it was at."""


Progress = Callable[[int], None]
"""Called with the number of events processed so far."""


class Backtest:
    """One bot, one paper account, fed one stream of market events (see the module doc)."""

    def __init__(self, setup: Setup, run: int = 1, skip_ticks: bool = True) -> None:
        """``skip_ticks=False`` hands the bot every event (the check of the skipping)."""
        self.setup = setup
        self.desk = PaperDesk(setup)
        self.exchange = self.desk.exchange
        self.bot: Strategy = build_bot(setup.spec, setup.catalog, run=run)
        self._queue: deque[Intent] = deque()
        self._wants_balances = type(self.bot).on_balances is not BotBase.on_balances  # type: ignore[comparison-overlap]
        self._may_park = (
            skip_ticks and len(setup.markets) == 1 and type(self.bot).wake is not BotBase.wake  # type: ignore[comparison-overlap]
        )
        self._next_balances = 0
        self.books = Books(setup)
        self.events = 0
        self.trades = 0
        self._traded: set[str] = set()
        self._ts = 0
        self._skipped_trade: TradeTick | None = None
        self._skipped_quote: QuoteTick | None = None
        self._quote_skipped_last = False

    # ---------------------------------------------------------------- driving
    def run(
        self, events: Iterable[QuoteTick | TradeTick], progress: Progress | None = None
    ) -> Result:
        """Feed every event (in order) and return the result; ``progress`` every 8192 events."""
        started = time.perf_counter()
        self.feed(events, progress)
        elapsed = time.perf_counter() - started
        self.catch_up()
        self.books.sample(self._ts, force=True)
        return Result(
            fills=self.books.fills,
            samples=self.books.samples,
            summary=self.summary(elapsed),
            symbols=self.setup.symbols,
        )

    def feed(
        self, events: Iterable[QuoteTick | TradeTick], progress: Progress | None = None
    ) -> int:
        """Feed events (rule 5 for each); how many. Can be called again with the next ones.

        Raises
        ------
        BacktestError
            If the core (or the engine) raised, naming the event; errors of
            the reader (a bad data file) pass through as they are.
        """
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
        handle, on_fill, catch_up = self._handle, self._on_fill, self.catch_up
        wants_balances = self._wants_balances
        count, trades, ts = self.events, self.trades, self._ts
        parked, above, below, at_ns = self._wake()
        n = 0
        for event in events:
            try:
                ts = event.ts_recv
                count += 1
                if wants_balances and ts >= self._next_balances:
                    self._next_balances = ts + BALANCES_INTERVAL_NS
                    catch_up()
                    self._give_balances(ts)
                    parked, above, below, at_ns = self._wake()
                if type(event) is trade_type:
                    trades += 1
                    symbol = event.symbol
                    price = event.price  # type: ignore[union-attr]
                    fills = exchange_trade(event)
                    traded.add(symbol)
                    if fills:
                        catch_up()
                        answers: list[Intent] = []
                        for fill in fills:
                            answers += on_fill(fill, ts)
                        if answers:
                            handle(answers, ts)
                        parked, above, below, at_ns = self._wake()
                    if not parked or price >= above or price <= below or ts >= at_ns:
                        catch_up()
                        intents = bot_trade(event)
                        if intents:
                            handle(intents, ts)
                        parked, above, below, at_ns = self._wake()
                    else:
                        self._skipped_trade, self._quote_skipped_last = event, False  # type: ignore[assignment]
                    mark(symbol, price, bool(fills))
                    if fills or count % stride == 0:
                        sample(ts)
                        stride = books.stride
                else:
                    symbol = event.symbol
                    if symbol in waiting:
                        exchange_quote(event)  # type: ignore[arg-type]
                    if not parked or ts >= at_ns:
                        catch_up()
                        intents = bot_quote(event)  # type: ignore[arg-type]
                        if intents:
                            handle(intents, ts)
                        parked, above, below, at_ns = self._wake()
                    else:
                        self._skipped_quote, self._quote_skipped_last = event, True  # type: ignore[assignment]
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
        return n

    # ------------------------------------------------------------------- wake
    def _wake(self) -> tuple[bool, Decimal, Decimal, int]:
        """``(parked, trade_at_or_above, trade_at_or_below, at_ns)`` of the bot now.

        Not parked: every event goes to the bot (the bounds are then unused).
        """
        wake = self.bot.wake() if self._may_park else None
        if wake is None:
            return False, NEVER_ABOVE, NEVER_BELOW, NEVER_NS
        above, below, at_ns = wake.trade_at_or_above, wake.trade_at_or_below, wake.at_ns
        return (
            True,
            NEVER_ABOVE if above is None else above,
            NEVER_BELOW if below is None else below,
            NEVER_NS if at_ns is None else at_ns,
        )

    def catch_up(self) -> None:
        """Give the bot the last trade and quote it skipped, in their order (``note_tick``)."""
        trade, quote = self._skipped_trade, self._skipped_quote
        if trade is None and quote is None:
            return
        note = self.bot.note_tick
        if self._quote_skipped_last:
            if trade is not None:
                note(trade)
            if quote is not None:
                note(quote)
        else:
            if quote is not None:
                note(quote)
            if trade is not None:
                note(trade)
        self._skipped_trade = self._skipped_quote = None

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

    # ---------------------------------------------------------- fills, intents
    def _on_fill(self, fill: VenueFill, ts: int) -> list[Intent]:
        """Book one fill and tell the bot; return its answer (run after every fill is told)."""
        self.books.book(fill, self.desk.markets[fill.symbol], ts)
        return self.bot.on_order_event(self.desk.filled(fill))

    def _handle(self, intents: list[Intent], ts: int) -> None:
        """Execute ``intents`` and what the bot answers to their events, first in, first out."""
        queue = self._queue
        busy = bool(queue)
        queue.extend(intents)
        if busy:
            return  # an outer call is draining the queue
        execute, tell = self.desk.execute, self.bot.on_order_event
        while queue:
            for event in execute(queue[0], ts):
                answer = tell(event)
                if answer:
                    queue.extend(answer)
            queue.popleft()

    # ---------------------------------------------------------------- summary
    def summary(self, elapsed: float) -> dict[str, Any]:
        """The run's figures (:meth:`Books.summary`); money and quantities as decimal strings."""
        self.catch_up()
        desk = self.desk
        return self.books.summary(
            strategy=self.setup.spec.strategy,
            status=self.bot.status(),
            events=self.events,
            trades=self.trades,
            placed=desk.placed,
            rejected=desk.rejected,
            open_orders=desk.open_orders(),
            last_ts=self._ts if self.events else None,
            elapsed=elapsed,
        )


def run_backtest(
    setup: Setup, events: Iterable[QuoteTick | TradeTick], progress: Progress | None = None
) -> Result:
    """Run ``setup``'s bot over ``events`` (see :class:`Backtest`)."""
    return Backtest(setup).run(events, progress)


def open_events(setup: Setup, paths: list[Path], fmt: str) -> Iterator[QuoteTick | TradeTick]:
    """The bot's market events in ``paths`` (:mod:`tradebus.feeds.readers`), merged by ``ts_recv``.

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
    from tradebus.feeds.readers import read_events

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
