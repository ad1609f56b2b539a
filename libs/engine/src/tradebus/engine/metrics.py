"""Prometheus metrics of the execution core (``tradebus_execution_*``).

The execution service registers them with its own (:mod:`tradebus.execution.metrics`);
a backtest gives them a registry nobody scrapes.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tradebus.common.metrics import LATENCY_BUCKETS


class EngineMetrics:
    """Counters, gauges and latency histograms of one execution core.

    Parameters
    ----------
    registry
        Where they are registered.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.intents = Counter(
            "tradebus_execution_intents_received",
            "Intents decoded, by type",
            ["type"],
            registry=registry,
        )
        self.orders = Counter(
            "tradebus_execution_orders",
            "Order state changes, by new status and the order's user",
            ["status", "user"],
            registry=registry,
        )
        self.rejects = Counter(
            "tradebus_execution_rejects",
            "Refused intents and venue rejections, by reason and user"
            ' ("" when the subject names none)',
            ["reason", "user"],
            registry=registry,
        )
        self.cancel_rejects = Counter(
            "tradebus_execution_cancel_rejects",
            "Cancels that could not cancel (order unknown or already done), by reason",
            ["reason"],
            registry=registry,
        )
        self.fills = Counter(
            "tradebus_execution_fills_recorded",
            "Fills booked in the ledger, by venue and the order's user",
            ["venue", "user"],
            registry=registry,
        )
        self.venue_fills = Counter(
            "tradebus_execution_venue_fills",
            "Fills reported by venues (before de-duplication)",
            ["venue"],
            registry=registry,
        )
        self.ticks = Counter(
            "tradebus_execution_ticks_received",
            "Market ticks received by the paper venue",
            ["venue", "symbol"],
            registry=registry,
        )
        self.open_orders = Gauge(
            "tradebus_execution_open_orders", "Orders open at venues", registry=registry
        )
        self.intent_to_ack = Histogram(
            "tradebus_execution_intent_to_ack_seconds",
            "From an intent's creation to the venue's acceptance",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.intent_seconds = Histogram(
            "tradebus_execution_intent_processing_seconds",
            "Time to process one intent (ledger + venue + event)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fill_to_ledger = Histogram(
            "tradebus_execution_fill_to_ledger_seconds",
            "From a venue fill to its ledger commit",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.margin_ratio = Gauge(
            "tradebus_execution_margin_ratio",
            "A perpetual account's maintenance margin over its equity, as last measured at"
            " its venue (the venue liquidates at 1)",
            ["account"],
            registry=registry,
        )
        self.account_halted = Gauge(
            "tradebus_execution_account_halted",
            "1 while the account is halted (its venue refuses its keys or permissions)",
            ["account", "reason"],
            registry=registry,
        )
        self.killswitch_engaged = Gauge(
            "tradebus_execution_killswitch_engaged",
            "1 while the kill switch of the scope (global, or an account) is engaged",
            ["scope"],
            registry=registry,
        )
        self.healthy = Gauge(
            "tradebus_execution_healthy",
            "1 while the ledger and the bus take writes; 0 while intents and fills wait",
            registry=registry,
        )
        self.healthy.set(1)
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Counter, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once per label values (the hot path)."""
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def order_status(self, status: str, user: str) -> None:
        """An order of ``user`` moved to ``status``."""
        self._child(self.orders, status, user).inc()

    def rejected(self, reason: str, user: str) -> None:
        """An intent of ``user`` refused, or an order rejected by its venue, for ``reason``."""
        self._child(self.rejects, reason, user).inc()

    def intents_received(self, kind: str, count: int = 1) -> None:
        """``count`` intents of type ``kind`` taken."""
        self._child(self.intents, kind).inc(count)

    def fill_booked(self, venue: str, user: str) -> None:
        """A fill of ``user``'s order on ``venue`` booked."""
        self._child(self.fills, venue, user).inc()

    def cancel_rejected(self, reason: str) -> None:
        """A cancel that could not cancel, for ``reason``."""
        self._child(self.cancel_rejects, reason).inc()
