"""Events published to JetStream without waiting: each publish returns the future of its ack.

What ``JetStreamContext.publish_async`` does, leaner for execution's group
commit (one event per intent, up to a fetch batch in flight): a publish is
one core-NATS message with a reply subject on this connection's own ack
inbox, and the ack resolves its future. An error reply (``{"error": ...}``)
fails it with :class:`nats.js.errors.APIError`, no stream with
:class:`nats.js.errors.NoStreamResponseError`. A future cancelled by its
waiter (a timeout) is forgotten. The caller bounds the wait
(:meth:`OrderEvents.flush <tradebus.execution.events.OrderEvents.flush>`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from tradebus.common.bus import MSG_ID
from tradebus.common.codec import encode
from tradebus.common.messages import Message

NO_RESPONDERS = "503"


class EventAcks:
    """Publishes events and resolves their JetStream acks (module docstring)."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix = ""
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._next = 0

    async def start(self) -> None:
        """Subscribe to the ack inbox (call once, before :meth:`publish`)."""
        self._prefix = f"{self._nc.new_inbox()}."
        await self._nc.subscribe(f"{self._prefix}*", cb=self._on_ack)

    @property
    def pending(self) -> int:
        """Publishes whose ack has not come (nor been given up)."""
        return len(self._pending)

    async def publish(self, subject: str, event: Message, msg_id: str) -> asyncio.Future[None]:
        """Publish ``event`` with ``Nats-Msg-Id = msg_id``; the future of its ack."""
        self._next += 1
        token = str(self._next)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        future.add_done_callback(lambda _: self._pending.pop(token, None))
        try:
            await self._nc.publish(
                subject, encode(event), reply=self._prefix + token, headers={MSG_ID: msg_id}
            )
        except BaseException:
            future.cancel()
            raise
        return future

    async def _on_ack(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[len(self._prefix) :], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
            future.set_exception(nats.js.errors.NoStreamResponseError())
        elif b'"error"' in msg.data:
            future.set_exception(_api_error(msg.data))
        else:
            future.set_result(None)


def _api_error(data: bytes) -> Exception:
    """The error JetStream answered with, as ``publish`` would raise it."""
    try:
        error: Any = json.loads(data)["error"]
        nats.js.errors.APIError.from_error(error)  # raises it
    except nats.js.errors.APIError as exc:
        return exc
    except (ValueError, KeyError, TypeError):
        pass
    return nats.js.errors.APIError(description=data[:200].decode(errors="replace"))
