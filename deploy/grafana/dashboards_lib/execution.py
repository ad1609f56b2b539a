"""The execution dashboard: health, throughput, latencies, its JetStream consumer."""

from __future__ import annotations

from . import panels
from .builder import ONE_GOOD, UP_DOWN, ZERO, ZERO_GOOD, Board, target

CONSUMER = (
    (
        "Pending messages",
        "Intents in INTENTS not yet delivered to execution's durable consumer."
        " Growing: execution lags behind the bots.",
        "tradebus_execution_consumer_pending_messages",
    ),
    (
        "Ack pending",
        "Intents delivered to execution and not acknowledged yet.",
        "tradebus_execution_consumer_ack_pending_messages",
    ),
    (
        "Redelivered",
        "Intents delivered more than once and not acknowledged yet (execution restarted"
        " or was too slow to ack). Should be 0.",
        "tradebus_execution_consumer_redelivered_messages",
    ),
)
"""Title, description and gauge of the intent consumer's panels."""


def execution() -> Board:
    """The execution service's health, throughput, latencies, consumer and process."""
    b = Board(
        "tradebus-execution",
        "tradebus execution",
        "The execution service: health, throughput, latencies, its JetStream consumer.",
    )
    b.row("Health")
    b.stat(
        "Execution up",
        "Whether Prometheus reaches the execution service.",
        target('sum(up{job="execution"})'),
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )
    panels.execution_healthy(b)
    panels.kill_switch(b)
    panels.accounts_halted(b)
    panels.open_orders(b)
    b.stat(
        "Rejects (1h)",
        "Refused intents and venue rejections over the last hour.",
        target("sum(increase(tradebus_execution_rejects_total[1h]))" + ZERO),
        decimals=0,
        steps=ZERO_GOOD,
    )
    b.row("Throughput")
    b.timeseries(
        "Intents received / s",
        "Intents execution decoded, by type.",
        target("sum by (type) (rate(tradebus_execution_intents_received_total[1m]))", "{{type}}"),
        w=6,
        unit="ops",
    )
    panels.order_updates(
        b, "Order state changes, by new status (accepted, filled, canceled, rejected...).", w=6
    )
    panels.fills_recorded(b, "Fills recorded / s", "Fills booked in the ledger, by venue.", w=6)
    panels.rejects(b, "Refused intents and venue rejections, by reason (0 when none).", w=6)
    b.row("Latency")
    panels.latency(
        b,
        "Intent -> venue ack",
        "From an intent's creation in strategy to the venue's acceptance.",
        "tradebus_execution_intent_to_ack_seconds",
    )
    panels.latency(
        b,
        "Intent processing",
        "Time to process one intent in execution (ledger + venue + event).",
        "tradebus_execution_intent_processing_seconds",
    )
    panels.latency(
        b,
        "Fill -> ledger",
        "From a venue fill to its ledger commit.",
        "tradebus_execution_fill_to_ledger_seconds",
    )
    b.row("Intent consumer")
    for title, description, metric in CONSUMER:
        b.timeseries(
            title,
            description,
            target(
                f"sum by (consumer) ({metric})",
                "{{consumer}}",
            ),
            w=8,
        )
    b.row("Process")
    b.timeseries(
        "CPU",
        "CPU time of the execution process per second (1 = one core).",
        target('sum(rate(process_cpu_seconds_total{job="execution"}[1m]))', "cpu"),
        unit="percentunit",
    )
    b.timeseries(
        "Resident memory",
        "Resident memory of the execution process.",
        target('sum(process_resident_memory_bytes{job="execution"})', "rss"),
        unit="bytes",
    )
    return b
