"""Each market's recent prices, as the bots' status changes carry them: the line of the
web page's price chart.

The strategy hosts publish every bot's status (``bot.status.<user>.<bot>``,
:class:`~tradebus.common.messages.BotStatusChanged`) at most about once a
second per bot while only its price moves, with ``last_price`` and the market
time of the tick behind it (``price_ts``). The gateway's event hub sees them
all (:class:`~tradebus.gateway.events.EventHub`) and hands each to
:meth:`MarketPrices.see`, which keeps, per market, the points whose market time
moved forward: a bounded trail (:data:`POINTS_PER_MARKET`, the oldest dropped
first), in memory, since the gateway started. Several bots on one market
thicken the same trail; a market no bot runs on has none. Spread bots report
no single price and add nothing.

Memory: a point is two Python objects (~100 bytes); 10,000 points per market,
a few MB for a few dozen markets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal

from tradebus.common.messages import BotStatus

POINTS_PER_MARKET = 10_000
"""Points kept per market (about 3 hours at one a second)."""

Point = tuple[int, Decimal]
"""``(market time in ns, price)``."""


class MarketPrices:
    """Per-market price trails built from bot statuses (module docstring).

    Parameters
    ----------
    known
        ``(venue, symbol) -> bool``: only markets it accepts get a trail (the
        markets file), so a status cannot grow memory under made-up names.
    limit
        Points kept per market.
    """

    def __init__(self, known: Callable[[str, str], bool], limit: int = POINTS_PER_MARKET) -> None:
        self._known = known
        self._limit = limit
        self._trails: dict[tuple[str, str], deque[Point]] = {}

    def see(self, status: BotStatus) -> None:
        """Add the status's price if it is newer (market time) than the market's last point."""
        price, at = status.last_price, status.price_ts
        if price is None or at is None:
            return
        key = (status.venue, status.symbol)
        trail = self._trails.get(key)
        if trail is None:
            if not self._known(*key):
                return
            trail = self._trails[key] = deque(maxlen=self._limit)
        if trail and at <= trail[-1][0]:
            return  # another bot of the market, or a repeat: nothing new
        trail.append((at, price))

    def trail(self, venue: str, symbol: str, since_ns: int | None = None) -> list[Point]:
        """The market's points, oldest first; only those at or after ``since_ns`` when given."""
        points = self._trails.get((venue, symbol))
        if not points:
            return []
        if since_ns is None:
            return list(points)
        return [p for p in points if p[0] >= since_ns]
