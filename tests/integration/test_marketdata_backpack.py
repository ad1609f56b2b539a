"""The real ``tradebus-marketdata`` process on Backpack's protocol (``TRADEBUS_FEED=backpack``).

A :class:`~tests.support.backpack_ws.BackpackWsServer` serves the recorded
captures in Backpack's format over a real WebSocket; the service subscribes
with ``SUBSCRIBE``, publishes on ``md.{quote,trade}.backpack.<SYMBOL>``, and
the ticks are compared with the frames the server actually sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_marketdata_live import TIMEOUT, Bus, Marketdata, metric, open_bus
from tests.support.backpack_ws import BackpackWsServer
from tests.support.data import raw_feed_files
from tests.support.services import eventually
from tradebus.common.messages import QuoteTick, TradeTick

SYMBOLS = ["BTC_USDC", "ETH_USDC"]
PARAMS = [f"{kind}.{s}" for s in SYMBOLS for kind in ("bookTicker", "trade")]
UNIFIED = {"BTC_USDC": "BTC/USDC", "ETH_USDC": "ETH/USDC"}


@pytest.fixture
def feed_files(data_dir: Path) -> list[Path]:
    return raw_feed_files(data_dir)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await open_bus(nats_url)
    yield bus
    await bus.nc.close()


def backpack_md(
    tmp_path: Path, nats_url: str, server: BackpackWsServer, **extra: str
) -> Marketdata:
    """The service on the Backpack feed of ``server`` (REST on the same port)."""
    settings = {
        "TRADEBUS_FEED": "backpack",
        "TRADEBUS_BACKPACK_WS_URL": server.url,
        "TRADEBUS_BACKPACK_REST_URL": server.rest_url,
        **extra,
    }
    return Marketdata(tmp_path, nats_url, "ws://unused", ",".join(SYMBOLS), settings)


def expected_tick(frame: str) -> tuple[Any, ...]:
    """What the bus must carry for one served Backpack frame, from the frame's own JSON."""
    envelope = json.loads(frame)
    kind, symbol = envelope["stream"].split(".")
    d = envelope["data"]
    assert d["s"] == symbol
    if kind == "bookTicker":
        book = (Decimal(d["b"]), Decimal(d["B"]), Decimal(d["a"]), Decimal(d["A"]))
        ts = int(d["T"]) * 1_000
        return (f"md.quote.backpack.{symbol}", symbol, UNIFIED[symbol], *book, d["u"], ts)
    assert kind == "trade"
    aggressor = "sell" if d["m"] else "buy"
    trade = (Decimal(d["p"]), Decimal(d["q"]), str(d["t"]), aggressor, int(d["T"]) * 1_000)
    return (f"md.trade.backpack.{symbol}", symbol, UNIFIED[symbol], *trade)


def actual_tick(subject: str, tick: QuoteTick | TradeTick) -> tuple[Any, ...]:
    assert tick.venue == "backpack"
    head = (subject, tick.symbol, tick.unified_symbol)
    if isinstance(tick, QuoteTick):
        book = (tick.bid, tick.bid_size, tick.ask, tick.ask_size)
        return (*head, *book, tick.update_id, tick.ts_event)
    return (*head, tick.price, tick.size, tick.trade_id, tick.aggressor, tick.ts_event)


def check_published_once(bus: Bus, served: list[str], t_start: int, t_end: int) -> None:
    ticks = bus.ticks()
    assert not bus.errors, bus.errors
    assert [actual_tick(s, t) for s, t in ticks] == [expected_tick(f) for f in served]
    assert all(t_start <= t.ts_recv <= t.ts_init <= t_end for _, t in ticks)


async def test_backpack_feed_publishes_every_frame_once_and_answers_pings(
    tmp_path: Path,
    nats_url: str,
    bus: Bus,
    feed_files: list[Path],
) -> None:
    limit = 2000
    # the server pings every 0.1 s and drops a client whose pong is 0.5 s late
    server = BackpackWsServer(feed_files, limit=limit, ping_interval=0.1, ping_timeout=0.5)
    async with server:
        t_start = time.time_ns()
        md = backpack_md(tmp_path, nats_url, server)
        try:
            await eventually(
                lambda: server.exhausted(PARAMS) and len(bus.messages) >= limit,
                TIMEOUT,
                f"{limit} ticks on md.>",
                detail=lambda: f"got {len(bus.messages)}; {md.diagnostics()}",
            )
            t_end = time.time_ns()
            await asyncio.sleep(1.5)  # 15 pings
            metrics = await md.metrics()
            assert await md.terminate() == 0, md.diagnostics()
        finally:
            md.kill()
    assert server.connections == 1, "the connection was dropped (a pong missing?)"
    assert server.subscriptions == [PARAMS]
    assert len(server.sent_frames) == limit
    check_published_once(bus, server.sent_frames, t_start, t_end)
    assert {s for s, _ in bus.ticks()} == {
        f"md.{k}.backpack.{s}" for k in ("quote", "trade") for s in SYMBOLS
    }  # not vacuous
    assert metric(metrics, "tradebus_marketdata_connected", venue="backpack") == 1
    assert metric(metrics, "tradebus_marketdata_reconnects_total", venue="backpack") == 0
    assert metric(metrics, "tradebus_marketdata_parse_errors_total", venue="backpack") == 0
    statuses = bus.statuses("backpack")
    assert statuses and statuses[0].connected is not None
    assert any(s.connected and not s.stale for s in statuses)
    assert statuses[-1].connected is False  # the last word on SIGTERM


async def test_backpack_reconnect_resubscribes_and_loses_or_doubles_nothing(
    tmp_path: Path,
    nats_url: str,
    bus: Bus,
    feed_files: list[Path],
) -> None:
    limit, drop_after = 1800, 500
    server = BackpackWsServer(feed_files, limit=limit, drop_after=drop_after, resend_last=40)
    async with server:
        t_start = time.time_ns()
        md = backpack_md(tmp_path, nats_url, server)
        try:
            await eventually(
                lambda: server.exhausted(PARAMS) and len(bus.messages) >= limit,
                TIMEOUT,
                f"{limit} ticks across reconnects",
                detail=lambda: f"got {len(bus.messages)}; {md.diagnostics()}",
            )
            t_end = time.time_ns()
            await eventually(
                lambda: any(s.reconnects == 3 for s in bus.statuses("backpack")),
                TIMEOUT,
                "a status counting 3 reconnects",
            )
            metrics = await md.metrics()
            assert await md.terminate() == 0, md.diagnostics()
        finally:
            md.kill()
    assert server.drops == 3 and server.connections == 4
    assert server.subscriptions == [PARAMS] * 4  # subscribed again on every connection
    unique = list(dict.fromkeys(server.sent_frames))
    assert len(server.sent_frames) == limit + 3 * 40 and len(unique) == limit  # resent 3 x 40
    check_published_once(bus, unique, t_start, t_end)
    assert metric(metrics, "tradebus_marketdata_reconnects_total", venue="backpack") == 3
    dropped = sum(
        metric(
            metrics,
            "tradebus_marketdata_duplicates_dropped_total",
            venue="backpack",
            symbol=s,
            kind=k,
        )
        for s in SYMBOLS
        for k in ("quote", "trade")
    )
    assert dropped == 3 * 40
