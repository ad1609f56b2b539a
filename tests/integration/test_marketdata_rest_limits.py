"""The REST fallback backs off when the venue answers 429, as the venue asks.

A local HTTP server speaks Binance's ``/api/v3/ticker/bookTicker``: it
answers 429 (with or without ``Retry-After``) a given number of times, then
the quote. The poller must send nothing while paused and poll again after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from functools import partial

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.feeds.binance import BinanceParser, rest_quote_url
from tradebus.marketdata.rest import RATE_LIMIT_FIRST_SECONDS, RestMetrics, RestQuotePoller

QUOTE = (
    b'{"symbol":"BTCUSDT","bidPrice":"60000.10","bidQty":"1.5","askPrice":"60000.20","askQty":"2"}'
)


class BookTicker:
    """Answers ``limited`` 429s (``Retry-After: retry_after`` if set), then the quote."""

    def __init__(self) -> None:
        self.limited = 0
        self.retry_after: str | None = None
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.limited > 0:
            self.limited -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=429, headers=headers, text='{"code":-1003}')
        return web.Response(body=QUOTE, content_type="application/json")


@pytest.fixture
async def venue() -> AsyncIterator[tuple[BookTicker, str]]:
    handler = BookTicker()
    app = web.Application()
    app.router.add_get("/api/v3/ticker/bookTicker", handler.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield handler, f"http://127.0.0.1:{port}"
    await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def poller(url: str, clock: Clock) -> RestQuotePoller:
    parser = BinanceParser(MarketCatalog.load(default_markets_path()))
    metrics = RestMetrics(CollectorRegistry())
    return RestQuotePoller(parser, partial(rest_quote_url, url), metrics, monotonic=clock)


async def test_retry_after_is_honoured(venue: tuple[BookTicker, str]) -> None:
    server, url = venue
    server.limited, server.retry_after = 1, "7"
    clock = Clock()
    p = poller(url, clock)
    try:
        assert await p.poll("BTCUSDT") is None and server.requests == 1
        assert p.paused_for == 7
        clock.now += 6.9
        assert await p.poll("BTCUSDT") is None and server.requests == 1  # nothing sent
        clock.now += 0.2
        tick = await p.poll("BTCUSDT")
        assert tick is not None and server.requests == 2
        assert (tick.bid, tick.ask) == (D("60000.10"), D("60000.20"))
    finally:
        await p.close()


async def test_without_retry_after_the_pause_doubles_then_resets(
    venue: tuple[BookTicker, str],
) -> None:
    server, url = venue
    server.limited = 3
    clock = Clock()
    p = poller(url, clock)
    try:
        pauses = []
        for _ in range(3):
            assert await p.poll("BTCUSDT") is None
            pauses.append(p.paused_for)
            clock.now += p.paused_for
        first = RATE_LIMIT_FIRST_SECONDS
        assert pauses == [first, 2 * first, 4 * first] and server.requests == 3
        assert await p.poll("BTCUSDT") is not None  # and the next 429 starts over
        server.limited = 1
        assert await p.poll("BTCUSDT") is None and p.paused_for == first
    finally:
        await p.close()
