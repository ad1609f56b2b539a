"""Health of one venue's live feed: connected, stale symbols, last message age, reconnects.

A symbol is *stale* when its stream has sent nothing for ``stale_seconds``
(seed 000, "stale feed"): no quote and no trade, counted from its last
message, or from the start of the feed if it never had one. It stops being
stale at the next stream message for it. Staleness is per symbol because one
connection serves every symbol of the venue and a quiet market can go silent
while the others flow.

State goes to Prometheus (gauges below) and to :meth:`FeedHealth.status`,
the :class:`~tradebus.common.messages.FeedStatus` published on
``feed.status.<venue>``. :attr:`FeedHealth.changed` is set on every change
(connect, disconnect, a symbol turning stale or fresh) so the status is
published at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from tradebus.common.messages import FeedStatus

log = logging.getLogger(__name__)


class HealthMetrics:
    """Per-symbol feed state gauges (``tradebus_marketdata_*``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.stale = Gauge(
            "tradebus_marketdata_stale",
            "1 while the symbol's stream is stale (REST polling stands in)",
            ["venue", "symbol"],
            registry=registry,
        )
        self.last_message_age = Gauge(
            "tradebus_marketdata_last_message_age_seconds",
            "Seconds since the symbol's last stream message (since start if none)",
            ["venue", "symbol"],
            registry=registry,
        )


class FeedHealth:
    """Tracks one venue's connection and the staleness of each symbol.

    Parameters
    ----------
    venue
        Venue name (metric label, status subject token).
    symbols
        Native symbols of the feed.
    stale_seconds
        Silence after which a symbol is stale, seconds (> 0).
    metrics
        Gauges to keep current; the age gauge is computed at scrape time.
    monotonic, clock_ns
        Clocks (``time.monotonic`` seconds, ``time.time_ns`` ns); injectable for tests.
    """

    def __init__(
        self,
        venue: str,
        symbols: list[str],
        stale_seconds: float,
        metrics: HealthMetrics,
        monotonic: Callable[[], float] = time.monotonic,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if not stale_seconds > 0:
            raise ValueError(f"stale_seconds must be > 0, got {stale_seconds}")
        self.venue = venue
        self.stale_seconds = stale_seconds
        self._monotonic = monotonic
        self._clock_ns = clock_ns
        self._gap_start: int | None = None
        self.last_gap: list[int] = []
        """``[lost_ns, back_ns]`` of the last disconnection (empty if none yet)."""
        start = monotonic()
        self._last: dict[str, float] = dict.fromkeys(symbols, start)
        self.stale: set[str] = set()
        """Symbols stale now."""
        self.connected = False
        self.reconnects = 0
        self.changed = asyncio.Event()
        """Set on every change of state; the status publisher clears it."""
        self._stale_gauges = {s: metrics.stale.labels(venue=venue, symbol=s) for s in symbols}
        for symbol, gauge in self._stale_gauges.items():
            gauge.set(0)
            metrics.last_message_age.labels(venue=venue, symbol=symbol).set_function(
                functools.partial(self.age, symbol)
            )

    # -- events ------------------------------------------------------------

    def on_connect(self) -> None:
        """The WebSocket is open (and subscribed)."""
        self.connected = True
        self.changed.set()

    def on_disconnect(self) -> None:
        """The WebSocket was lost: a gap in the stream starts now."""
        self.connected = False
        if self._gap_start is None:
            self._gap_start = self._clock_ns()
        self.changed.set()

    def on_reconnect(self) -> None:
        """A lost connection was re-established: the gap is marked (:attr:`last_gap`)."""
        self.reconnects += 1
        if self._gap_start is not None:
            self.last_gap = [self._gap_start, self._clock_ns()]
            self._gap_start = None

    def saw(self, symbol: str) -> None:
        """The stream delivered a message for ``symbol`` (duplicates included)."""
        if symbol not in self._last:
            return
        self._last[symbol] = self._monotonic()
        if symbol in self.stale:
            self.stale.discard(symbol)
            self._stale_gauges[symbol].set(0)
            log.info("stream back", extra={"venue": self.venue, "symbol": symbol})
            self.changed.set()

    def check(self) -> list[str]:
        """Mark symbols silent for longer than ``stale_seconds``; return the newly stale."""
        now = self._monotonic()
        newly = [
            s
            for s, last in self._last.items()
            if s not in self.stale and now - last > self.stale_seconds
        ]
        for symbol in newly:
            self.stale.add(symbol)
            self._stale_gauges[symbol].set(1)
            log.warning(
                "stream stale",
                extra={
                    "venue": self.venue,
                    "symbol": symbol,
                    "silent_seconds": now - self._last[symbol],
                },
            )
        if newly:
            self.changed.set()
        return newly

    # -- state ---------------------------------------------------------------

    def age(self, symbol: str) -> float:
        """Seconds since the last stream message of ``symbol`` (since start if none)."""
        return max(0.0, self._monotonic() - self._last[symbol])

    def status(self) -> FeedStatus:
        """The current state as a bus message (ages rounded to milliseconds)."""
        return FeedStatus(
            venue=self.venue,
            connected=self.connected,
            stale=bool(self.stale),
            stale_symbols=sorted(self.stale),
            last_message_age={s: round(self.age(s), 3) for s in self._last},
            reconnects=self.reconnects,
            last_gap=list(self.last_gap),
            ts_event=self._clock_ns(),
        )
