"""One user's durable pull consumer kept fed by a standing pull request.

nats-py's ``PullSubscription.fetch`` takes each message with ``next_msg``: a
task, a timer and a uuid per message, and a fetch that returns before the next
intent comes has to be asked again. :class:`Puller` instead keeps one pull
request outstanding (``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`` with
``batch`` = the room the user has, ``expires``), and JetStream delivers each
message to its inbox as it is stored, where a callback hands it on. When the
request is used up (``batch`` messages) or ends (a status: ``404``/``408`` no
more / expired, ``409`` consumer changed), the next one is sent. A request the
server lost (a restart) is given up after ``expires`` plus a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

log = logging.getLogger(__name__)

PULL_EXPIRES_SECONDS = 5.0
"""How long one pull request waits for messages at the server."""
PULL_GRACE_SECONDS = 2.0
"""How much longer than ``expires`` a request may stay unanswered before it is sent again."""
CONFLICT_PAUSE_SECONDS = 0.5
"""Pause after a ``409`` (consumer deleted or changed, too many requests) before asking again."""


class Puller:
    """Keeps one pull request outstanding on ``consumer`` of ``stream`` (module docstring).

    Parameters
    ----------
    nc
        NATS connection (system account).
    stream, consumer
        The durable consumer to pull from.
    take
        Called with each message delivered (never a status message), in order.
    room
        How many more messages may be taken now (0: wait for ``roomy``).
    roomy
        Set when room is made (the caller clears it when full).
    expires
        Seconds one request waits at the server.
    """

    def __init__(
        self,
        nc: NATS,
        stream: str,
        consumer: str,
        take: Callable[[Msg], None],
        room: Callable[[], int],
        roomy: asyncio.Event,
        expires: float = PULL_EXPIRES_SECONDS,
    ) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._take = take
        self._room = room
        self._roomy = roomy
        self._expires = expires
        self._left = 0
        self._done = asyncio.Event()
        self._conflict = False

    async def run(self) -> None:
        """Pull until cancelled."""
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, cb=self._on_msg)
        try:
            while True:
                free = self._room()
                if free <= 0:
                    self._roomy.clear()
                    await self._roomy.wait()
                    continue
                self._left = free
                self._done.clear()
                request = {"batch": free, "expires": int(self._expires * 1e9)}
                try:
                    await self._nc.publish(self._next, json.dumps(request).encode(), reply=inbox)
                except Exception as exc:  # the connection is closing or reconnecting
                    log.warning("pull request not sent", extra={"error": repr(exc)})
                    await asyncio.sleep(CONFLICT_PAUSE_SECONDS)
                    continue
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: cancelling this task while wait_for
                    # awaited the event took 30 s to end on CPython 3.11 (execution's stop)
                    async with asyncio.timeout(self._expires + PULL_GRACE_SECONDS):
                        await self._done.wait()
                if self._conflict:
                    self._conflict = False
                    await asyncio.sleep(CONFLICT_PAUSE_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        if msg.reply:  # a stored message: its reply is its ack subject (whatever its headers)
            self._left -= 1
            if self._left <= 0:
                self._done.set()
            self._take(msg)
            return
        status = msg.headers.get("Status") if msg.headers else None
        if status == "100":
            return  # idle heartbeat or flow control
        if status == "409":
            self._conflict = True
        self._done.set()  # 404 no messages, 408 expired, 409: this request is over
