"""JetStream publishes without waiting: each publish returns the future of its ack.

What ``JetStreamContext.publish_async`` does, leaner, and without its defect:
nats-py 2.16's ``publish_async`` never resolves the future of an error reply
(``maximum messages exceeded``, ``message size exceeds maximum allowed``: a
user's quota), so a publisher waiting on it waits forever. Here a publish is
one core-NATS message with a reply subject on this connection's own ack
inbox, and the ack resolves its future (to the ack's JSON, ``{"stream", "seq",
"duplicate"}``). An error reply (``{"error": ...}``)
fails it with :class:`nats.js.errors.APIError`, no stream with
:class:`nats.js.errors.NoStreamResponseError`. A future cancelled by its
waiter (a timeout) is forgotten. The caller bounds the wait.

Used by execution's group commit (one event per intent) and by the strategy
host's intent publisher (intents and bot snapshots, in order).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

NO_RESPONDERS = "503"


class PublishAcks:
    """Publishes to JetStream and resolves the acks (module docstring).

    Parameters
    ----------
    nc
        The connection to publish on (its own inbox receives the acks).
    """

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._prefix = ""
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._next = 0

    async def start(self) -> None:
        """Subscribe to the ack inbox (call once, before :meth:`publish`)."""
        self._prefix = f"{self._nc.new_inbox()}."
        await self._nc.subscribe(f"{self._prefix}*", cb=self._on_ack)

    @property
    def pending(self) -> int:
        """Publishes whose ack has not come (nor been given up)."""
        return len(self._pending)

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> asyncio.Future[bytes]:
        """Publish ``payload`` (with ``headers``, e.g. ``Nats-Msg-Id``); the future of its ack.

        Raises what the connection's publish raises (not connected, closed); the
        future then is cancelled.
        """
        self._next += 1
        token = str(self._next)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        future.add_done_callback(lambda _: self._pending.pop(token, None))
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
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
            future.set_result(msg.data)


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
