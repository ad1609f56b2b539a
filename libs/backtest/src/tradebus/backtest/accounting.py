"""A backtest's accounting: fills, positions, equity and drawdown, chart samples, summary.

:class:`Books` is the money side of a run (:class:`~.engine.Backtest` drives
it): it books each paper fill into a per-symbol
:class:`~tradebus.common.positions.CycleBook` (realized P&L per cycle of the
fill's intent id, STRATEGIES.md fill model rule 6), re-values the equity in the
primary market's quote asset on every new price (starting quote balance +
realized + unrealized P&L) and tracks its peak-to-trough drawdown, keeps the
chart samples (:data:`MAX_SAMPLES` at most) and builds ``summary.json``'s
figures. For the comparison figures (:mod:`tradebus.backtest.stats`) it also
keeps each closed cycle's realized P&L, the equity at the close of every UTC
day, the dates of the max drawdown's peak, trough and recovery, the time a
position was held, and each symbol's first price. A run's outputs come back
as a :class:`Result`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from tradebus.backtest import stats
from tradebus.backtest.setup import Setup
from tradebus.common.ids import cycle_of
from tradebus.common.markets import Market
from tradebus.common.messages import BotStatus, OrderFilled
from tradebus.common.money import ZERO
from tradebus.common.positions import CycleBook, Position, position_change

MAX_SAMPLES = 4096
"""Chart samples kept (the stride doubles when full, so memory stays flat)."""

EXTREMES_MARGIN = 1e-9
"""Relative margin (of the price) of :meth:`Books.extremes`' float comparisons."""


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


class Books:
    """The run's money: fills, positions, equity and drawdown, chart samples (quote asset).

    ``equity = initial quote + sum(qty_s * p_s) - k``, ``k`` the net cost of the
    open positions (cost + fees - realized P&L); the drawdown is tracked on it.
    """

    def __init__(self, setup: Setup) -> None:
        self.symbols = setup.symbols
        self.fills: list[Fill] = []
        self.books = {s: CycleBook() for s in setup.symbols}
        self.positions: dict[str, Position] = {s: b.total for s, b in self.books.items()}
        """Each symbol's position, the sum of its cycles (read only)."""
        quote = setup.markets[0].quote
        self.initial = setup.balances.get(quote, ZERO)
        self._k = -self.initial
        self._qty = {s: ZERO for s in setup.symbols}
        self.last: dict[str, Decimal | None] = {s: None for s in setup.symbols}
        """Each symbol's last price (None until it has one)."""
        self._peak: Decimal | None = None
        self._peak_ts: int | None = None
        self.equity = self.initial
        self.max_drawdown = ZERO
        self.drawdown_dates: tuple[int | None, int | None, int | None] = (None, None, None)
        """The max drawdown's (peak, trough, recovery) times, ns (recovery: equity back at
        the peak's; None while it is not)."""
        self._dd_peak = ZERO
        self.first: dict[str, Decimal | None] = {s: None for s in setup.symbols}
        """Each symbol's first price (trade, or quote mid before any trade)."""
        self.closed_cycles: dict[str, Decimal] = {}
        """Realized P&L (quote) per cycle id that closed, both legs of a spread round summed."""
        self.day_end = 0
        """The end (ns, 00:00 UTC) of the current day; the engine calls :meth:`new_day` at it."""
        self.day_closes: list[Decimal] = []
        """The equity at the close of each UTC day done (not the current one)."""
        self.first_ts: int | None = None
        self.held_ns = 0
        """Market time (ns) during which some symbol held a position (until the last fill)."""
        self._held_since: int | None = None
        self.samples = Sample()
        self.stride = 1
        """Sample every ``stride``-th event (doubles whenever the samples are full)."""
        self._pending: list[int | None] = []
        """Per sample (in step with :attr:`samples`): None, or the key of the price of a
        sample whose price and equity are still to be made (:meth:`sample_passed`)."""
        self._pending_state: list[tuple[Decimal, Decimal, Decimal] | None] = []
        """Per sample: ``(qty, -k, equity if flat)`` of a pending one (else None)."""

    def book(self, fill: OrderFilled, market: Market, ts: int) -> None:
        """Record one fill (its event; fee in ``market``'s quote asset) and apply it to its
        position."""
        moved, fee_quote = position_change(
            fill.side, fill.qty, fill.price, fill.fee, fill.fee_asset, market
        )
        fee = ZERO if fee_quote is None else fee_quote
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
        book = self.books[fill.symbol]
        open_before = dict(book.cycles)
        book.apply(cycle_of(fill.intent_id), fill.side, moved, fill.price, fee)
        self._k += position.open_cost + position.open_fees - position.realized_pnl - before_k
        self._qty[fill.symbol] = position.qty
        for key, cycle in open_before.items():
            if book.cycles.get(key) is not cycle:  # went flat (and maybe opened again)
                self.closed_cycles[key] = self.closed_cycles.get(key, ZERO) + cycle.realized_pnl
        held = any(self._qty.values())
        if held and self._held_since is None:
            self._held_since = ts
        elif not held and self._held_since is not None:
            self.held_ns += ts - self._held_since
            self._held_since = None

    def mark(self, symbol: str, price: Decimal, filled: bool, ts: int = 0) -> None:
        """A new price of ``symbol`` at ``ts`` (ns; after its fills): re-value and track the
        drawdown."""
        last = self.last
        before = last[symbol]
        same = price is before  # the very object: the same value, written the same way
        last[symbol] = price
        if before is None:
            self.first[symbol] = price
        if not filled and self._peak is not None and (same or not self._qty[symbol]):
            return  # the same price, or flat in this symbol: the equity does not move
        self._revalue(ts)

    def new_day(self, ts: int) -> None:
        """The first event at or after :attr:`day_end` (or the run's first): close the day."""
        if self.first_ts is None:
            self.first_ts = ts
        else:
            self.day_closes.append(self.equity)
        self.day_end = (ts // stats.DAY_NS + 1) * stats.DAY_NS

    def _revalue(self, ts: int) -> None:
        equity = -self._k
        for s, qty in self._qty.items():
            if qty:
                p = self.last[s]
                if p is not None:
                    equity += qty * p
        self.equity = equity
        if self._peak is None or equity > self._peak:
            self._peak = equity
            self._peak_ts = ts
        elif self._peak - equity > self.max_drawdown:
            self.max_drawdown = self._peak - equity
            self._dd_peak = self._peak
            self.drawdown_dates = (self._peak_ts, ts, None)
        dates = self.drawdown_dates
        if dates[1] is not None and dates[2] is None and equity >= self._dd_peak:
            self.drawdown_dates = (dates[0], dates[1], ts)

    def sample(self, ts: int, force: bool = False) -> None:
        """Take a chart sample at ``ts`` (``force``: the last one, unless ``ts`` has one)."""
        sm = self.samples
        if len(sm.ts) >= MAX_SAMPLES:
            self._halve()
        if force and sm.ts and sm.ts[-1] == ts:
            return
        sm.ts.append(ts)
        sm.prices.append(tuple(self.last.values()))
        sm.equity.append(self.equity)
        sm.position.append(self._qty[self.symbols[0]])
        self._pending.append(None)
        self._pending_state.append(None)

    def _halve(self) -> None:
        sm = self.samples
        for series in (
            sm.ts,
            sm.prices,
            sm.equity,
            sm.position,
            self._pending,
            self._pending_state,
        ):
            del series[1::2]
        self.stride *= 2

    def sample_passed(
        self,
        first: int,
        last: int,
        ts: npt.NDArray[np.int64],
        keys: npt.NDArray[np.int64],
        base: int,
    ) -> None:
        """The samples :meth:`sample` would take at the events counted ``first..last``
        (1-based counts of the run; events that fill nothing, while the equity moves only
        with the price of the single symbol), taken at once.

        The event counted ``c`` is at ``ts[c - base]`` (ns) and its last trade price is
        known by ``keys[c - base]``, which :meth:`resolve` turns into the price; the
        price and equity of the samples kept are made there: the equity
        ``-k + qty * price`` (the current one when flat) is what :meth:`_revalue`
        computes at that event.
        """
        sm = self.samples
        qty = self._qty[self.symbols[0]]
        state = (qty, -self._k, self.equity)
        c = first - 1
        while True:
            stride = self.stride
            nxt = (c // stride + 1) * stride
            if nxt > last:
                return
            if len(sm.ts) >= MAX_SAMPLES:
                self._halve()  # as sample() does: then this sample is taken all the same
                top = nxt
            else:
                top = min(last, nxt + (MAX_SAMPLES - len(sm.ts) - 1) * stride)
            picked = slice(nxt - base, top - base + 1, stride)
            taken = ts[picked].tolist()
            many = len(taken)
            sm.ts.extend(taken)
            sm.prices.extend([()] * many)  # made by resolve()
            sm.equity.extend([ZERO] * many)
            sm.position.extend([qty] * many)
            self._pending.extend(keys[picked].tolist())
            self._pending_state.extend([state] * many)
            c = top

    def resolve(self, prices_of: Callable[[list[int]], list[Decimal]]) -> None:
        """Make the samples :meth:`sample_passed` left pending; ``prices_of(keys)`` gives
        the prices of their keys (the same object for the same price: the equity is
        computed once per price and state)."""
        sm = self.samples
        pending, states = self._pending, self._pending_state
        at = [n for n, key in enumerate(pending) if key is not None]
        if not at:
            return
        prices = prices_of([pending[n] for n in at])  # type: ignore[misc]
        made: dict[tuple[int, int], Decimal] = {}  # (state, price) -> equity: prices repeat
        for n, price in zip(at, prices, strict=True):
            state = states[n]
            qty, neg_k, flat = state  # type: ignore[misc]
            sm.prices[n] = (price,)
            if qty:
                key = (id(state), id(price))
                equity = made.get(key)
                if equity is None:
                    equity = neg_k
                    equity += qty * price
                    made[key] = equity
                sm.equity[n] = equity
            else:
                sm.equity[n] = flat
        self._pending = [None] * len(pending)
        self._pending_state = [None] * len(states)

    def extremes(
        self,
        symbol: str,
        prices: npt.NDArray[np.float64],
        ranks: npt.NDArray[np.int64],
        index: npt.NDArray[np.int64],
    ) -> list[int]:
        """Which of some trades of ``symbol`` (events ``index``, in order; none fills) can
        move the peak, the max drawdown or its recovery: :meth:`mark` need see only those
        (and the last) to end in the state it ends in seeing them all.

        ``prices`` are the trades' prices as floats and ``ranks`` their exact order
        (equal prices, equal ranks; a negative rank: unknown, every trade is returned).
        With the position fixed the equity ``-k + qty * price`` is monotonic in the price,
        so in price units (``v = price``, or ``-price`` if short) an event can matter
        only if

        * ``v`` is above every earlier one of the trades (strictly: an equal one was
          seen first) and reaches the peak, or the peak of a pending recovery;
        * ``v`` is below every earlier one since the last such maximum (strictly) and
          its drop from the running peak reaches the running max drawdown; of several
          such in one stretch between maxima only the last is needed: each is lower
          than the one before under the same peak (none of them can be a peak or a
          recovery), so the last one's drawdown replaces theirs.

        The comparisons with the books' Decimal figures are in floats with a margin of
        :data:`EXTREMES_MARGIN` of the price, so the set holds every event that matters.
        """
        qty = self._qty[symbol]
        if not qty or self._peak is None or prices.size == 0 or int(ranks.min()) < 0:
            return index.tolist()
        q = float(abs(qty))
        c = float(-self._k)
        v = -prices if qty < 0 else prices
        r = -ranks if qty < 0 else ranks
        r = r - r.min()
        m = EXTREMES_MARGIN * float(np.max(np.abs(prices))) + 1e-300
        prior = np.empty_like(r)
        prior[0] = -1
        np.maximum.accumulate(r[:-1], out=prior[1:])
        is_max = r > prior
        threshold = (float(self._peak) - c) / q
        dates = self.drawdown_dates
        if dates[1] is not None and dates[2] is None:  # a recovery pending
            threshold = min(threshold, (float(self._dd_peak) - c) / q)
        keep = is_max & (v >= threshold - m)
        segment = np.cumsum(is_max)
        u = segment * (int(r.max()) + 1) - r  # lower since the last maximum
        prior_u = np.empty_like(u)
        prior_u[0] = -1
        np.maximum.accumulate(u[:-1], out=prior_u[1:])
        is_low = u > prior_u
        drop = np.maximum(np.maximum.accumulate(v), (float(self._peak) - c) / q) - v
        record = np.empty_like(drop)
        record[0] = float(self.max_drawdown) / q
        np.maximum(np.maximum.accumulate(drop[:-1]), record[0], out=record[1:])
        deeper = np.flatnonzero(is_low & (drop >= record - m))
        if deeper.size > 1:  # of those in one segment, the last overrides the others
            within = segment[deeper]
            deeper = deeper[np.append(within[1:] != within[:-1], True)]
        keep[deeper] = True
        return index[keep].tolist()

    def summary(
        self,
        *,
        strategy: str,
        status: BotStatus,
        events: int,
        trades: int,
        placed: int,
        rejected: int,
        open_orders: int,
        last_ts: int | None,
        elapsed: float,
    ) -> dict[str, Any]:
        """The run's figures (``summary.json``); money and quantities as decimal strings."""
        symbols = self.symbols
        single = len(symbols) == 1

        def per_symbol(values: dict[str, Decimal]) -> str | dict[str, str]:
            return str(values[symbols[0]]) if single else {s: str(v) for s, v in values.items()}

        pos = self.positions
        last = self.last
        unrealized = sum(
            (p.unrealized_pnl(mark) for s, p in pos.items() if (mark := last[s]) is not None),
            ZERO,
        )
        realized = sum((p.realized_pnl for p in pos.values()), ZERO)
        final_equity = self.initial + realized + unrealized
        return {
            "strategy": strategy,
            "symbols": list(symbols),
            "events": events,
            "trades": trades,
            "quotes": events - trades,
            "fills": len(self.fills),
            "orders_placed": placed,
            "orders_rejected": rejected,
            "open_orders": open_orders,
            "buy_qty": per_symbol({s: p.bought_qty for s, p in pos.items()}),
            "sell_qty": per_symbol({s: p.sold_qty for s, p in pos.items()}),
            "buy_quote": str(sum((p.bought_notional for p in pos.values()), ZERO)),
            "sell_quote": str(sum((p.sold_notional for p in pos.values()), ZERO)),
            "fees": str(sum((p.fees for p in pos.values()), ZERO)),
            "realized_pnl": str(realized),
            "unrealized_pnl": str(unrealized),
            "final_position": per_symbol({s: p.qty for s, p in pos.items()}),
            "final_price": per_symbol({s: v for s, v in last.items() if v is not None})
            if all(v is not None for v in last.values())
            else None,
            "final_equity": str(final_equity),
            "max_drawdown": str(self.max_drawdown),
            "cycles_completed": status.cycles_completed,
            "phase": status.phase,
            "error": status.error,
            "first_ts": self.samples.ts[0] if self.samples.ts else None,
            "last_ts": last_ts,
            "elapsed_seconds": round(elapsed, 6),
            "events_per_second": round(events / elapsed) if elapsed > 0 else None,
            **self.comparison(final_equity, last_ts),
        }

    def comparison(self, final_equity: Decimal, last_ts: int | None) -> dict[str, Any]:
        """The figures runs are compared by (:mod:`tradebus.backtest.stats` defines each):
        ratios as floats (rounded), money as decimal strings, times as ns (None: n/a)."""
        open_cycles = set().union(*(b.cycles for b in self.books.values()))
        pnls = [p for c, p in self.closed_cycles.items() if c not in open_cycles]
        cycles = stats.cycle_stats(pnls)
        first_ts = self.first_ts
        days = stats.span_days(first_ts, last_ts)
        returns = stats.daily_returns(
            float(self.initial), [float(e) for e in [*self.day_closes, final_equity]]
        )
        long_enough = days >= stats.MIN_DAYS
        held = self.held_ns
        if self._held_since is not None and last_ts is not None:
            held += last_ts - self._held_since
        primary = self.symbols[0]
        bh_equity, bh_return = stats.buy_and_hold(
            self.initial, self.first[primary], self.last[primary]
        )
        peak, trough, recovery = self.drawdown_dates
        dd_pct = self.max_drawdown / self._dd_peak * 100 if self._dd_peak > 0 else None
        return {
            "initial_equity": str(self.initial),
            "return_pct": _pct(
                (final_equity / self.initial - 1) * 100 if self.initial > 0 else None
            ),
            "cycles_closed": cycles.closed,
            "cycles_won": cycles.won,
            "win_rate_pct": _round(None if cycles.win_rate is None else cycles.win_rate * 100),
            "gross_profit": str(cycles.gross_profit),
            "gross_loss": str(cycles.gross_loss),
            "profit_factor": _round(cycles.profit_factor),
            "days": round(days, 4),
            "daily_returns": len(returns),
            "sharpe": _round(stats.sharpe(returns)) if long_enough else None,
            "sortino": _round(stats.sortino(returns)) if long_enough else None,
            "max_drawdown_pct": _pct(dd_pct),
            "max_drawdown_peak_ts": peak,
            "max_drawdown_trough_ts": trough,
            "max_drawdown_recovery_ts": recovery,
            "exposure_pct": _round(stats.exposure_pct(held, first_ts, last_ts)),
            "buy_and_hold_symbol": primary,
            "buy_and_hold_first_price": _text(self.first[primary]),
            "buy_and_hold_last_price": _text(self.last[primary]),
            "buy_and_hold_equity": _text(bh_equity),
            "buy_and_hold_return_pct": _pct(bh_return),
        }


def _round(value: float | None, places: int = 4) -> float | None:
    return None if value is None else round(value, places)


def _pct(value: Decimal | None) -> float | None:
    """A percentage from Decimal money figures, as a float of 4 decimals."""
    return None if value is None else round(float(value), 4)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def encode_summary(summary: dict[str, Any]) -> bytes:
    """``summary.json``'s bytes (sorted keys, indented)."""
    return msgspec.json.format(msgspec.json.encode(summary, order="sorted"), indent=2) + b"\n"
