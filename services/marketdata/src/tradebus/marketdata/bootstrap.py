"""Composition root of the marketdata service: settings -> source, parser, feed, NATS.

A replay (``TRADEBUS_REPLAY_FILES``) runs the plain :class:`Feed` over the
files and exits at their end. A live feed (``TRADEBUS_FEED=binance`` or
``backpack``) runs one :class:`LiveSource` connection for every symbol of the
venue (``TRADEBUS_FEED=ccxt``: one ccxt.pro client,
:class:`~tradebus.marketdata.ccxt_source.CcxtSource`), with de-duplication,
stale detection, the REST fallback and the ``feed.status.<venue>`` publisher
(:class:`LiveFeed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from pathlib import Path

from tradebus.common.bus import connect
from tradebus.common.clock import LiveClock
from tradebus.common.config import ConfigError, redact_url
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.metrics import new_registry, serve_metrics
from tradebus.common.runtime import unless_stopped
from tradebus.feeds import backpack, binance
from tradebus.feeds.ccxt_parser import CcxtParser
from tradebus.feeds.files import DataFileError
from tradebus.feeds.parsing import Parser
from tradebus.marketdata.dedup import Deduplicator
from tradebus.marketdata.feed import Feed, FeedMetrics, FeedStats, FrameSource
from tradebus.marketdata.health import FeedHealth, HealthMetrics
from tradebus.marketdata.live import LiveFeed
from tradebus.marketdata.rest import QuotePoller, RestMetrics, RestQuotePoller
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.marketdata.sources import (
    FeedRefusedError,
    LiveSource,
    Reconnects,
    ReplaySource,
)

log = logging.getLogger(__name__)


def build_parser(settings: MarketdataSettings, catalog: MarketCatalog) -> Parser:
    """The parser of ``settings.feed``, publishing ``settings.symbols`` (all if empty)."""
    only = set(settings.symbols) or None
    if settings.feed == "ccxt":
        return CcxtParser(catalog, settings.ccxt_exchange, only=only)
    if settings.feed == "backpack":
        return backpack.BackpackParser(catalog, only=only)
    return binance.BinanceParser(catalog, only=only)


def build_replay(settings: MarketdataSettings) -> ReplaySource:
    """The replay source of ``TRADEBUS_REPLAY_FILES``.

    Raises
    ------
    ConfigError
        If a file is missing or the speed is invalid.
    """
    paths = [Path(p) for p in settings.replay_files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"TRADEBUS_REPLAY_FILES: no such file(s): {', '.join(missing)}")
    return ReplaySource(paths, settings.speed())


def live_endpoints(
    settings: MarketdataSettings,
) -> tuple[str, list[str], Callable[[str], str]]:
    """``(WebSocket URL, messages to send on connect, symbol -> REST quote URL)`` of the venue."""
    if settings.feed == "backpack":
        return (
            settings.backpack_ws_url,
            [backpack.subscribe_message(settings.symbols)],
            functools.partial(backpack.rest_quote_url, settings.backpack_rest_url),
        )
    return (
        binance.combined_stream_url(settings.binance_ws_url, settings.symbols),
        [],
        functools.partial(binance.rest_quote_url, settings.binance_rest_url),
    )


def check_live(settings: MarketdataSettings, catalog: MarketCatalog) -> None:
    """Refuse a live feed without symbols, with unknown symbols or with bad periods.

    Raises
    ------
    ConfigError
        Naming the setting.
    """
    if not settings.symbols:
        example = "BTCUSDT,ETHUSDT" if settings.feed == "binance" else "SOL_USDC,BTC_USDC"
        raise ConfigError(f"TRADEBUS_SYMBOLS is required for a live feed (e.g. {example})")
    unknown = [s for s in settings.symbols if (settings.venue(), s) not in catalog]
    if unknown:
        raise ConfigError(f"TRADEBUS_SYMBOLS: not in the markets file: {', '.join(unknown)}")
    settings.check_live()


def build_live(
    settings: MarketdataSettings,
    parser: Parser,
    metrics: FeedMetrics,
    registry_metrics: tuple[HealthMetrics, RestMetrics],
) -> tuple[FrameSource, FeedHealth, QuotePoller | None]:
    """The venue's connection, its health (wired to the connection) and its REST poller."""
    venue = settings.venue()
    health_metrics, rest_metrics = registry_metrics
    health = FeedHealth(venue, settings.symbols, settings.stale_seconds, health_metrics)
    connected = metrics.connected.labels(venue=venue)
    reconnects = metrics.reconnects.labels(venue=venue)

    def on_connect() -> None:
        connected.set(1)
        health.on_connect()

    def on_disconnect() -> None:
        connected.set(0)
        health.on_disconnect()

    def on_reconnect() -> None:
        reconnects.inc()
        health.on_reconnect()

    poll = settings.rest_poll_seconds > 0
    if settings.feed == "ccxt":
        from tradebus.marketdata import ccxt_rest, ccxt_source  # ccxt: only for this feed

        exchange = ccxt_source.make_exchange(
            settings.ccxt_exchange, settings.ccxt_ws_url, settings.ccxt_rest_url
        )
        source = ccxt_source.CcxtSource(
            exchange,
            settings.symbols,
            reconnects=Reconnects(on_connect, on_disconnect, on_reconnect),
        )
        ccxt_poller = ccxt_rest.CcxtQuotePoller(exchange, parser, rest_metrics) if poll else None
        return source, health, ccxt_poller
    url, subscribe, rest_url = live_endpoints(settings)
    live_source = LiveSource(
        url,
        subscribe,
        on_connect=on_connect,
        on_disconnect=on_disconnect,
        on_reconnect=on_reconnect,
    )
    poller = RestQuotePoller(parser, rest_url, rest_metrics) if poll else None
    return live_source, health, poller


def check_ccxt(settings: MarketdataSettings) -> None:
    """Refuse ``TRADEBUS_FEED=ccxt`` without a ccxt.pro exchange that streams quotes and trades.

    Raises
    ------
    ConfigError
        Naming ``TRADEBUS_CCXT_EXCHANGE``.
    """
    if settings.feed == "ccxt":
        from tradebus.marketdata import ccxt_source  # imports ccxt: only for this feed

        ccxt_source.check_exchange(settings.ccxt_exchange)


async def run(settings: MarketdataSettings, stop: asyncio.Event) -> int:
    """Run the feed until the replay ends or ``stop`` is set; returns the exit status."""
    catalog = MarketCatalog.load(settings.markets_file or default_markets_path())
    check_ccxt(settings)
    replay = build_replay(settings) if settings.replay_files else None
    if replay is None:
        check_live(settings, catalog)
    registry = new_registry()
    metrics = FeedMetrics(registry)
    parser = build_parser(settings, catalog)
    server = serve_metrics(registry, settings.metrics_port, settings.metrics_host)
    log.info("metrics endpoint", extra={"port": server.port})
    nc = await unless_stopped(  # SIGTERM works while NATS is unreachable (connect retries)
        connect(settings.nats_url, "marketdata", creds=settings.nats_creds),
        stop,
        f"NATS at {redact_url(settings.nats_url)}",
    )
    live: LiveFeed | None = None
    if replay is not None:
        feed = Feed(settings.venue(), parser, nc.publish, LiveClock(), metrics)
        job = feed.run(replay)
    else:
        source, health, poller = build_live(
            settings, parser, metrics, (HealthMetrics(registry), RestMetrics(registry))
        )
        feed = Feed(
            settings.venue(), parser, nc.publish, LiveClock(), metrics, Deduplicator(), health
        )
        live = LiveFeed(
            feed,
            health,
            nc.publish,
            poller,
            status_seconds=settings.status_seconds,
            poll_seconds=settings.rest_poll_seconds,
        )
        job = live.run(source)
    task = asyncio.create_task(job)
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            log_finished(task.result())
            metrics.finished.set(1)
        return 0
    except (DataFileError, FeedRefusedError) as exc:
        log.error("feed stopped", extra={"error": str(exc)})
        return 1
    finally:
        for t in (task, stopper):
            t.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if live is not None:
            with contextlib.suppress(Exception):
                await live.publish_status()  # the last word: disconnected
        await nc.drain()
        server.close()


def log_finished(stats: FeedStats) -> None:
    """Log the counts of a finished replay."""
    log.info(
        "replay finished",
        extra={
            "frames": dict(stats.frames),
            "ticks": {f"{k}:{s}": n for (k, s), n in sorted(stats.ticks.items())},
            "parse_errors": stats.parse_errors,
        },
    )
