"""The strategy host's dispatcher: routes market and order events to bots, collects intents.

No network here: the bootstrap feeds it decoded bus payloads and gives it an
:class:`IntentSink`; this module decides which bots see what, keeps one
failing bot from stopping the others, and counts what happens.

Dispatch is by market: the host subscribes once per ``(venue, symbol)`` and
hands each tick to every bot on that market, in a fixed order, so the same
ticks always produce the same intents.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tradebus.common import subjects
from tradebus.common.messages import BotStatus, Intent, OrderEvent, QuoteTick, TradeTick
from tradebus.common.metrics import LATENCY_BUCKETS
from tradebus.strategy.core import Strategy

log = logging.getLogger(__name__)


class IntentSink(Protocol):
    """Where intents go: ``submit(subject, intent, tick_ts_init)`` must not block."""

    def submit(self, subject: str, intent: Intent, tick_ts_init: int | None) -> None: ...


class HostMetrics:
    """Prometheus metrics of a strategy host (``tradebus_strategy_*``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ticks = Counter(
            "tradebus_strategy_ticks_received",
            "Market ticks received",
            ["venue", "symbol"],
            registry=registry,
        )
        self.events = Counter(
            "tradebus_strategy_order_events",
            "Order events received, by type",
            ["type"],
            registry=registry,
        )
        self.intents = Counter(
            "tradebus_strategy_intents_published",
            "Intents acknowledged by JetStream, by type",
            ["type"],
            registry=registry,
        )
        self.bot_errors = Counter(
            "tradebus_strategy_bot_errors",
            "Exceptions raised by strategy cores",
            ["strategy"],
            registry=registry,
        )
        self.bots = Gauge(
            "tradebus_strategy_bots", "Bots on this host, by state", ["state"], registry=registry
        )
        self.tick_to_intent = Histogram(
            "tradebus_strategy_tick_to_intent_seconds",
            "From a tick's creation in marketdata to its intent's JetStream ack",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ready = Gauge(
            "tradebus_strategy_ready", "1 once subscriptions are up", registry=registry
        )


class Dispatcher:
    """Routes events to bots and their intents to the sink.

    Parameters
    ----------
    bots
        The bots this host runs (order is the dispatch order).
    sink
        Receives every intent with its subject ``intent.<user>.<bot>``.
    metrics
        Host metrics.
    """

    def __init__(self, bots: list[Strategy], sink: IntentSink, metrics: HostMetrics) -> None:
        self._sink = sink
        self._metrics = metrics
        self.bots: dict[str, Strategy] = {}
        self._by_market: dict[tuple[str, str], list[Strategy]] = defaultdict(list)
        self._subjects: dict[str, str] = {}
        for bot in bots:
            ctx = bot.ctx
            self.bots[ctx.bot] = bot
            self._by_market[(ctx.venue, ctx.market.symbol)].append(bot)
            self._subjects[ctx.bot] = subjects.intent(ctx.user, ctx.bot)
        self._tick_counters = {
            key: metrics.ticks.labels(venue=key[0], symbol=key[1]) for key in self._by_market
        }
        self.stopped = False

    def markets(self) -> list[tuple[str, str]]:
        """Every ``(venue, symbol)`` some bot trades, sorted."""
        return sorted(self._by_market)

    def _emit(self, bot: Strategy, intents: list[Intent], tick_ts_init: int | None) -> None:
        subject = self._subjects[bot.ctx.bot]
        for intent in intents:
            self._sink.submit(subject, intent, tick_ts_init)

    def _fail(self, bot: Strategy, exc: Exception) -> None:
        self._metrics.bot_errors.labels(strategy=bot.ctx.strategy).inc()
        log.exception("bot raised", extra={"bot": bot.ctx.bot, "error": repr(exc)})

    def on_tick(self, tick: QuoteTick | TradeTick) -> int:
        """Hand one tick to every bot on its market; returns how many intents they emitted."""
        if self.stopped:
            return 0
        key = (tick.venue, tick.symbol)
        bots = self._by_market.get(key)
        if not bots:
            return 0
        self._tick_counters[key].inc()
        is_trade = isinstance(tick, TradeTick)
        emitted = 0
        for bot in bots:
            try:
                intents = bot.on_trade(tick) if is_trade else bot.on_quote(tick)  # type: ignore[arg-type]
            except Exception as exc:  # one failing bot must not stop the others
                self._fail(bot, exc)
                continue
            if intents:
                emitted += len(intents)
                self._emit(bot, intents, tick.ts_init)
        return emitted

    def on_order_event(self, user: str, source: str, event: OrderEvent) -> None:
        """Hand an order event to the bot it belongs to (``exec.evt.<user>.<bot>``)."""
        self._metrics.events.labels(type=type(event).__name__).inc()
        bot = self.bots.get(source)
        if bot is None or bot.ctx.user != user:
            return
        try:
            intents = bot.on_order_event(event)
        except Exception as exc:
            self._fail(bot, exc)
            return
        if intents:
            self._emit(bot, intents, None)

    def stop_all(self) -> None:
        """Stop every bot (their cancels go to the sink) and ignore further ticks."""
        self.stopped = True
        for bot in self.bots.values():
            try:
                self._emit(bot, bot.on_stop(), None)
            except Exception as exc:
                self._fail(bot, exc)

    def open_orders(self) -> int:
        """Open orders over all bots."""
        return sum(bot.status().open_orders for bot in self.bots.values())

    def statuses(self, bot_id: str | None = None) -> list[BotStatus]:
        """Status blocks of every bot, or of one (empty if not here)."""
        if bot_id is not None:
            bot = self.bots.get(bot_id)
            return [] if bot is None else [bot.status()]
        return [bot.status() for bot in self.bots.values()]

    def update_state_gauge(self) -> None:
        """Refresh ``tradebus_strategy_bots{state}``."""
        counts: dict[str, int] = defaultdict(int)
        for status in self.statuses():
            counts[status.state] += 1
        for state in ("waiting", "buying", "restarting", "closing", "stopped", "failed"):
            self._metrics.bots.labels(state=state).set(counts.get(state, 0))
