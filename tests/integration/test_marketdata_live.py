"""The real ``tradebus-marketdata`` process on its live path, end to end.

A :class:`~tests.support.binance_ws.BinanceWsServer` plays recorded Binance
frames over a real WebSocket, the service runs as a separate process against a
real nats-server, and the test watches ``md.>`` on the bus and scrapes the
process's ``/metrics``. What is published is compared with the frames the
server actually sent, in order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from tests.support.binance_ws import BinanceWsServer, stream_of
from tests.support.data import raw_feed_files
from tests.support.services import eventually
from tradebus.cli.localstack import free_port
from tradebus.common.codec import decode_feed_status, decode_market
from tradebus.common.messages import FeedStatus, QuoteTick, TradeTick
from tradebus.feeds.binance import stream_names
from tradebus.feeds.readers import merge_files

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
STREAMS = stream_names(SYMBOLS)
UNIFIED = {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}
MARKETDATA_BIN = Path(sys.executable).parent / "tradebus-marketdata"
TIMEOUT = 20.0


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


class Bus:
    """A subscriber to ``md.>`` and ``feed.status.>`` that keeps every message in arrival order."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.messages: list[tuple[str, bytes]] = []
        self.status_messages: list[tuple[str, bytes]] = []
        self.errors: list[Exception] = []

    async def _on_msg(self, msg: Msg) -> None:
        self.messages.append((msg.subject, msg.data))

    async def _on_status(self, msg: Msg) -> None:
        self.status_messages.append((msg.subject, msg.data))

    def ticks(self) -> list[tuple[str, QuoteTick | TradeTick]]:
        return [(subject, decode_market(data)) for subject, data in self.messages]

    def statuses(self, venue: str = "binance") -> list[FeedStatus]:
        """The :class:`FeedStatus` messages of ``venue``, in arrival order."""
        return [
            decode_feed_status(data)
            for subject, data in self.status_messages
            if subject == f"feed.status.{venue}"
        ]


async def open_bus(nats_url: str) -> Bus:
    """Subscribe to ``md.>`` and make sure the server has the subscription."""
    bus: Bus

    async def on_error(exc: Exception) -> None:
        bus.errors.append(exc)

    nc = await nats.connect(nats_url, error_cb=on_error, allow_reconnect=False)
    bus = Bus(nc)
    await nc.subscribe(
        "md.>", cb=bus._on_msg, pending_msgs_limit=1_000_000, pending_bytes_limit=1 << 30
    )
    await nc.subscribe("feed.status.>", cb=bus._on_status)
    await nc.flush()
    return bus


class Marketdata:
    """The ``tradebus-marketdata`` process, configured only by environment variables."""

    def __init__(
        self,
        tmp_path: Path,
        nats_url: str,
        ws_url: str,
        symbols: str = ",".join(SYMBOLS),
        settings: dict[str, str] | None = None,
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBUS_")}
        self.metrics_port = free_port()
        env |= {
            "TRADEBUS_NATS_URL": nats_url,
            "TRADEBUS_SYMBOLS": symbols,
            "TRADEBUS_BINANCE_WS_URL": ws_url,
            "TRADEBUS_METRICS_PORT": str(self.metrics_port),
        }
        env |= settings or {}
        self.stderr_path = tmp_path / "marketdata.stderr"
        with self.stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [str(MARKETDATA_BIN)], env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def diagnostics(self) -> str:
        return f"exit status {self.proc.poll()}; stderr:\n{self.stderr()[-3000:]}"

    async def wait_exit(self, timeout: float = 10.0) -> int:
        await eventually(
            lambda: self.proc.poll() is not None, timeout, "the process to exit", self.diagnostics
        )
        return self.proc.returncode

    async def terminate(self) -> int:
        """SIGTERM and wait for the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    async def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Scrape ``/metrics``: ``{(sample name, labels): value}``."""

        def scrape() -> str:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()

        text = await asyncio.to_thread(scrape)
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def expected_tick(frame: str) -> tuple[Any, ...]:
    """What the bus must carry for one served frame, from the frame's own JSON."""
    envelope = json.loads(frame)
    stream, d = envelope["stream"], envelope["data"]
    kind = stream.split("@", 1)[1]
    symbol = d["s"]
    assert stream.split("@", 1)[0] == symbol.lower()
    if kind == "bookTicker":
        return (
            f"md.quote.binance.{symbol}",
            "quote",
            symbol,
            UNIFIED[symbol],
            Decimal(d["b"]),
            Decimal(d["B"]),
            Decimal(d["a"]),
            Decimal(d["A"]),
            d["u"],
        )
    assert kind == "trade", stream
    return (
        f"md.trade.binance.{symbol}",
        "trade",
        symbol,
        UNIFIED[symbol],
        Decimal(d["p"]),
        Decimal(d["q"]),
        str(d["t"]),
        "sell" if d["m"] else "buy",
        d["T"] * 1_000_000,
    )


def actual_tick(subject: str, tick: QuoteTick | TradeTick) -> tuple[Any, ...]:
    """The same shape as :func:`expected_tick`, from a message on the bus."""
    assert tick.venue == "binance"
    if isinstance(tick, QuoteTick):
        return (
            subject,
            "quote",
            tick.symbol,
            tick.unified_symbol,
            tick.bid,
            tick.bid_size,
            tick.ask,
            tick.ask_size,
            tick.update_id,
        )
    return (
        subject,
        "trade",
        tick.symbol,
        tick.unified_symbol,
        tick.price,
        tick.size,
        tick.trade_id,
        tick.aggressor,
        tick.ts_event,
    )


def check_published_once(bus: Bus, served: list[str], t_start: int, t_end: int) -> None:
    """Every served frame became exactly one tick, in order, with the frame's values."""
    ticks = bus.ticks()
    assert not bus.errors, bus.errors
    assert len(ticks) == len(served), "ticks published != frames served"
    assert [actual_tick(s, t) for s, t in ticks] == [expected_tick(f) for f in served]
    for _, tick in ticks:
        assert t_start <= tick.ts_recv <= tick.ts_init <= t_end
        if isinstance(tick, QuoteTick):
            assert tick.ts_event == tick.ts_recv  # bookTicker has no exchange time


def served_counts(served: list[str]) -> Counter[tuple[str, str]]:
    """``{(symbol, "quote"|"trade"): n}`` of served frames."""
    counts: Counter[tuple[str, str]] = Counter()
    for frame in served:
        name = json.loads(frame)["stream"]
        sym, kind = name.split("@", 1)
        counts[(sym.upper(), "quote" if kind == "bookTicker" else "trade")] += 1
    return counts


def metric(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def feed_files(data_dir: Path) -> list[Path]:
    return raw_feed_files(data_dir)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await open_bus(nats_url)
    yield bus
    await bus.nc.close()


# --------------------------------------------------------------------------
# the service
# --------------------------------------------------------------------------


async def test_every_frame_is_published_once_with_its_values(
    tmp_path: Path, nats_url: str, bus: Bus, feed_files: list[Path]
) -> None:
    limit = 4000
    async with BinanceWsServer(feed_files, limit=limit) as server:
        t_start = time.time_ns()
        md = Marketdata(tmp_path, nats_url, server.url)
        try:
            await eventually(
                lambda: server.exhausted(STREAMS) and len(bus.messages) >= limit,
                TIMEOUT,
                f"{limit} ticks on md.>",
                detail=lambda: f"got {len(bus.messages)}; {md.diagnostics()}",
            )
            t_end = time.time_ns()
            metrics = await md.metrics()
            assert await md.terminate() == 0, md.diagnostics()
        finally:
            md.kill()

    assert server.connections == 1
    assert server.requests == [f"/stream?streams={'/'.join(STREAMS)}"]
    served = server.sent_frames
    assert len(served) == limit
    check_published_once(bus, served, t_start, t_end)

    counts = served_counts(served)
    assert set(counts) == {(s, k) for s in SYMBOLS for k in ("quote", "trade")}  # not vacuous
    for (symbol, kind), n in counts.items():
        published = metric(
            metrics,
            "tradebus_marketdata_ticks_published_total",
            venue="binance",
            symbol=symbol,
            kind=kind,
        )
        assert published == n, (symbol, kind)
    assert metric(metrics, "tradebus_marketdata_reconnects_total", venue="binance") == 0
    assert metric(metrics, "tradebus_marketdata_parse_errors_total", venue="binance") == 0


async def test_feed_survives_dropped_connections(
    tmp_path: Path, nats_url: str, bus: Bus, feed_files: list[Path]
) -> None:
    limit, drop_after = 3000, 700
    async with BinanceWsServer(feed_files, limit=limit, drop_after=drop_after) as server:
        t_start = time.time_ns()
        md = Marketdata(tmp_path, nats_url, server.url)
        try:
            await eventually(
                lambda: server.exhausted(STREAMS) and len(bus.messages) >= limit,
                TIMEOUT,
                f"{limit} ticks on md.> across reconnects",
                detail=lambda: (
                    f"got {len(bus.messages)}, {server.connections} connections; "
                    + md.diagnostics()
                ),
            )
            t_end = time.time_ns()
            metrics = await md.metrics()
            assert await md.terminate() == 0, md.diagnostics()
        finally:
            md.kill()

    drops = limit // drop_after  # 4 drops: 700 * 4 + 200 on the fifth connection
    assert server.drops == drops
    assert server.connections == drops + 1
    assert server.sent_frames == list(dict.fromkeys(server.sent_frames)), "server resent frames"
    check_published_once(bus, server.sent_frames, t_start, t_end)
    reconnects = metric(metrics, "tradebus_marketdata_reconnects_total", venue="binance")
    assert reconnects >= 1
    assert reconnects == server.connections - 1
    # each gap is marked on feed.status: [lost, back] within the run
    gaps = {tuple(s.last_gap) for s in bus.statuses() if s.last_gap}
    assert 1 <= len(gaps) <= drops
    assert all(t_start <= lost <= back <= t_end for lost, back in gaps), gaps


async def test_sigterm_exits_zero(
    tmp_path: Path, nats_url: str, bus: Bus, feed_files: list[Path]
) -> None:
    async with BinanceWsServer(feed_files, limit=200) as server:
        md = Marketdata(tmp_path, nats_url, server.url)
        try:
            await eventually(
                lambda: len(bus.messages) >= 200, TIMEOUT, "200 ticks", detail=md.diagnostics
            )
            metrics = await md.metrics()
            assert metric(metrics, "tradebus_marketdata_connected", venue="binance") == 1
            assert metric(metrics, "tradebus_marketdata_ready") == 1
            assert md.proc.poll() is None, "the live feed must not end with the data"
            status = await md.terminate()
        finally:
            md.kill()
    assert status == 0, md.diagnostics()
    assert "Traceback" not in md.stderr()
    levels = [json.loads(line).get("level") for line in md.stderr().splitlines() if line]
    assert "error" not in levels, md.stderr()


async def test_unknown_symbol_exits_2_with_message(
    tmp_path: Path, nats_url: str, feed_files: list[Path]
) -> None:
    async with BinanceWsServer(feed_files, limit=10) as server:
        md = Marketdata(tmp_path, nats_url, server.url, symbols="BTCUSDT,NOPEUSDT")
        try:
            status = await md.wait_exit(timeout=15.0)
        finally:
            md.kill()
    assert status == 2, md.diagnostics()
    stderr = md.stderr()
    assert "Traceback" not in stderr
    (line,) = [ln for ln in stderr.splitlines() if "TRADEBUS_SYMBOLS" in ln]
    assert line.startswith("tradebus-marketdata: ")
    assert "not in the markets file" in line
    assert line.endswith("NOPEUSDT")  # names the bad symbol, and only it
    assert server.connections == 0  # refused before connecting to the venue


async def test_resent_frames_are_published_once(
    tmp_path: Path, nats_url: str, bus: Bus, feed_files: list[Path]
) -> None:
    limit = 1500
    async with BinanceWsServer(feed_files, limit=limit, drop_after=500, resend_last=50) as server:
        t_start = time.time_ns()
        md = Marketdata(tmp_path, nats_url, server.url)
        try:
            await eventually(
                lambda: server.exhausted(STREAMS) and len(bus.messages) >= limit,
                TIMEOUT,
                f"{limit} ticks",
                detail=md.diagnostics,
            )
            t_end = time.time_ns()
            assert await md.terminate() == 0, md.diagnostics()
        finally:
            md.kill()
    unique = list(dict.fromkeys(server.sent_frames))
    assert len(server.sent_frames) > len(unique) == limit  # the fault happened
    check_published_once(bus, unique, t_start, t_end)


# --------------------------------------------------------------------------
# the test double itself (no service): what later fault tests rely on
# --------------------------------------------------------------------------


async def test_binance_ws_server_speaks_the_protocol(feed_files: list[Path]) -> None:
    async with BinanceWsServer(feed_files, limit=30, drop_after=20, resend_last=5) as server:
        # one stream only, raw text unchanged
        async with connect(f"{server.url}?streams=ethusdt@trade") as ws:
            first = [await ws.recv() for _ in range(20)]
            with pytest.raises(ConnectionClosedError):
                await ws.recv()  # dropped after 20 frames, no close frame
        assert all(
            isinstance(f, str) and f.startswith('{"stream":"ethusdt@trade","data":{') for f in first
        )
        async with connect(f"{server.url}?streams=ethusdt@trade") as ws:
            second = [await ws.recv() for _ in range(15)]  # 5 resent + the last 10
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)  # limit reached; stays open
        assert second[:5] == first[-5:]
        trade_ids = [json.loads(f)["data"]["t"] for f in first + second[5:]]
        assert trade_ids == list(range(trade_ids[0], trade_ids[0] + 30))  # gap-free, in order
        assert server.sent_frames == first + second
        # an unknown stream yields nothing; no streams at all is an error
        async with connect(f"{server.url}?streams=nopeusdt@trade") as ws:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.3)
        async with connect(server.url) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert server.connections == 4


async def test_binance_ws_server_paces_and_stalls(feed_files: list[Path]) -> None:
    stream = "btcusdt@bookTicker"
    recorded = list(
        itertools.islice(
            ((ts, f) for ts, f in merge_files(feed_files) if stream_of(f) == stream), 40
        )
    )
    async with (
        BinanceWsServer(
            feed_files, speed=10.0, limit=40, stall_after=20, stall_seconds=0.5
        ) as server,
        connect(f"{server.url}?streams={stream}") as ws,
    ):
        started = time.monotonic()
        frames = [await ws.recv() for _ in range(40)]
        elapsed = time.monotonic() - started
    assert frames == [f.decode() for _, f in recorded]  # the recorded bytes, unchanged
    # pacing restarts after the stall, so the recorded gap 19 -> 20 is not waited for
    paced = (recorded[19][0] - recorded[0][0] + recorded[39][0] - recorded[20][0]) / 1e9 / 10.0
    assert elapsed >= 0.5 + paced * 0.9
    assert elapsed < 0.5 + paced + 1.0
