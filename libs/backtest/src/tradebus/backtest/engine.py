"""The backtest engine: one strategy core against the paper venue, no NATS, no database.

A run is the live path with the bus and the ledger taken out, and nothing
else: the core is built by :func:`tradebus.strategies.registry.build_bot`
(the very code a strategy host runs); its intents are executed by the
execution service's own core (:class:`~tradebus.engine.desk.PaperDesk`: the
:class:`~tradebus.engine.core.ExecutionEngine` on an in-memory store and the
paper venue, shared/STRATEGIES.md "Paper fill model"); it is handed ticks
through the strategy host's own wake index
(:class:`~tradebus.strategies.wake.MarketBots`). Per market event, exactly
rule 5:

1. the event fills the live orders (``PaperExchange.on_trade``; a quote only
   makes due orders live, ``on_quote``), in placement order, and the engine
   books them;
2. the bot hears each fill as the :class:`OrderFilled` the engine published
   (caught up first on the ticks it skipped);
3. the bot sees the event itself (``on_trade``/``on_quote``) if the wake
   index says it must (a parked core that says which ticks matter skips the
   others, and is caught up on the last trade and quote it skipped,
   ``note_tick``, before it is next called or read).

Intents the bot returns are executed at once, in order, with the current
event's ``ts_recv`` as their trigger (live from the next event, rule 1);
the bot hears :class:`OrderAccepted` or :class:`OrderRejected` right away,
and :class:`OrderCanceled` / :class:`CancelRejected` for cancels. Intents it
returns in answer are queued behind the current ones (first in, first out),
which is the order the bus would deliver them in. A core that takes account
balances (:data:`~tradebus.strategies.core.BotInput.BALANCES`) gets the
engine's answer before the first event and then every
:data:`BALANCES_INTERVAL_NS` of market time, like the host's poll.

Not simulated: the latency between the services (the bot always hears of
its orders before the next event) and stale-tick filtering (recorded data).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from tradebus.backtest.accounting import Books, Result
from tradebus.backtest.columns import EventColumns
from tradebus.backtest.setup import ACCOUNT, BOT_ID, USER, VENUE, Setup
from tradebus.common import order_status
from tradebus.common.clock import ManualClock
from tradebus.common.messages import (
    Intent,
    Message,
    OrderFilled,
    PlaceOrder,
    QuoteTick,
    TradeTick,
)
from tradebus.common.money import ZERO
from tradebus.engine.desk import PaperDesk
from tradebus.strategies.core import BotBase, BotInput, Strategy
from tradebus.strategies.registry import build_bot
from tradebus.strategies.wake import MarketBots

BALANCES_INTERVAL_NS = 5_000_000_000
"""How often (market time) a core that wants balances is given them (the host polls too)."""


class BacktestError(RuntimeError):
    """The run could not go on (the core raised); names the event it was at."""


Progress = Callable[[int], None]
"""Called with the number of events processed so far."""


class _Runner:
    """The one bot of a run, as the wake index files it (``wake.Indexed``)."""

    __slots__ = ("core", "parked", "rank", "seen_seq", "takes_ticks", "wake_entries", "wake_gen")

    def __init__(self, core: Strategy) -> None:
        self.core = core
        self.rank = BOT_ID
        self.wake_gen = 0
        self.wake_entries = 0
        self.seen_seq = 0
        self.parked = False
        self.takes_ticks = True


class Backtest:
    """One bot, one paper account, fed one stream of market events (see the module doc)."""

    def __init__(self, setup: Setup, run: int = 1, skip_ticks: bool = True) -> None:
        """``skip_ticks=False`` hands the bot every event (the check of the skipping)."""
        self.setup = setup
        self.clock = ManualClock()
        self.desk = PaperDesk(setup.catalog, [setup.account()], self.clock)
        self.exchange = self.desk.exchanges[VENUE]
        self.bot: Strategy = build_bot(setup.spec, setup.catalog, run=run)
        self._queue: deque[Intent] = deque()
        self._wants_balances = BotInput.BALANCES in self.bot.inputs
        if BotInput.GROUP_VOLUME in self.bot.inputs:  # a group of one: its own volume
            self._handle(self.bot.on_group_volume(ZERO, {}, {}))  # and nobody else in play
        self._may_park = (
            skip_ticks and len(setup.markets) == 1 and type(self.bot).wake is not BotBase.wake
        )
        self._runner = _Runner(self.bot)
        self._markets: dict[str, MarketBots[_Runner]] = {
            m.symbol: MarketBots() for m in setup.markets
        }
        for market in self._markets.values():
            market.add(BOT_ID, self._runner)
            market.index(BOT_ID, self._runner, self._may_park)
        self._primary = self._markets[setup.markets[0].symbol]
        self._market_of = {m.symbol: m for m in setup.markets}
        self._next_balances = 0
        self.books = Books(setup)
        self.events = 0
        self.trades = 0
        self._traded: set[str] = set()
        self._ts = 0

    # ---------------------------------------------------------------- driving
    def run(
        self,
        events: Iterable[QuoteTick | TradeTick] | EventColumns,
        progress: Progress | None = None,
    ) -> Result:
        """Feed every event (in order) and return the result; ``progress`` every 8192 events.

        ``events`` as :class:`~tradebus.backtest.columns.EventColumns` go through
        :meth:`feed_columns` (the same result, faster).
        """
        started = time.perf_counter()
        if isinstance(events, EventColumns):
            self.feed_columns(events, progress)
        else:
            self.feed(events, progress)
        elapsed = time.perf_counter() - started
        self.catch_up()
        self.books.sample(self._ts, force=True)
        if isinstance(events, EventColumns):
            self.books.resolve(events.prices)
        return Result(
            fills=self.books.fills,
            samples=self.books.samples,
            summary=self.summary(elapsed),
            symbols=self.setup.symbols,
        )

    def feed(
        self,
        events: Iterable[QuoteTick | TradeTick],
        progress: Progress | None = None,
        first: int = 0,
    ) -> int:
        """Feed events (rule 5 for each); how many. Can be called again with the next ones.

        ``first``: how many events of the run came before (for the error's event number).

        Raises
        ------
        BacktestError
            If the core (or the engine) raised, naming the event; errors of
            the reader (a bad data file) pass through as they are.
        """
        desk, clock = self.desk, self.clock
        books = self.books
        mark, sample = books.mark, books.sample
        stride = books.stride  # changes only in sample()
        traded = self._traded
        trade_type = TradeTick
        markets = self._markets
        wants_balances = self._wants_balances
        count, trades, ts = self.events, self.trades, self._ts
        day_end = books.day_end
        n = 0
        for event in events:
            try:
                ts = event.ts_recv
                clock.now = ts
                if ts >= day_end:  # a new UTC day (or the first event): the daily returns
                    books.new_day(ts)
                    day_end = books.day_end
                count += 1
                if wants_balances and ts >= self._next_balances:
                    self._next_balances = ts + BALANCES_INTERVAL_NS
                    self._call(lambda core: core.on_balances(desk.balances(ACCOUNT)))
                symbol = event.symbol
                market = markets[symbol]
                if type(event) is trade_type:
                    trades += 1
                    price = event.price
                    filled = desk.on_trade(event)
                    traded.add(symbol)
                    if filled:
                        self._tell_fills(filled, ts)
                    self._tick(market, event, True)
                    mark(symbol, price, bool(filled), ts)
                    if filled or count % stride == 0:
                        sample(ts)
                        stride = books.stride
                else:
                    desk.on_quote(event)  # type: ignore[arg-type]
                    self._tick(market, event, False)
                    if symbol not in traded:
                        mark(symbol, event.mid, False, ts)  # type: ignore[union-attr]
                    if count % stride == 0:
                        sample(ts)
                        stride = books.stride
            except Exception as exc:
                self._ts, self.events, self.trades = ts, count, trades
                raise BacktestError(f"event {first + n + 1} (ts_recv {ts}): {exc!r}") from exc
            n += 1
            if progress is not None and not n & 8191:
                self._ts, self.events, self.trades = ts, count, trades
                progress(n)
        self._ts, self.events, self.trades = ts, count, trades
        if progress is not None:
            progress(n)
        return n

    def feed_columns(self, cols: EventColumns, progress: Progress | None = None) -> int:
        """Feed the events of ``cols`` (in order) as :meth:`feed` would, faster; how many.

        The same engine: every event that can act goes through :meth:`feed` as its tick
        (:meth:`EventColumns.tick`). The others are taken in bulk: from a *stop*, numpy
        finds the next event that may fill a resting order or wake the bot, an event
        before the symbol's first trade, a new UTC day, or balances due; the events
        before it can neither fill (the paper venue's :meth:`trade_screen`, no order
        waiting to go live) nor wake the parked bot (the wake index's bounds), so what
        :meth:`feed` would do with each of them is bookkeeping, done at once:

        * the paper venue keeps the last trade price (``pass_trades``), the wake index the
          last trade and quote for the catch-up (``pass_ticks``);
        * the books see only the trades where the equity can make a new peak, a new
          drawdown or a recovery (running extremes of the price column: the equity is
          monotonic in the price while the position is fixed) and the last trade, each
          by :meth:`Books.mark`, exactly as :meth:`feed` marks it;
        * the chart samples due among them are taken by :meth:`Books.sample_passed`, their
          price and equity made at the end (:meth:`Books.resolve`) from the price text.

        The screens compare floats conservatively (an event the float puts near a bound
        is a stop), so the exact Decimal rules decide every fill and wake. A run whose
        bot trades several markets, or is never parked, is fed event by event.

        Raises
        ------
        BacktestError
            As :meth:`feed`.
        """
        n = len(cols)
        if (
            not self._may_park
            or len(self.setup.markets) != 1
            or cols.symbol != self.setup.markets[0].symbol
        ):
            return self.feed(cols.ticks(), progress)
        trade_idx, quote_idx, last_trade_at = cols.trade_index, cols.quote_index, cols.last_trade_at
        first_trade = int(trade_idx[0]) if trade_idx.size else n
        i = 0
        reported = 0
        feed, tick = self.feed, cols.tick
        if first_trade > 0:  # before the first trade every event marks the quote mid
            feed(cols.ticks(0, first_trade), progress, 0)
            i = first_trade
            reported = i >> 13
        while i < n:
            j = self._next_stop(cols, i, first_trade)
            if j > i:
                self._pass(cols, i, j, trade_idx, quote_idx, last_trade_at)
            if j < n:
                feed((tick(j),), None, j)
            i = j + 1
            if progress is not None and min(i, n) >> 13 > reported:
                reported = min(i, n) >> 13
                progress(reported << 13)
        if progress is not None:
            progress(n)
        return n

    def _next_stop(self, cols: EventColumns, i: int, first_trade: int) -> int:
        """The first event at or after ``i`` that :meth:`feed` must take (see
        :meth:`feed_columns`); ``len(cols)`` if none."""
        n = len(cols)
        runner = self._runner
        market = self._primary
        symbol = cols.symbol
        if i < first_trade or not runner.parked or market.every_count:
            return i
        if symbol in self.exchange.waiting:
            return i
        limit = self.books.day_end
        if self._wants_balances:
            limit = min(limit, self._next_balances)
        above, below, timer = market.wake_bounds()
        if timer is not None:
            limit = min(limit, timer)
        lo, hi = -np.inf, np.inf
        screen = self.exchange.trade_screen(symbol)
        if screen is not None:
            if screen.any_marketable:
                lo = np.inf
            else:
                if screen.buy is not None:
                    lo = float(screen.buy)
                if screen.sell is not None:
                    hi = float(screen.sell)
        if above is not None:
            hi = min(hi, float(above))
        if below is not None:
            lo = max(lo, float(below))
        lo += abs(lo) * _PAD if np.isfinite(lo) else 0.0  # conservative: near a bound stops
        hi -= abs(hi) * _PAD if np.isfinite(hi) else 0.0
        px, ts = cols.px, cols.ts_recv
        k, width = i, 256
        while k < n:
            e = min(n, k + width)
            seg = px[k:e]
            hit = np.flatnonzero((seg <= lo) | (seg >= hi) | (ts[k:e] >= limit))
            if hit.size:
                return k + int(hit[0])
            k, width = e, width * 4
        return n

    def _pass(
        self,
        cols: EventColumns,
        i: int,
        j: int,
        trade_idx: np.ndarray,
        quote_idx: np.ndarray,
        last_trade_at: np.ndarray,
    ) -> None:
        """Events ``i..j-1`` act on nothing (:meth:`_next_stop`): their bookkeeping at once."""
        count = j - i
        count0 = self.events
        ts_recv = cols.ts_recv
        a, b = np.searchsorted(trade_idx, [i, j])
        qa, qb = np.searchsorted(quote_idx, [i, j])
        self.events = count0 + count
        self.trades += int(b - a)
        self._ts = self.clock.now = int(ts_recv[j - 1])
        symbol = cols.symbol
        last_trade = cols.tick(int(trade_idx[b - 1])) if b > a else None
        last_quote = cols.tick(int(quote_idx[qb - 1])) if qb > qa else None
        self._primary.pass_ticks(
            count,
            last_trade,  # type: ignore[arg-type]
            int(trade_idx[b - 1]) - i + 1 if b > a else 0,
            last_quote,  # type: ignore[arg-type]
            int(quote_idx[qb - 1]) - i + 1 if qb > qa else 0,
        )
        books = self.books
        if last_trade is not None:
            price = last_trade.price  # type: ignore[union-attr]
            self.exchange.pass_trades(symbol, price)
            self._traded.add(symbol)
            last = int(trade_idx[b - 1])
            if books.positions[symbol].qty:
                tix = trade_idx[a:b]
                marks = [c for c in books.extremes(symbol, cols.px[tix], cols.rank[tix], tix)]
                if marks and marks[-1] == last:
                    marks.pop()
                if marks:
                    mark = books.mark
                    times = ts_recv[marks].tolist()
                    for p, t in zip(cols.prices(marks), times, strict=True):
                        mark(symbol, p, False, t)
            books.mark(symbol, price, False, int(ts_recv[last]))
        base = count0 + 1 - i  # the event counted c is at index c - base
        books.sample_passed(count0 + 1, count0 + count, ts_recv, last_trade_at, base)

    def _tick(
        self, market: MarketBots[_Runner], event: QuoteTick | TradeTick, is_trade: bool
    ) -> None:
        """Hand ``event`` to the bot if the wake index says so (as the host's ``on_tick``)."""
        seq = market.seq + 1
        for runner in market.due(event, is_trade):
            core = runner.core
            intents = core.on_trade(event) if is_trade else core.on_quote(event)  # type: ignore[arg-type]
            runner.seen_seq = seq
            if intents:
                self._handle(intents)
            self._reindex()

    def _reindex(self) -> None:
        if self._may_park:
            self._primary.index(BOT_ID, self._runner, True)

    def catch_up(self) -> None:
        """Bring a parked bot up to the last trade and quote it skipped (``note_tick``)."""
        if self._runner.parked:
            self._primary.catch_up(self._runner)

    def _call(self, action: Callable[[Strategy], list[Intent]]) -> None:
        """Run one core method (caught up first), execute its intents, re-file the bot."""
        self.catch_up()
        intents = action(self.bot)
        if intents:
            self._handle(intents)
        self._reindex()

    # ---------------------------------------------------------- fills, intents
    def _tell_fills(self, filled: list[Message], ts: int) -> None:
        """Book the event's fills and tell the bot each; then execute what it answered."""
        self.catch_up()
        answers: list[Intent] = []
        for event in filled:
            if isinstance(event, OrderFilled):
                self.books.book(event, self._market_of[event.symbol], ts)
            answers += self.bot.on_order_event(event)  # type: ignore[arg-type]
        if answers:
            self._handle(answers)
        self._reindex()

    def _handle(self, intents: list[Intent]) -> None:
        """Execute ``intents`` and what the bot answers to their events, first in, first out."""
        queue = self._queue
        busy = bool(queue)
        queue.extend(intents)
        if busy:
            return  # an outer call is draining the queue
        execute, tell, now = self.desk.execute, self.bot.on_order_event, self.clock.now
        while queue:
            intent = queue[0]
            if type(intent) is PlaceOrder:
                intent = _triggered(intent, now)
            for event in execute(USER, BOT_ID, intent):
                answer = tell(event)  # type: ignore[arg-type]
                if answer:
                    queue.extend(answer)
            queue.popleft()

    # ---------------------------------------------------------------- summary
    def summary(self, elapsed: float) -> dict[str, Any]:
        """The run's figures (:meth:`Books.summary`); money and quantities as decimal strings."""
        self.catch_up()
        rows = self.desk.store.orders()
        refused_places = sum(1 for r in self.desk.store.rejections if r.intent_id is not None)
        return self.books.summary(
            strategy=self.setup.spec.strategy,
            status=self.bot.status(),
            events=self.events,
            trades=self.trades,
            placed=sum(1 for r in rows if r.venue_order_id is not None),
            rejected=refused_places + sum(1 for r in rows if r.status == "rejected"),
            open_orders=sum(1 for r in rows if r.status in order_status.OPEN),
            last_ts=self._ts if self.events else None,
            elapsed=elapsed,
        )


_PAD = 1e-9
"""Relative margin of the float screens: a trade this near a bound is taken as a stop."""


def _triggered(intent: PlaceOrder, ts: int) -> PlaceOrder:
    """``intent`` caused by the event at ``ts`` (ns): live from the next event (rule 1)."""
    return msgspec.structs.replace(intent, trigger_ts=ts)


def run_backtest(
    setup: Setup,
    events: Iterable[QuoteTick | TradeTick] | EventColumns,
    progress: Progress | None = None,
) -> Result:
    """Run ``setup``'s bot over ``events`` (ticks, or columns: see :class:`Backtest`)."""
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


def market_events(
    setup: Setup, paths: list[Path], fmt: str, cache_dir: Path | None = None
) -> EventColumns | Iterator[QuoteTick | TradeTick]:
    """The run's events as :func:`run_backtest` takes them fastest: for a one-market bot
    the files' columns (:func:`~tradebus.backtest.columns.load_columns`, cached under
    ``cache_dir`` by the files' content hash when given), else :func:`open_events`.

    Raises
    ------
    ValueError, FileNotFoundError, DataFileError
        As :func:`open_events` (for columns, while reading, before the run starts).
    """
    from tradebus.backtest.columns import load_columns

    if len(setup.symbols) != 1:
        return open_events(setup, paths, fmt)
    return load_columns(list(paths), fmt, setup.symbols[0], VENUE, cache_dir)


def _ts_recv(event: QuoteTick | TradeTick) -> int:
    return event.ts_recv
