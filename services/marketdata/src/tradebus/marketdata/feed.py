"""The feed loop: frames from a source -> parser -> de-duplication -> ticks on NATS.

Pure of venue specifics: the parser knows Binance or Backpack, the source
knows files or sockets, the publisher knows NATS. Counts every frame by kind
and every tick published by symbol, in Prometheus and in :class:`FeedStats`.
A live feed also has a :class:`~tradebus.marketdata.dedup.Deduplicator`
(reconnects may resend) and a :class:`~tradebus.marketdata.health.FeedHealth`
told of every stream message; REST fallback quotes enter through
:meth:`Feed.publish_rest`, through the same de-duplication.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import msgspec
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

from tradebus.common import subjects
from tradebus.common.clock import Clock
from tradebus.common.codec import encode
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.parsing import Frame, FrameKind, Parser
from tradebus.marketdata.dedup import Deduplicator
from tradebus.marketdata.health import FeedHealth

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]


class FrameSource(Protocol):
    """Anything with an async ``frames()`` iterator of ``(ts_recv_ns, raw)``."""

    def frames(self) -> AsyncIterator[Frame]: ...


class FeedMetrics:
    """Prometheus metrics of one feed process (``tradebus_marketdata_*``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.frames = PromCounter(
            "tradebus_marketdata_frames",
            "Raw frames received, by kind",
            ["venue", "kind"],
            registry=registry,
        )
        self.ticks = PromCounter(
            "tradebus_marketdata_ticks_published",
            "Ticks published on md.*",
            ["venue", "symbol", "kind"],
            registry=registry,
        )
        self.parse_errors = PromCounter(
            "tradebus_marketdata_parse_errors",
            "Frames that could not be parsed",
            ["venue"],
            registry=registry,
        )
        self.reconnects = PromCounter(
            "tradebus_marketdata_reconnects", "Feed reconnections", ["venue"], registry=registry
        )
        self.connected = Gauge(
            "tradebus_marketdata_connected",
            "1 while the feed is connected",
            ["venue"],
            registry=registry,
        )
        self.last_frame = Gauge(
            "tradebus_marketdata_last_frame_timestamp_seconds",
            "Wall time of the last frame received",
            ["venue"],
            registry=registry,
        )
        self.duplicates = PromCounter(
            "tradebus_marketdata_duplicates_dropped",
            "Ticks not published because they were already published (resends, REST echoes)",
            ["venue", "symbol", "kind"],
            registry=registry,
        )
        self.rest_quotes = PromCounter(
            "tradebus_marketdata_rest_quotes_published",
            "Quotes published from REST polling while the stream was stale",
            ["venue", "symbol"],
            registry=registry,
        )
        self.ready = Gauge("tradebus_marketdata_ready", "1 once the feed runs", registry=registry)
        self.finished = Gauge(
            "tradebus_marketdata_replay_finished",
            "1 once a replay has published everything",
            registry=registry,
        )


class FeedStats(msgspec.Struct, kw_only=True):
    """Counts of one run: frames by kind, ticks by ``(kind, symbol)``."""

    frames: Counter[str] = msgspec.field(default_factory=Counter)
    ticks: Counter[tuple[str, str]] = msgspec.field(default_factory=Counter)
    parse_errors: int = 0
    duplicates: int = 0
    rest_quotes: int = 0


class Feed:
    """Parse frames from ``source`` and publish the ticks through ``publish``.

    Parameters
    ----------
    venue
        Venue name (label and subject token).
    parser
        Frame parser (:class:`~tradebus.feeds.binance.BinanceParser`, ...).
    publish
        ``async publish(subject, payload)`` (core NATS).
    clock
        Stamps ``ts_init`` of every tick.
    metrics
        Prometheus metrics; may be shared by several feeds of one process.
    dedup
        Drops ticks already published (live feeds); None publishes every tick
        (replays of recorded files, which hold each event once).
    health
        Told of every stream tick, duplicates included (live feeds).
    """

    def __init__(
        self,
        venue: str,
        parser: Parser,
        publish: Publish,
        clock: Clock,
        metrics: FeedMetrics,
        dedup: Deduplicator | None = None,
        health: FeedHealth | None = None,
    ) -> None:
        self._venue = venue
        self._parser = parser
        self._publish = publish
        self._clock = clock
        self._metrics = metrics
        self._dedup = dedup
        self._health = health
        self._subjects: dict[tuple[type, str], str] = {}
        self._tick_counters: dict[tuple[type, str], object] = {}
        self._last_frame = metrics.last_frame.labels(venue=venue)
        self._frame_counters = {
            k: metrics.frames.labels(venue=venue, kind=k.value) for k in FrameKind
        }
        self.stats = FeedStats()

    def _route(self, tick: QuoteTick | TradeTick) -> str:
        key = (type(tick), tick.symbol)
        subject = self._subjects.get(key)
        if subject is None:
            is_quote = isinstance(tick, QuoteTick)
            build = subjects.md_quote if is_quote else subjects.md_trade
            subject = self._subjects[key] = build(self._venue, tick.symbol)
            self._tick_counters[key] = self._metrics.ticks.labels(
                venue=self._venue, symbol=tick.symbol, kind="quote" if is_quote else "trade"
            )
        return subject

    async def handle(self, frame: Frame) -> None:
        """Parse one frame and publish its tick, if it has one. Never raises on bad input."""
        ts_recv, raw = frame
        try:
            kind, tick = self._parser.parse(raw, ts_recv, self._clock.now_ns())
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.stats.parse_errors += 1
            self._metrics.parse_errors.labels(venue=self._venue).inc()
            if self.stats.parse_errors <= 10:
                head = raw[:200].decode(errors="replace")
                log.warning("unparsable frame", extra={"error": str(exc), "frame": head})
            return
        self.stats.frames[kind.value] += 1
        self._frame_counters[kind].inc()
        if tick is None:
            if kind is FrameKind.CONTROL and self.stats.frames[kind.value] <= 10:
                log.warning("venue answered", extra={"frame": raw[:200].decode(errors="replace")})
            return
        if self._health is not None:
            self._health.saw(tick.symbol)
        if self._dedup is not None and not self._dedup.admit(tick, "stream"):
            self._dropped(tick)
            return
        await self._send(tick)

    async def publish_rest(self, tick: QuoteTick) -> bool:
        """Publish a REST fallback quote unless it repeats what was published; True if sent."""
        if self._dedup is not None and not self._dedup.admit(tick, "rest"):
            self._dropped(tick)
            return False
        await self._send(tick)
        self.stats.rest_quotes += 1
        self._metrics.rest_quotes.labels(venue=self._venue, symbol=tick.symbol).inc()
        return True

    def _dropped(self, tick: QuoteTick | TradeTick) -> None:
        self.stats.duplicates += 1
        kind = "quote" if isinstance(tick, QuoteTick) else "trade"
        self._metrics.duplicates.labels(venue=self._venue, symbol=tick.symbol, kind=kind).inc()

    async def _send(self, tick: QuoteTick | TradeTick) -> None:
        subject = self._route(tick)
        await self._publish(subject, encode(tick))
        key = (type(tick), tick.symbol)
        self._tick_counters[key].inc()  # type: ignore[attr-defined]
        self.stats.ticks[("quote" if isinstance(tick, QuoteTick) else "trade", tick.symbol)] += 1

    async def run(self, source: FrameSource) -> FeedStats:
        """Consume ``source`` until it ends (replay) or the task is cancelled (live)."""
        self._metrics.ready.set(1)
        async for frame in source.frames():
            self._last_frame.set(self._clock.now_ns() / 1e9)
            await self.handle(frame)
        return self.stats
