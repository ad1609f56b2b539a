"""Per-market index of a host's bots: which of them a tick must be handed to.

Handing every tick to every bot of its market costs one Python call per bot
per tick: 10,000 bots at 10,000 ticks/s would be 10^8 calls a second. Most
of those calls do nothing: a ladder bot holding a position acts only when a
trade reaches its take-profit price or its no-fill deadline passes. A core
says so through :meth:`~tradebus.strategies.core.Strategy.wake`, and the host
*parks* it under that :class:`~tradebus.strategies.core.Wake`:

* in a min-heap of ``trade_at_or_above`` prices, a max-heap of
  ``trade_at_or_below`` prices and a min-heap of ``at_ns`` deadlines, so a
  tick finds the bots it wakes in O(log n) each, whatever the number parked;
* cores that answer None (every tick) are kept in ``every``, called on
  every tick as before.

A parked bot skips ticks; the market's last trade and last quote are kept
(with their sequence numbers), and before the bot is called again the host
replays the ones it missed with ``note_tick`` (:meth:`MarketBots.catch_up`).
The :class:`~tradebus.strategies.core.Wake` contract makes this exact: every
output is what the bot would have produced seeing every tick
(``tests/unit/test_wake_index.py`` proves it against an unindexed host).

Bots are called in the order of their ids (``rank``), so a tick's intents
leave in the same order whatever order the bots started in.

Heap entries are never removed in place: re-parking a bot bumps its
``wake_gen`` and leaves the old entries stale, dropped when they reach the top
or when stale entries outnumber live ones (:meth:`MarketBots._compact`).
"""

from __future__ import annotations

import heapq
import itertools
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.strategies.core import Strategy, Wake

COMPACT_MIN_STALE = 1024
"""Rebuild the heaps once this many stale entries exist and they outnumber live ones."""


class Indexed(Protocol):
    """What the index needs of a bot runner (the strategy host's ``BotRunner``)."""

    core: Strategy
    rank: str
    wake_gen: int
    wake_entries: int
    seen_seq: int
    parked: bool
    takes_ticks: bool


R = TypeVar("R", bound=Indexed)
"""The runner type of a :class:`MarketBots` (the host's ``BotRunner``, the backtest's)."""

Entry = tuple[Decimal | int, str, int, R]
"""``(key, rank, wake_gen, runner)``: generations are unique per market, so two
entries never tie and runners are never compared."""


class MarketBots(Generic[R]):
    """The bots of one market (venue, symbol), indexed by the ticks that can wake them.

    Attributes
    ----------
    members
        Every bot of the market by id, in or out of the index.
    seq
        Ticks of this market seen so far (the sequence ``seen_seq`` is counted in).
    """

    def __init__(self) -> None:
        self.members: dict[str, R] = {}
        self._every: dict[str, R] = {}
        self._every_sorted: list[R] | None = []
        self._above: list[Entry[R]] = []
        self._below: list[Entry[R]] = []
        self._timers: list[Entry[R]] = []
        self._stale = 0
        self._generations = itertools.count(1)
        self.seq = 0
        self._last_trade: TradeTick | None = None
        self._trade_seq = 0
        self._last_quote: QuoteTick | None = None
        self._quote_seq = 0

    def __bool__(self) -> bool:
        return bool(self.members)

    # ------------------------------------------------------------ membership
    def add(self, bot: str, runner: R) -> None:
        """A new bot of the market (not indexed until :meth:`index`)."""
        self.members[bot] = runner

    def remove(self, bot: str, runner: R) -> None:
        """Forget a bot (call :meth:`catch_up` first if its state must be current)."""
        self.unindex(bot, runner)
        self.members.pop(bot, None)

    def unindex(self, bot: str, runner: R) -> None:
        """Stop handing the bot ticks (paused, replaying events, leaving)."""
        self._invalidate(runner)
        runner.parked = False
        if self._every.pop(bot, None) is not None:
            self._every_sorted = None

    def index(self, bot: str, runner: R, may_park: bool) -> None:
        """(Re)file the bot by its core's current :meth:`~Strategy.wake` (after every call).

        A bot that does not take ticks is taken out; one that may not be parked
        (it trades more than this market, or its core never says which ticks
        matter) or whose core answers None is called on every tick.
        """
        if not runner.takes_ticks:
            self.unindex(bot, runner)
            return
        if not runner.parked and bot not in self._every:
            runner.seen_seq = self.seq  # (re)joining: ticks from now on
        wake = runner.core.wake() if may_park else None
        if wake is None:
            if runner.parked:
                self._invalidate(runner)
                runner.parked = False
            if bot not in self._every:
                self._every[bot] = runner
                self._every_sorted = None
            return
        self._park(bot, runner, wake)

    def _park(self, bot: str, runner: R, wake: Wake) -> None:
        if self._every.pop(bot, None) is not None:
            self._every_sorted = None
        self._invalidate(runner)
        runner.parked = True
        gen, rank = runner.wake_gen, runner.rank
        if wake.trade_at_or_above is not None:
            heapq.heappush(self._above, (wake.trade_at_or_above, rank, gen, runner))
            runner.wake_entries += 1
        if wake.trade_at_or_below is not None:
            heapq.heappush(self._below, (-wake.trade_at_or_below, rank, gen, runner))
            runner.wake_entries += 1
        if wake.at_ns is not None:
            heapq.heappush(self._timers, (wake.at_ns, rank, gen, runner))
            runner.wake_entries += 1

    def _invalidate(self, runner: R) -> None:
        """Make the runner's heap entries stale."""
        if runner.wake_entries:
            self._stale += runner.wake_entries
            runner.wake_entries = 0
            if self._stale >= COMPACT_MIN_STALE and self._stale * 2 > self._heap_size():
                self._compact()
        runner.wake_gen = next(self._generations)

    def _heap_size(self) -> int:
        return len(self._above) + len(self._below) + len(self._timers)

    def _compact(self) -> None:
        """Drop every stale entry (they are at most half the heaps: amortised O(1) per entry)."""
        for heap in (self._above, self._below, self._timers):
            live = [e for e in heap if e[3].wake_gen == e[2]]
            heapq.heapify(live)
            heap[:] = live
        self._stale = 0

    @property
    def last_ts(self) -> int | None:
        """The market time (``ts_event``, ns) of the latest tick seen, None before any."""
        trade, quote = self._last_trade, self._last_quote
        if trade is None:
            return None if quote is None else quote.ts_event
        return trade.ts_event if quote is None else max(trade.ts_event, quote.ts_event)

    # ------------------------------------------------------------------ ticks
    def wake_bounds(self) -> tuple[Decimal | int | None, Decimal | int | None, int | None]:
        """``(lowest trade_at_or_above, highest trade_at_or_below, earliest at_ns)`` of the
        heaps' tops, stale entries included (None: that heap is empty).

        A trade strictly between the two prices, at a ``ts_recv`` before the time, wakes
        nobody parked (:meth:`due` would return only the bots called on every tick): a
        caller may then take many such ticks at once with :meth:`pass_ticks`.
        """
        above = self._above[0][0] if self._above else None
        below = -self._below[0][0] if self._below else None
        timer = self._timers[0][0] if self._timers else None
        return above, below, timer  # type: ignore[return-value]

    def pass_ticks(
        self,
        count: int,
        last_trade: TradeTick | None,
        trade_at: int,
        last_quote: QuoteTick | None,
        quote_at: int,
    ) -> None:
        """``count`` ticks that wake nobody (:meth:`wake_bounds`) and that no bot is called on
        every tick for went by: what :meth:`due` records of them.

        ``last_trade``/``last_quote`` are the last of each kind among them (None: none),
        ``trade_at``/``quote_at`` their positions (1 = the first of the ``count``).
        """
        seq = self.seq
        if last_trade is not None:
            self._last_trade, self._trade_seq = last_trade, seq + trade_at
        if last_quote is not None:
            self._last_quote, self._quote_seq = last_quote, seq + quote_at
        self.seq = seq + count

    @property
    def every_count(self) -> int:
        """How many bots are called on every tick (not parked)."""
        return len(self._every)

    def due(self, tick: QuoteTick | TradeTick, is_trade: bool) -> list[R]:
        """The bots to call for ``tick``, in rank order; records the tick as the market's last.

        Woken bots leave the index (the caller re-files them after the call)
        and are first caught up to the ticks they skipped.
        """
        woken: list[R] = []
        if is_trade:
            price = tick.price  # type: ignore[union-attr]
            self._pop(self._above, price, woken)
            self._pop(self._below, -price, woken)
        self._pop(self._timers, tick.ts_recv, woken)
        for runner in woken:
            runner.parked = False
            self.catch_up(runner)
        self.seq += 1
        if is_trade:
            self._last_trade, self._trade_seq = tick, self.seq  # type: ignore[assignment]
        else:
            self._last_quote, self._quote_seq = tick, self.seq  # type: ignore[assignment]
        every = self._every_sorted
        if every is None:
            every = self._every_sorted = sorted(self._every.values(), key=_rank)
        if not woken:
            return every
        woken.sort(key=_rank)
        return sorted(every + woken, key=_rank) if every else woken

    def _pop(self, heap: list[Entry[R]], reached: Decimal | int, woken: list[R]) -> None:
        """Pop every entry whose key is at or below ``reached``; live ones wake their bot."""
        while heap and heap[0][0] <= reached:
            _, _, gen, runner = heapq.heappop(heap)
            if runner.wake_gen != gen:
                self._stale -= 1
                continue
            runner.wake_entries -= 1
            self._invalidate(runner)  # its other entries go stale
            woken.append(runner)

    def catch_up(self, runner: R) -> None:
        """Replay to a parked bot the last trade and quote it skipped (``note_tick``)."""
        seen = runner.seen_seq
        if seen >= self.seq:
            return
        trade = self._last_trade if self._trade_seq > seen else None
        quote = self._last_quote if self._quote_seq > seen else None
        if trade is not None and quote is not None and self._quote_seq < self._trade_seq:
            runner.core.note_tick(quote)
            runner.core.note_tick(trade)
        else:
            if trade is not None:
                runner.core.note_tick(trade)
            if quote is not None:
                runner.core.note_tick(quote)
        runner.seen_seq = self.seq


def _rank(runner: Indexed) -> str:
    return runner.rank
