"""Prometheus metrics of a strategy host (``tradebus_strategy_*``, docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tradebus.common.metrics import LATENCY_BUCKETS
from tradebus.strategy.bot_metrics import BotGauges


class HostMetrics:
    """Prometheus metrics of a strategy host (``tradebus_strategy_*``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ticks = Counter(
            "tradebus_strategy_ticks_received",
            "Market ticks received",
            ["venue", "symbol"],
            registry=registry,
        )
        self.stale_ticks = Counter(
            "tradebus_strategy_stale_ticks",
            "Ticks not given to bots: older than TRADEBUS_MAX_PRICE_AGE_SECONDS when received",
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
        self.leases = Gauge(
            "tradebus_strategy_leases_held",
            "Bots this replica runs under its replica lease (0 while it holds none)",
            registry=registry,
        )
        self.resumes = Counter(
            "tradebus_strategy_bot_starts",
            "Bots started on this host, by mode (fresh, resume)",
            ["mode"],
            registry=registry,
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
        self.bot_gauges = BotGauges(registry)
        """Per-bot P&L and position (``tradebus_strategy_bot_*``)."""
