"""The lag of execution's durable consumers of every ``INTENTS_<user>``, as gauges.

Every few seconds :func:`watch_consumer_lag` asks JetStream for the info of
the consumer of each user's stream and :func:`record_consumer_info` sets
their sums: ``tradebus_execution_consumer_pending_messages`` (not delivered
yet), ``tradebus_execution_consumer_ack_pending_messages`` (delivered, not
acked) and ``tradebus_execution_consumer_redelivered_messages`` (delivered
more than once, not acked), labelled by consumer name. A failed query (a
consumer not created yet, NATS reconnecting) leaves the gauges as they were
and is retried within a second.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import nats.errors

from tradebus.common import subjects
from tradebus.common.ids import UserId
from tradebus.execution.metrics import ExecutionMetrics

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 5.0
"""How often the consumer's info is asked for."""


class ConsumerInfoSource(Protocol):
    """What the watcher needs of a JetStream context."""

    async def consumer_info(
        self, stream: str, consumer: str, timeout: float | None = None
    ) -> Any: ...


def record_consumer_info(metrics: ExecutionMetrics, consumer: str, infos: list[Any]) -> None:
    """Set the three lag gauges of ``consumer`` to the sums over ``ConsumerInfo`` s of
    every user's stream (None counts as 0)."""
    metrics.consumer_pending.labels(consumer=consumer).set(sum(i.num_pending or 0 for i in infos))
    metrics.consumer_ack_pending.labels(consumer=consumer).set(
        sum(i.num_ack_pending or 0 for i in infos)
    )
    metrics.consumer_redelivered.labels(consumer=consumer).set(
        sum(i.num_redelivered or 0 for i in infos)
    )


async def refresh_consumer_lag(
    js: ConsumerInfoSource, users: list[UserId], consumer: str, metrics: ExecutionMetrics
) -> bool:
    """Query the consumer of every user's stream once and set the gauges; False (gauges
    untouched) if a query failed."""
    infos = []
    for user in list(users):  # users come and go at run time
        try:
            infos.append(
                await js.consumer_info(subjects.intents_stream(user), consumer, timeout=2.0)
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            log.debug(
                "consumer info unavailable",
                extra={"consumer": consumer, "user": user, "error": repr(exc)},
            )
            return False
    record_consumer_info(metrics, consumer, infos)
    return True


async def watch_consumer_lag(
    js: ConsumerInfoSource,
    users: list[UserId],
    consumer: str,
    metrics: ExecutionMetrics,
    interval: float = LAG_INTERVAL_SECONDS,
) -> None:
    """Refresh the lag gauges every ``interval`` seconds until cancelled.

    After a failed query (at start the consumers may not exist yet) the next
    one comes after at most a second.
    """
    while True:
        ok = await refresh_consumer_lag(js, users, consumer, metrics)
        await asyncio.sleep(interval if ok else min(interval, 1.0))


def start_consumer_lag(
    js: ConsumerInfoSource, users: list[UserId], consumer: str, metrics: ExecutionMetrics
) -> asyncio.Task[None]:
    """Start :func:`watch_consumer_lag` as a task (the caller cancels it when stopping)."""
    return asyncio.create_task(
        watch_consumer_lag(js, users, consumer, metrics), name="consumer-lag"
    )
