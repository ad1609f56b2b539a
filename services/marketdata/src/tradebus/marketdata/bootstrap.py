"""Composition root of the marketdata service: settings -> source, parser, feed, NATS."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from tradebus.common.bus import connect
from tradebus.common.clock import LiveClock
from tradebus.common.config import ConfigError
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.metrics import new_registry, serve_metrics
from tradebus.marketdata.binance import BinanceParser, combined_stream_url
from tradebus.marketdata.feed import Feed, FeedMetrics
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.marketdata.sources import (
    FeedRefusedError,
    LiveSource,
    ReplayFileError,
    ReplaySource,
)

log = logging.getLogger(__name__)


def build_source(
    settings: MarketdataSettings, catalog: MarketCatalog, metrics: FeedMetrics
) -> ReplaySource | LiveSource:
    """The replay source when files are given, else the live WebSocket.

    Raises
    ------
    ConfigError
        If a replay file is missing, or a live symbol is not a configured market.
    """
    if settings.replay_files:
        paths = [Path(p) for p in settings.replay_files]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ConfigError(f"TRADEBUS_REPLAY_FILES: no such file(s): {', '.join(missing)}")
        return ReplaySource(paths, settings.speed())
    if not settings.symbols:
        raise ConfigError("TRADEBUS_SYMBOLS is required for a live feed (e.g. BTCUSDT,ETHUSDT)")
    unknown = [s for s in settings.symbols if (settings.feed, s) not in catalog]
    if unknown:
        raise ConfigError(f"TRADEBUS_SYMBOLS: not in the markets file: {', '.join(unknown)}")
    venue = settings.feed
    return LiveSource(
        combined_stream_url(settings.binance_ws_url, settings.symbols),
        on_connect=lambda: metrics.connected.labels(venue=venue).set(1),
        on_disconnect=lambda: metrics.connected.labels(venue=venue).set(0),
        on_reconnect=metrics.reconnects.labels(venue=venue).inc,
    )


async def run(settings: MarketdataSettings, stop: asyncio.Event) -> int:
    """Run the feed until the replay ends or ``stop`` is set; returns the exit status."""
    catalog = MarketCatalog.load(settings.markets_file or default_markets_path())
    registry = new_registry()
    metrics = FeedMetrics(registry)
    source = build_source(settings, catalog, metrics)
    server = serve_metrics(registry, settings.metrics_port)
    log.info("metrics endpoint", extra={"port": server.port})
    nc = await connect(settings.nats_url, "marketdata")
    parser = BinanceParser(catalog, settings.feed, set(settings.symbols) or None)
    feed = Feed(settings.feed, parser, nc.publish, LiveClock(), metrics)
    task = asyncio.create_task(feed.run(source))
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            stats = task.result()
            metrics.finished.set(1)
            log.info(
                "replay finished",
                extra={
                    "frames": dict(stats.frames),
                    "ticks": {f"{k}:{s}": n for (k, s), n in sorted(stats.ticks.items())},
                    "parse_errors": stats.parse_errors,
                },
            )
        return 0
    except (ReplayFileError, FeedRefusedError) as exc:
        log.error("feed stopped", extra={"error": str(exc)})
        return 1
    finally:
        for t in (task, stopper):
            t.cancel()
        await nc.drain()
        server.close()
