"""REST best bid/ask polling: the stand-in for a stale stream (seed 000, REST fallback).

One :class:`RestQuotePoller` per venue asks the venue's public REST endpoint
for one symbol's best bid and ask (Binance ``/api/v3/ticker/bookTicker``,
Backpack ``/api/v1/depth``; see the parsers) and returns a
:class:`~tradebus.common.messages.QuoteTick`. Failures (network, HTTP status,
bad body) return None and are counted; they are logged at most once per
:data:`LOG_EVERY_SECONDS` per symbol, since a dead venue fails every poll.
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
from tradebus.marketdata.parsing import Parser

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 30.0


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
            "REST best bid/ask requests while the stream is stale, by result (ok, error)",
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
    """

    def __init__(
        self,
        parser: Parser,
        url_for: Callable[[str], str],
        metrics: RestMetrics,
        timeout: float = 5.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._parser = parser
        self._url_for = url_for
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock_ns = clock_ns
        self._session: aiohttp.ClientSession | None = None
        self._logged: dict[str, float] = {}

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def poll(self, symbol: str) -> QuoteTick | None:
        """The venue's current best bid/ask of ``symbol``, or None if the request failed."""
        venue = self._parser.venue
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self._url_for(symbol)
        try:
            async with self._session.get(url) as response:
                body = await response.read()
                ts_recv = self._clock_ns()
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
        return tick
