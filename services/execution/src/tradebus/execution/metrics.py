"""Prometheus metrics of the execution service (``tradebus_execution_*``): the core's
(:class:`~tradebus.engine.metrics.EngineMetrics`) and the intake's."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tradebus.common.ids import AccountId
from tradebus.engine.metrics import EngineMetrics
from tradebus.engine.venue import Venue


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


class VenueClockCollector(Collector):
    """``tradebus_execution_venue_clock_offset_seconds{account, venue}``: how far our clock
    is ahead of each live venue's (negative: behind), as last measured (at start, and
    after a request the venue refused as expired), read at each scrape from the engine's
    venues (accounts added or removed at run time included). The alert
    ``TradebusVenueClockDrift`` fires on it."""

    def __init__(self, venues: Mapping[AccountId, Venue]) -> None:
        self._venues = venues

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "tradebus_execution_venue_clock_offset_seconds",
            "Our clock minus the live venue's, as last measured from its time endpoint",
            labels=["account", "venue"],
        )
        for account, venue in sorted(self._venues.items()):
            offset = getattr(venue, "clock_offset_ms", None)
            if offset is not None:
                family.add_metric([account, venue.name], offset / 1000)
        yield family
