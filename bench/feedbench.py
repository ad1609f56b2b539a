"""Feed: raw-feed replay -> parse -> publish, with the marketdata service's own code.

Method
------
In this process, exactly what ``tradebus.marketdata.bootstrap.run`` builds for
a replay: :class:`ReplaySource` over the four BTCUSDT/ETHUSDT raw files at
speed max (gzip read + merge by receive time), :class:`BinanceParser` on the
default markets file, and a :class:`Feed` (venue ``binance``, ``LiveClock``,
Prometheus metrics) whose publish function is the one under test. Three runs
over the same files, each timed from the first frame to the end (after a
final ``flush`` when publishing):

* **read only**: iterate ``ReplaySource.frames()`` and do nothing: the cost
  of decompressing and merging the files.
* **parse only**: ``Feed`` with an ``async`` no-op publish: read + parse +
  encode + metrics.
* **parse + publish**: ``Feed`` with ``nc.publish`` of a nats-py connection
  made by :func:`tradebus.common.bus.connect` (as the service) to a local
  nats-server (:class:`LocalNats`); nobody subscribes.

Reported: ticks/s (ticks published) and frames/s (every frame read). Compare
with the floor (``python -m bench.floor``): publish->sub->decode msg/s.
Prints figures; never asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from tradebus.cli.localstack import LocalNats
from tradebus.common.bus import connect
from tradebus.common.clock import LiveClock
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.metrics import new_registry
from tradebus.feeds.binance import BinanceParser
from tradebus.marketdata.feed import Feed, FeedMetrics, FeedStats, Publish
from tradebus.marketdata.sources import ReplaySource

DEFAULT_DATA = Path("/work/shared/data")
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def raw_files(data: Path, symbols: tuple[str, ...] = SYMBOLS) -> list[Path]:
    """The Binance spot raw-feed recordings of ``symbols`` in ``data``, sorted."""
    files: list[Path] = []
    for symbol in symbols:
        files += sorted(data.glob(f"binance-spot_{symbol}_rawfeed_*.txt*"))
    if not files:
        raise SystemExit(f"no binance-spot_*_rawfeed_* files in {data}")
    return files


async def read_only(files: list[Path]) -> tuple[int, float]:
    """Frames read and seconds taken, doing nothing with them."""
    started = time.perf_counter()
    frames = 0
    async for _ in ReplaySource(files, None).frames():
        frames += 1
    return frames, time.perf_counter() - started


async def feed_run(files: list[Path], publish: Publish) -> tuple[FeedStats, float]:
    """One replay through a fresh :class:`Feed` publishing with ``publish``."""
    catalog = MarketCatalog.load(default_markets_path())
    parser = BinanceParser(catalog, only=set(SYMBOLS))
    feed = Feed("binance", parser, publish, LiveClock(), FeedMetrics(new_registry()))
    started = time.perf_counter()
    stats = await feed.run(ReplaySource(files, None))
    return stats, time.perf_counter() - started


def rows_of(name: str, stats: FeedStats, seconds: float) -> list[dict]:
    """One row: ticks/s, with frames/s in the detail."""
    ticks = sum(stats.ticks.values())
    frames = sum(stats.frames.values())
    return [
        {
            "row": f"feed {name}",
            "value": round(ticks / seconds),
            "unit": "ticks/s",
            "detail": f"{ticks:,} ticks, {frames:,} frames in {seconds:.2f} s"
            f" ({frames / seconds:,.0f} frames/s)",
        }
    ]


async def run(data: Path = DEFAULT_DATA) -> list[dict]:
    """The three runs (read only, parse only, parse + publish); return the rows."""
    files = raw_files(data)
    rows: list[dict] = []
    frames, seconds = await read_only(files)
    rows.append(
        {
            "row": "feed read only (gunzip + merge)",
            "value": round(frames / seconds),
            "unit": "frames/s",
            "detail": f"{frames:,} frames in {seconds:.2f} s",
        }
    )

    async def nothing(subject: str, payload: bytes) -> None:
        return None

    stats, seconds = await feed_run(files, nothing)
    rows += rows_of("parse only (publish = no-op)", stats, seconds)
    with tempfile.TemporaryDirectory(prefix="feedbench-") as tmp:
        server = LocalNats(Path(tmp) / "nats")
        url = server.start()
        try:
            nc = await connect(url, "marketdata")
            started = time.perf_counter()
            stats, _ = await feed_run(files, nc.publish)
            await nc.flush()
            seconds = time.perf_counter() - started
            await nc.close()
        finally:
            server.stop()
    rows += rows_of("parse + publish to NATS", stats, seconds)
    return rows


def main() -> None:
    from bench.floor import print_rows

    p = argparse.ArgumentParser(
        prog="python -m bench.feedbench", description=__doc__.splitlines()[0]
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="directory of the raw feeds")
    args = p.parse_args()
    started = time.perf_counter()
    print_rows(asyncio.run(run(args.data)))
    print(f"wall {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
