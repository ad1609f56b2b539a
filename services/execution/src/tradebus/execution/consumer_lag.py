"""The lag of execution's durable ``INTENTS`` consumer, as gauges.

Every few seconds :func:`watch_consumer_lag` asks JetStream for the
consumer's info and :func:`record_consumer_info` sets
``tradebus_execution_consumer_pending_messages`` (not delivered yet),
``tradebus_execution_consumer_ack_pending_messages`` (delivered, not acked)
and ``tradebus_execution_consumer_redelivered_messages`` (delivered more than
once, not acked), labelled by consumer name. A failed query (the consumer not
created yet, NATS reconnecting) leaves the gauges as they were and is retried
within a second.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import nats.errors

from tradebus.common import subjects
from tradebus.execution.metrics import ExecutionMetrics

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 5.0
"""How often the consumer's info is asked for."""


class ConsumerInfoSource(Protocol):
    """What the watcher needs of a JetStream context."""

    async def consumer_info(
        self, stream: str, consumer: str, timeout: float | None = None
    ) -> Any: ...


def record_consumer_info(metrics: ExecutionMetrics, consumer: str, info: Any) -> None:
    """Set the three lag gauges of ``consumer`` from a ``ConsumerInfo`` (None counts as 0)."""
    metrics.consumer_pending.labels(consumer=consumer).set(info.num_pending or 0)
    metrics.consumer_ack_pending.labels(consumer=consumer).set(info.num_ack_pending or 0)
    metrics.consumer_redelivered.labels(consumer=consumer).set(info.num_redelivered or 0)


async def refresh_consumer_lag(
    js: ConsumerInfoSource, consumer: str, metrics: ExecutionMetrics
) -> bool:
    """Query the consumer once and set its gauges; False (gauges untouched) if that failed."""
    try:
        info = await js.consumer_info(subjects.STREAM_INTENTS, consumer, timeout=2.0)
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        log.debug("consumer info unavailable", extra={"consumer": consumer, "error": repr(exc)})
        return False
    record_consumer_info(metrics, consumer, info)
    return True


async def watch_consumer_lag(
    js: ConsumerInfoSource,
    consumer: str,
    metrics: ExecutionMetrics,
    interval: float = LAG_INTERVAL_SECONDS,
) -> None:
    """Refresh the consumer's lag gauges every ``interval`` seconds until cancelled.

    After a failed query (at start the consumer may not exist yet) the next
    one comes after at most a second.
    """
    while True:
        ok = await refresh_consumer_lag(js, consumer, metrics)
        await asyncio.sleep(interval if ok else min(interval, 1.0))


def start_consumer_lag(
    js: ConsumerInfoSource, consumer: str, metrics: ExecutionMetrics
) -> asyncio.Task[None]:
    """Start :func:`watch_consumer_lag` as a task (the caller cancels it when stopping)."""
    return asyncio.create_task(watch_consumer_lag(js, consumer, metrics), name="consumer-lag")
