"""The real ``tradebus-marketdata`` process on the generic ccxt.pro feed (``TRADEBUS_FEED=ccxt``).

``TRADEBUS_CCXT_EXCHANGE=backpack`` with ccxt's URLs pointed at the local
Backpack exchange (:class:`~tests.support.backpack.server.BackpackServer`:
its REST answers ccxt's ``load_markets``, its WebSocket the ``SUBSCRIBE`` of
``watch_bids_asks`` / ``watch_trades_for_symbols``). The server prints
recorded ticks; what the bus carries is compared with the frames the server
actually sent: every trade exactly once and in order, quotes in order with
the server's exact decimal text (ccxt.pro keeps only the latest best bid/ask
per symbol, so a quote overtaken before ccxt hands it over may be skipped;
the last one never is).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_marketdata_live import TIMEOUT, Bus, Marketdata, metric, open_bus
from tests.support.backpack.server import BackpackServer
from tests.support.data import BTC_RAW, ETH_RAW, parse_ticks
from tests.support.services import eventually
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.readers import read_frames

SYMBOLS = ["BTC_USDC", "ETH_USDC"]
STREAMS = [f"{kind}.{s}" for s in SYMBOLS for kind in ("bookTicker", "trade")]
UNIFIED = {"BTC_USDC": "BTC/USDC", "ETH_USDC": "ETH/USDC"}
PER_SYMBOL = 300
"""Recorded ticks printed per symbol in each phase."""


@pytest.fixture(scope="module")
def recorded(data_dir: Path) -> dict[str, list[TradeTick | QuoteTick]]:
    """Recorded Binance BTCUSDT / ETHUSDT ticks, to be printed as BTC_USDC / ETH_USDC."""
    catalog = MarketCatalog.load(default_markets_path())
    out = {}
    for symbol, files in (("BTC_USDC", BTC_RAW), ("ETH_USDC", ETH_RAW)):
        frames = itertools.islice(read_frames(data_dir / files[0]), 4 * PER_SYMBOL)
        out[symbol] = parse_ticks(frames, catalog)[: 2 * PER_SYMBOL]
        assert len(out[symbol]) == 2 * PER_SYMBOL
        assert any(isinstance(t, TradeTick) for t in out[symbol][:PER_SYMBOL])
    return out


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await open_bus(nats_url)
    yield bus
    await bus.nc.close()


def ccxt_md(tmp_path: Path, nats_url: str, server: BackpackServer, **extra: str) -> Marketdata:
    """The service on ccxt.pro's backpack client, pointed at ``server``."""
    settings = {
        "TRADEBUS_FEED": "ccxt",
        "TRADEBUS_CCXT_EXCHANGE": "backpack",
        "TRADEBUS_CCXT_WS_URL": server.ws_url,
        "TRADEBUS_CCXT_REST_URL": server.url,
        "TRADEBUS_STALE_SECONDS": "60",  # no REST quotes in these comparisons
        **extra,
    }
    return Marketdata(tmp_path, nats_url, "ws://unused", ",".join(SYMBOLS), settings)


def served(server: BackpackServer, kind: str, symbol: str) -> list[tuple[Any, ...]]:
    """What the bus must carry for each frame first sent on ``<kind>.<symbol>``, in order."""
    out: list[tuple[Any, ...]] = []
    for frame in server.ws.history[(f"{kind}.{symbol}", None)]:
        d = json.loads(frame)["data"]
        ts = int(d["E"]) // 1000 * 1_000_000  # ccxt's timestamp: ms
        if kind == "bookTicker":
            out.append(("quote", symbol, d["b"], d["B"], d["a"], d["A"], d["u"], ts))
        else:
            aggressor = "sell" if d["m"] else "buy"
            out.append(("trade", symbol, d["p"], d["q"], str(d["t"]), aggressor, ts))
    return out


def published(bus: Bus, kind: str, symbol: str) -> list[tuple[Any, ...]]:
    """The ticks of ``md.<kind>.backpack.<symbol>``, as :func:`served` spells them."""
    assert not bus.errors, bus.errors
    out: list[tuple[Any, ...]] = []
    for subject, t in bus.ticks():
        if subject != f"md.{kind}.backpack.{symbol}":
            continue
        assert (t.venue, t.symbol, t.unified_symbol) == ("backpack", symbol, UNIFIED[symbol])
        if isinstance(t, QuoteTick):
            book = (str(t.bid), str(t.bid_size), str(t.ask), str(t.ask_size))
            out.append(("quote", symbol, *book, t.update_id, t.ts_event))
        else:
            trade = (str(t.price), str(t.size), t.trade_id, t.aggressor, t.ts_event)
            out.append(("trade", symbol, *trade))
    return out


def is_subsequence(part: list[Any], whole: list[Any]) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


def caught_up(bus: Bus, server: BackpackServer) -> bool:
    """Every served trade and each symbol's last served quote are on the bus."""
    for s in SYMBOLS:
        if len(published(bus, "trade", s)) < len(served(server, "trade", s)):
            return False
        quotes = served(server, "bookTicker", s)
        if quotes and quotes[-1] not in published(bus, "quote", s):
            return False
    return True


def progress(bus: Bus, server: BackpackServer, md: Marketdata) -> str:
    counts = {
        (k, s): (
            len(published(bus, k, s)),
            len(served(server, "bookTicker" if k == "quote" else k, s)),
        )
        for k in ("quote", "trade")
        for s in SYMBOLS
    }
    return f"(published, served): {counts}; {md.diagnostics()}"


def check(bus: Bus, server: BackpackServer) -> None:
    """Trades: all, once, in order. Quotes: in order, exact, none twice, the last one there."""
    for s in SYMBOLS:
        trades = served(server, "trade", s)
        assert trades and published(bus, "trade", s) == trades
        quotes, got = served(server, "bookTicker", s), published(bus, "quote", s)
        assert is_subsequence(got, quotes), (s, got[:3], quotes[:3])
        assert got[-1] == quotes[-1]
        assert len({q[6] for q in got}) == len(got)  # no update id twice
        assert len(got) >= len(quotes) // 2, "most quotes arrive"


async def print_ticks(server: BackpackServer, ticks: dict[str, list[Any]], part: slice) -> None:
    """Print the ``part`` of each symbol's recorded ticks, the symbols interleaved."""
    for pair in itertools.zip_longest(*(ticks[s][part] for s in SYMBOLS)):
        for symbol, tick in zip(SYMBOLS, pair, strict=True):
            if tick is not None:
                await server.feed(tick, symbol)


def subscribed(server: BackpackServer, connections: int) -> bool:
    return server.ws.accepted == connections and all(server.ws.subscribed(s) for s in STREAMS)


async def test_ccxt_feed_publishes_exact_ticks_once_across_a_dropped_connection(
    tmp_path: Path,
    nats_url: str,
    bus: Bus,
    recorded: dict[str, list[Any]],
) -> None:
    async with BackpackServer() as server:
        md = ccxt_md(tmp_path, nats_url, server)
        try:
            await eventually(
                lambda: subscribed(server, 1), TIMEOUT, "ccxt subscribed", md.diagnostics
            )
            t_start = time.time_ns()
            await print_ticks(server, recorded, slice(0, PER_SYMBOL))
            await eventually(
                lambda: caught_up(bus, server),
                TIMEOUT,
                "the first ticks",
                lambda: progress(bus, server, md),
            )
            check(bus, server)
            before = len(bus.messages)

            # the server resends each stream's last 40 frames to a new subscriber
            server.ws.resend_on_subscribe = 40
            assert server.drop_ws() == 1
            await eventually(
                lambda: subscribed(server, 2), TIMEOUT, "ccxt subscribed again", md.diagnostics
            )
            await print_ticks(server, recorded, slice(PER_SYMBOL, None))
            await eventually(
                lambda: caught_up(bus, server),
                TIMEOUT,
                "the ticks after the drop",
                lambda: progress(bus, server, md),
            )
            t_end = time.time_ns()
            await eventually(
                lambda: any(s.reconnects == 1 and s.connected for s in bus.statuses("backpack")),
                TIMEOUT,
                "a status counting 1 reconnect",
            )
            metrics = await md.metrics()
            assert await md.terminate() == 0, md.diagnostics()
        finally:
            md.kill()
    assert len(bus.messages) > before
    assert '"level":"error"' not in md.stderr(), md.stderr()
    check(bus, server)
    assert all(t_start <= t.ts_recv <= t.ts_init <= t_end for _, t in bus.ticks())
    resent = sum(
        1 for m in server.ws.received if isinstance(m, dict) and m.get("method") == "SUBSCRIBE"
    )
    assert resent >= 2  # subscribed on both connections
    assert metric(metrics, "tradebus_marketdata_reconnects_total", venue="backpack") == 1
    assert metric(metrics, "tradebus_marketdata_connected", venue="backpack") == 1
    assert metric(metrics, "tradebus_marketdata_parse_errors_total", venue="backpack") == 0
    dropped = sum(
        metric(
            metrics,
            "tradebus_marketdata_duplicates_dropped_total",
            venue="backpack",
            symbol=s,
            kind="trade",
        )
        for s in SYMBOLS
    )
    assert dropped > 0  # the resent trades reached the feed and were dropped there
    statuses = bus.statuses("backpack")
    assert statuses[-1].connected is False  # the last word on SIGTERM


async def test_a_stale_ccxt_symbol_is_polled_over_ccxt_rest(
    tmp_path: Path,
    nats_url: str,
    bus: Bus,
) -> None:
    async with BackpackServer() as server:
        extra = {"TRADEBUS_STALE_SECONDS": "0.5", "TRADEBUS_REST_POLL_SECONDS": "0.2"}
        md = ccxt_md(tmp_path, nats_url, server, **extra)
        try:
            await eventually(
                lambda: subscribed(server, 1), TIMEOUT, "ccxt subscribed", md.diagnostics
            )
            for s in SYMBOLS:
                await server.feed_quote(s, "10.01", "1", "10.03", "2")
            await eventually(lambda: len(bus.messages) == 2, TIMEOUT, "the streamed quotes")
            # the book moves while the stream is silent: only REST can tell
            server.exchange.book("BTC_USDC").quote = (
                Decimal("10.05"),
                Decimal("0.25"),
                Decimal("10.07"),
                Decimal("4"),
            )

            def rest_quote() -> bool:
                return any(
                    isinstance(t, QuoteTick) and t.bid == Decimal("10.05") for _, t in bus.ticks()
                )

            await eventually(rest_quote, TIMEOUT, "a REST quote of the moved book", md.diagnostics)
            await eventually(
                lambda: any("BTC_USDC" in s.stale_symbols for s in bus.statuses("backpack")),
                TIMEOUT,
                "a status naming BTC_USDC stale",
            )
            metrics = await md.metrics()
            assert await md.terminate() == 0, md.diagnostics()
        finally:
            md.kill()
    ticks = [t for _, t in bus.ticks()]
    rest = [t for t in ticks if isinstance(t, QuoteTick) and t.bid == Decimal("10.05")]
    assert len(rest) == 1  # de-duplicated against the polls that follow
    q = rest[0]
    assert (q.symbol, q.bid_size, q.ask, q.ask_size) == (
        "BTC_USDC",
        Decimal("0.25"),
        Decimal("10.07"),
        Decimal("4"),
    )
    ok = metric(
        metrics,
        "tradebus_marketdata_rest_polls_total",
        venue="backpack",
        symbol="BTC_USDC",
        result="ok",
    )
    assert ok >= 1
    assert (
        metric(
            metrics,
            "tradebus_marketdata_rest_quotes_published_total",
            venue="backpack",
            symbol="BTC_USDC",
        )
        == 1
    )
