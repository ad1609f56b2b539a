"""The paper fill model's rules as pure functions, and the recent market events they replay.

STRATEGIES.md, "Paper fill model" (trades only): an order is live from the
first market event after the one that caused it (rule 1); a passive limit
fills in full at its limit when a trade prints strictly through it (rule 2);
a marketable order fills at the next trade's price if within its limit
(rule 3); marketability is decided against the last trade price when the
order goes live.

:class:`RecentEvents` keeps the last market events of each symbol, so an
order that reaches the paper venue *after* later events (execution lagging
the feed) is still made live on the event right after its trigger and
filled by the trade that would have filled it: the fills do not depend on
how late execution saw the order (:meth:`PaperExchange.place`).
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from tradebus.common.messages import TradeTick
from tradebus.engine.paper.state import PaperOrder

RECENT_EVENTS = 20_000
"""Market events kept per symbol for late orders (at the recorded rates, minutes of data)."""

RecentEvent = tuple[int, TradeTick | None, Decimal | None]
"""``(ts_recv, the trade or None for a quote, the last trade price before this event)``."""


def is_marketable(order: PaperOrder, last_trade: Decimal | None) -> bool:
    """Rule 3's test, against the last trade price when the order goes live."""
    if order.order_type == "market" or order.price is None:
        return True
    if last_trade is None:
        return False
    return order.price >= last_trade if order.side == "buy" else order.price <= last_trade


def fill_price(order: PaperOrder, trade: Decimal) -> Decimal | None:
    """The price ``order`` fills at on a trade at ``trade``, or None (rules 2 and 3)."""
    limit = order.price
    if order.marketable:
        if limit is None:
            return trade
        within = trade <= limit if order.side == "buy" else trade >= limit
        return trade if within else None
    assert limit is not None
    crossed = trade < limit if order.side == "buy" else trade > limit
    return limit if crossed else None


class RecentEvents:
    """The last :data:`RECENT_EVENTS` market events of each symbol, in arrival order."""

    def __init__(self, size: int = RECENT_EVENTS) -> None:
        self._size = size
        self._events: dict[str, deque[RecentEvent]] = {}

    def add(self, symbol: str, ts_recv: int, trade: TradeTick | None, last: Decimal | None) -> None:
        """Remember an event (``last``: the last trade price before it)."""
        events = self._events.get(symbol)
        if events is None:
            events = self._events[symbol] = deque(maxlen=self._size)
        events.append((ts_recv, trade, last))

    def after(self, symbol: str, ts: int) -> list[RecentEvent]:
        """The remembered events of ``symbol`` received after ``ts`` (ns), oldest first."""
        events = self._events.get(symbol)
        if not events or events[-1][0] <= ts:
            return []
        out: list[RecentEvent] = []
        for event in reversed(events):
            if event[0] <= ts:
                break
            out.append(event)
        out.reverse()
        return out
