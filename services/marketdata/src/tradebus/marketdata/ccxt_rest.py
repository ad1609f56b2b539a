"""REST fallback of the ccxt.pro feed: best bid/ask of a stale symbol over ccxt's REST.

``fetch_ticker`` first; where its ticker lacks a side (Backpack's ticker is
24 h statistics), the top of ``fetch_order_book``. The answer becomes a
quote frame of :mod:`tradebus.feeds.ccxt_parser` (without update id:
REST ids are not the stream's) and goes through the parser like the native
venues' REST answers (:class:`~tradebus.marketdata.rest.RestQuotePoller`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from tradebus.common.messages import QuoteTick
from tradebus.feeds.ccxt_parser import quote_frame
from tradebus.feeds.parsing import Parser
from tradebus.marketdata.ccxt_source import TRANSIENT
from tradebus.marketdata.rest import LOG_EVERY_SECONDS, RestMetrics

log = logging.getLogger(__name__)


class CcxtQuotePoller:
    """The REST fallback of a ccxt feed: best bid/ask of one symbol over ccxt REST.

    ``fetch_ticker`` first; where its ticker lacks a side (Backpack's ticker
    is 24 h statistics), the top of ``fetch_order_book``. Same interface as
    :class:`~tradebus.marketdata.rest.RestQuotePoller`.

    Parameters
    ----------
    exchange
        The feed's ccxt client (shared with :class:`CcxtSource`).
    parser
        The feed's parser (:class:`~tradebus.feeds.ccxt_parser.CcxtParser`).
    metrics
        Poll counters.
    clock_ns
        Receive-time clock (ns).
    """

    def __init__(
        self,
        exchange: Any,
        parser: Parser,
        metrics: RestMetrics,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._exchange = exchange
        self._parser = parser
        self._metrics = metrics
        self._clock_ns = clock_ns
        self._logged: dict[str, float] = {}

    async def close(self) -> None:
        """Close the ccxt client (idempotent)."""
        with contextlib.suppress(Exception):
            await self._exchange.close()

    async def poll(self, symbol: str) -> QuoteTick | None:
        """The current best bid/ask of native ``symbol``, or None if the request failed."""
        venue = self._parser.venue
        try:
            raw, ts_recv = await self._fetch(symbol)
            tick = self._parser.parse_rest_quote(raw, symbol, ts_recv, self._clock_ns())
        except (*TRANSIENT, ValueError, KeyError, msgspec.MsgspecError) as exc:
            self._metrics.polls.labels(venue=venue, symbol=symbol, result="error").inc()
            now = time.monotonic()
            if now - self._logged.get(symbol, -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
                self._logged[symbol] = now
                extra = {"symbol": symbol, "error": repr(exc)}
                log.warning("ccxt REST quote poll failed", extra=extra)
            return None
        self._metrics.polls.labels(venue=venue, symbol=symbol, result="ok").inc()
        return tick

    async def _fetch(self, symbol: str) -> tuple[bytes, int]:
        ex = self._exchange
        await ex.load_markets()
        unified = ex.markets_by_id[symbol][0]["symbol"]
        ticker = await ex.fetch_ticker(unified)
        ts_recv = self._clock_ns()
        if any(ticker.get(f) is None for f in ("bid", "bidVolume", "ask", "askVolume")):
            book = await ex.fetch_order_book(unified)
            ts_recv = self._clock_ns()
            if not book["bids"] or not book["asks"]:
                raise ValueError("empty order book side")
            (bid, bid_size, *_), (ask, ask_size, *_) = book["bids"][0], book["asks"][0]
            ticker = {"bid": bid, "bidVolume": bid_size, "ask": ask, "askVolume": ask_size,
                      "timestamp": book.get("timestamp")}  # fmt: skip
        return quote_frame(ex.id, symbol, ticker, ts_recv, update_id=False), ts_recv
