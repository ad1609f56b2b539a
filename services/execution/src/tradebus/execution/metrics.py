"""Prometheus metrics of the execution service (``tradebus_execution_*``): the core's
(:class:`~tradebus.engine.metrics.EngineMetrics`) and the intake's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from tradebus.engine.metrics import EngineMetrics


class ExecutionMetrics(EngineMetrics):
    """The core's metrics and those of the service around it (intake, consumers).

    Parameters
    ----------
    registry
        Where they are registered.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.ready = Gauge(
            "tradebus_execution_ready", "1 once consuming intents", registry=registry
        )
        self.consumer_pending = Gauge(
            "tradebus_execution_consumer_pending_messages",
            "Intents in every user's INTENTS_<user> not yet delivered to the durable consumer",
            ["consumer"],
            registry=registry,
        )
        self.consumer_ack_pending = Gauge(
            "tradebus_execution_consumer_ack_pending_messages",
            "Intents delivered to the durable consumer and not acked yet",
            ["consumer"],
            registry=registry,
        )
        self.consumer_redelivered = Gauge(
            "tradebus_execution_consumer_redelivered_messages",
            "Intents of the durable consumer delivered more than once and not acked yet",
            ["consumer"],
            registry=registry,
        )
        self.intents_held = Gauge(
            "tradebus_execution_intents_held",
            "Intents fetched and not yet acked: waiting in their account's lane or being handled",
            registry=registry,
        )
        self.lane_holds = Counter(
            "tradebus_execution_lane_holds",
            "Times an account's intents were held back (its venue must wait) while others flowed",
            registry=registry,
        )
        self.handler_errors = Counter(
            "tradebus_execution_handler_errors",
            "Unexpected exceptions while handling an intent (a defect; the intent is retried"
            " alone, then dead-lettered)",
            registry=registry,
        )
        self.dead_letters = Counter(
            "tradebus_execution_dead_letters",
            "Intents execution gave up on (copied to DEADLETTER, refused with dead_letter),"
            " by user",
            ["user"],
            registry=registry,
        )
