"""A stalled stream: stale after ``TRADEBUS_STALE_SECONDS``, REST polling meanwhile, then back.

The real ``tradebus-marketdata`` process runs against a local venue server
(Binance or Backpack protocol) that stops sending for a few seconds in the
middle of the recorded data, keeping the connection open. Meanwhile the
server's REST endpoint reports the market's current book (the next quote the
stream has not sent). The bus must then carry, per symbol, exactly the
sequence of books the venue had, one of them from REST, none twice; every
trade once; and the status subject and the metrics must say stale, then not.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.test_marketdata_live import TIMEOUT, Bus, Marketdata, metric, open_bus
from tests.support.backpack_ws import BackpackWsServer
from tests.support.binance_ws import BinanceWsServer
from tests.support.data import raw_feed_files
from tests.support.services import eventually
from tradebus.common.messages import QuoteTick, TradeTick

STALE_SECONDS = 0.5
STALL_SECONDS = 3.0
Book = tuple[Decimal, Decimal, Decimal, Decimal]


@dataclass(frozen=True)
class Venue:
    name: str
    server: type[BinanceWsServer]
    symbols: list[str]
    streams: list[str]
    quote_kind: str  # the quote stream's kind in frames

    def settings(self, server: BinanceWsServer) -> dict[str, str]:
        key = self.name.upper()
        return {
            "TRADEBUS_FEED": self.name,
            f"TRADEBUS_{key}_WS_URL": server.url,
            f"TRADEBUS_{key}_REST_URL": server.rest_url,
            "TRADEBUS_STALE_SECONDS": str(STALE_SECONDS),
            "TRADEBUS_REST_POLL_SECONDS": "0.1",
            "TRADEBUS_STATUS_SECONDS": "0.5",
        }

    def parse(self, frame: str) -> tuple[str, str, dict]:
        """``(symbol, "quote"|"trade", data)`` of a served frame."""
        envelope = json.loads(frame)
        d = envelope["data"]
        return d["s"], "quote" if self.quote_kind in envelope["stream"] else "trade", d


BINANCE = Venue(
    "binance",
    BinanceWsServer,
    ["BTCUSDT", "ETHUSDT"],
    [f"{s}@{k}" for s in ("btcusdt", "ethusdt") for k in ("bookTicker", "trade")],
    "@bookTicker",
)
BACKPACK = Venue(
    "backpack",
    BackpackWsServer,
    ["BTC_USDC", "ETH_USDC"],
    [f"{k}.{s}" for s in ("BTC_USDC", "ETH_USDC") for k in ("bookTicker", "trade")],
    "bookTicker.",
)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await open_bus(nats_url)
    yield bus
    await bus.nc.close()


def books_and_trades(
    venue: Venue, frames: list[str]
) -> tuple[dict[str, list[Book]], dict[str, list[str]]]:
    """Per symbol: the books of the quote frames, the ids of the trade frames, in order."""
    books: dict[str, list[Book]] = {s: [] for s in venue.symbols}
    trades: dict[str, list[str]] = {s: [] for s in venue.symbols}
    for frame in frames:
        symbol, kind, d = venue.parse(frame)
        if kind == "quote":
            books[symbol].append(tuple(Decimal(d[k]) for k in ("b", "B", "a", "A")))  # type: ignore[arg-type]
        else:
            trades[symbol].append(str(d["t"]))
    return books, trades


def on_bus(
    ticks: list[tuple[str, QuoteTick | TradeTick]], symbols: list[str]
) -> tuple[dict[str, list[Book]], dict[str, list[str]]]:
    books: dict[str, list[Book]] = {s: [] for s in symbols}
    trades: dict[str, list[str]] = {s: [] for s in symbols}
    for _, t in ticks:
        if isinstance(t, QuoteTick):
            books[t.symbol].append((t.bid, t.bid_size, t.ask, t.ask_size))
        else:
            trades[t.symbol].append(t.trade_id)
    return books, trades


@pytest.mark.parametrize("venue", [BINANCE, BACKPACK], ids=lambda v: v.name)
async def test_stall_goes_stale_polls_rest_and_comes_back(
    tmp_path: Path, nats_url: str, bus: Bus, data_dir: Path, venue: Venue
) -> None:
    limit, stall_after = 1000, 500
    server = venue.server(
        raw_feed_files(data_dir),
        limit=limit,
        stall_after=stall_after,
        stall_seconds=STALL_SECONDS,
    )
    async with server:
        md = Marketdata(
            tmp_path, nats_url, server.url, ",".join(venue.symbols), venue.settings(server)
        )

        def stale_status() -> bool:
            return any(set(s.stale_symbols) == set(venue.symbols) for s in bus.statuses(venue.name))

        def rest_quotes(metrics: dict, symbol: str) -> float:
            name = "tradebus_marketdata_rest_quotes_published_total"
            return metric(metrics, name, venue=venue.name, symbol=symbol)

        try:
            await eventually(stale_status, TIMEOUT, "a stale status", detail=md.diagnostics)
            assert len(server.sent_frames) == stall_after  # stale during the stall
            during: dict = {}

            async def rest_published() -> bool:
                during.update(await md.metrics())
                return all(rest_quotes(during, s) == 1 for s in venue.symbols)

            await eventually(rest_published, TIMEOUT, "a REST quote per symbol")
            assert len(server.sent_frames) == stall_after, "the stall ended too early"
            await eventually(
                lambda: server.exhausted(venue.streams) and len(bus.messages) >= limit,
                TIMEOUT,
                f"{limit} ticks",
                detail=lambda: f"got {len(bus.messages)}; {md.diagnostics()}",
            )
            after = await md.metrics()
            assert await md.terminate() == 0, md.diagnostics()
        finally:
            md.kill()

    for symbol in venue.symbols:
        labels = {"venue": venue.name, "symbol": symbol}
        assert metric(during, "tradebus_marketdata_stale", **labels) == 1
        age = metric(during, "tradebus_marketdata_last_message_age_seconds", **labels)
        assert age > STALE_SECONDS
        assert metric(during, "tradebus_marketdata_rest_polls_total", result="ok", **labels) >= 1
        assert rest_quotes(after, symbol) == 1  # later polls said nothing new
        assert metric(after, "tradebus_marketdata_connected", venue=venue.name) == 1
    assert server.connections == 1
    assert server.rest_requests, "no REST request reached the server"

    # per symbol, the bus carries exactly the venue's sequence of books (one came
    # from REST, and the stream's copy of it was dropped) and every trade once
    served = server.sent_frames
    assert len(served) == len(set(served)) == limit
    assert on_bus(bus.ticks(), venue.symbols) == books_and_trades(venue, served)
    if venue is BINANCE:  # Binance's REST answer has no update id: tell REST quotes apart
        from_rest = [t for _, t in bus.ticks() if isinstance(t, QuoteTick) and t.update_id is None]
        assert sorted(t.symbol for t in from_rest) == venue.symbols

    # the status subject: stale during the stall, fresh again after it, periodic meanwhile
    statuses = bus.statuses(venue.name)
    first_stale = next(i for i, s in enumerate(statuses) if s.stale)
    assert statuses[first_stale].connected
    assert any(not s.stale and s.connected for s in statuses[first_stale:])
    assert len(statuses) >= 4
