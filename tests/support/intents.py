"""Intents on the bus in tests: the per-user streams, what execution still has to take,
and a recorder of every intent published.

Each user's intents are in ``INTENTS_<user>``, a work queue: an intent execution
acked is gone from it. Tests that want to see what was sent record it as it is
published (:class:`IntentRecorder`, a core subscription, in publish order).
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tradebus.common import subjects
from tradebus.common.bus import IntentQuota, ensure_stream, intents_stream_config
from tradebus.common.codec import decode_intent
from tradebus.common.messages import Intent


async def ensure_intent_streams(js: JetStreamContext, users: list[str]) -> None:
    """Create each user's ``INTENTS_<user>`` as execution does (for tests without it)."""
    for user in users:
        await ensure_stream(js, intents_stream_config(user, IntentQuota()))


async def intent_streams(js: JetStreamContext) -> list[str]:
    """The names of every ``INTENTS_<user>`` stream."""
    names = [info.config.name for info in await js.streams_info()]
    return [n for n in names if n is not None and subjects.intents_stream_user(n) is not None]


async def consumer_totals(js: JetStreamContext, consumer: str = "execution") -> tuple[int, int]:
    """``(pending, ack pending)`` of execution's consumers, summed over every user's stream:
    intents not delivered yet, and delivered but not acked."""
    pending = ack_pending = 0
    for stream in await intent_streams(js):
        info = await js.consumer_info(stream, consumer)
        pending += info.num_pending or 0
        ack_pending += info.num_ack_pending or 0
    return pending, ack_pending


async def intents_waiting(nc: NATS, consumer: str = "execution") -> int:
    """Intents not yet taken and acked by execution, over every user's stream."""
    return sum(await consumer_totals(nc.jetstream(), consumer))


async def intents_settled(nc: NATS) -> bool:
    """True when execution has taken and acked every intent stored."""
    return await intents_waiting(nc) == 0


async def intents_stored(nc: NATS) -> int:
    """How many intents the user streams have ever stored (the sum of their last sequences)."""
    js = nc.jetstream()
    return sum([(await js.stream_info(s)).state.last_seq for s in await intent_streams(js)])


class IntentRecorder:
    """Every intent published on ``intent.>`` (and ``person.intent.>``), in publish order.

    ``records`` holds ``(subject, Nats-Msg-Id or None, intent)``; a payload that
    is not an intent is kept as its raw bytes.
    """

    def __init__(self) -> None:
        self.records: list[tuple[str, str | None, Intent | bytes]] = []

    async def start(self, nc: NATS) -> IntentRecorder:
        """Subscribe on ``nc`` (before the publishers start)."""

        async def record(msg: Any) -> None:
            try:
                intent: Intent | bytes = decode_intent(msg.data)
            except Exception:
                intent = msg.data
            msg_id = (msg.headers or {}).get("Nats-Msg-Id")
            self.records.append((msg.subject, msg_id, intent))

        for subject in (subjects.INTENT_ALL, subjects.PERSON_PREFIX + subjects.INTENT_ALL):
            await nc.subscribe(subject, cb=record, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await nc.flush()
        return self

    def intents(self) -> list[Intent]:
        """The decoded intents, in publish order."""
        return [i for _, _, i in self.records if not isinstance(i, bytes)]
