"""REST best bid/ask polling: the stand-in for a stale stream (seed 000, REST fallback).

One :class:`RestQuotePoller` per venue asks the venue's public REST endpoint
for one symbol's best bid and ask (Binance ``/api/v3/ticker/bookTicker``,
Backpack ``/api/v1/depth``; see the parsers) and returns a
:class:`~tradebus.common.messages.QuoteTick`. Failures (network, HTTP status,
bad body) return None and are counted; they are logged at most once per
:data:`LOG_EVERY_SECONDS` per symbol, since a dead venue fails every poll.

A venue that answers 429 (or Binance's 418, "IP banned for a while") is not
asked again until its ``Retry-After`` has passed, or, without one, for a
back-off that doubles from :data:`RATE_LIMIT_FIRST_SECONDS` up to
:data:`RATE_LIMIT_MAX_SECONDS` (Binance REST docs, "LIMITS": a client that
keeps sending after a 429 is banned). Polls in that time return None at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp
import msgspec
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from tradebus.common.messages import QuoteTick
from tradebus.feeds.parsing import Parser

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 30.0
RATE_LIMIT_FIRST_SECONDS = 1.0
RATE_LIMIT_MAX_SECONDS = 120.0
RATE_LIMITED = (429, 418)


class QuotePoller(Protocol):
    """What the live feed's REST fallback needs (:class:`RestQuotePoller`,
    :class:`~tradebus.marketdata.ccxt_rest.CcxtQuotePoller`)."""

    async def poll(self, symbol: str) -> QuoteTick | None:
        """The current best bid/ask of native ``symbol``; None if the request failed."""
        ...

    async def close(self) -> None:
        """Release the connection (idempotent)."""
        ...


class RestMetrics:
    """Counters of REST polling (``tradebus_marketdata_rest_*``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = PromCounter(
            "tradebus_marketdata_rest_polls",
            "REST best bid/ask polls while the stream is stale, by result"
            " (ok, error, paused: not sent during a 429 pause)",
            ["venue", "symbol", "result"],
            registry=registry,
        )


class RestQuotePoller:
    """Ask a venue's REST API for the best bid/ask of a symbol.

    Parameters
    ----------
    parser
        The venue's parser (``parse_rest_quote``).
    url_for
        ``symbol -> URL`` of the venue's endpoint.
    metrics
        Poll counters.
    timeout
        Whole-request timeout, seconds.
    clock_ns
        Receive-time clock (ns).
    monotonic
        Clock of the rate-limit pauses (seconds).
    """

    def __init__(
        self,
        parser: Parser,
        url_for: Callable[[str], str],
        metrics: RestMetrics,
        timeout: float = 5.0,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._parser = parser
        self._url_for = url_for
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock_ns = clock_ns
        self._session: aiohttp.ClientSession | None = None
        self._logged: dict[str, float] = {}
        self._monotonic = monotonic
        self._quiet_until = 0.0
        self._penalty = 0.0

    @property
    def paused_for(self) -> float:
        """Seconds before the venue may be asked again after a 429 (0 when not paused)."""
        return max(0.0, self._quiet_until - self._monotonic())

    def _rate_limited(self, retry_after: str | None) -> float:
        """Pause every poll of the venue; returns the pause in seconds."""
        try:
            seconds = float(retry_after) if retry_after is not None else None
        except ValueError:
            seconds = None
        if seconds is None or not seconds > 0:
            self._penalty = min(
                RATE_LIMIT_MAX_SECONDS, max(RATE_LIMIT_FIRST_SECONDS, self._penalty * 2)
            )
            seconds = self._penalty
        self._quiet_until = self._monotonic() + seconds
        return seconds

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def poll(self, symbol: str) -> QuoteTick | None:
        """The venue's current best bid/ask of ``symbol``, or None if the request failed."""
        venue = self._parser.venue
        if self.paused_for > 0:
            self._metrics.polls.labels(venue=venue, symbol=symbol, result="paused").inc()
            return None
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self._url_for(symbol)
        try:
            async with self._session.get(url) as response:
                body = await response.read()
                ts_recv = self._clock_ns()
                if response.status in RATE_LIMITED:
                    pause = self._rate_limited(response.headers.get("Retry-After"))
                    raise ValueError(f"HTTP {response.status}: rate limited; pausing {pause:g} s")
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}: {body[:200]!r}")
            tick = self._parser.parse_rest_quote(body, symbol, ts_recv, self._clock_ns())
        except (
            aiohttp.ClientError,
            TimeoutError,
            OSError,
            ValueError,
            msgspec.MsgspecError,
        ) as exc:
            self._metrics.polls.labels(venue=venue, symbol=symbol, result="error").inc()
            now = time.monotonic()
            if now - self._logged.get(symbol, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
                self._logged[symbol] = now
                log.warning(
                    "REST quote poll failed",
                    extra={"venue": venue, "symbol": symbol, "url": url, "error": repr(exc)},
                )
            return None
        self._metrics.polls.labels(venue=venue, symbol=symbol, result="ok").inc()
        self._penalty = 0.0
        return tick
