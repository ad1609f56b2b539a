"""Publishes intents and KV puts to JetStream in order, with ``Nats-Msg-Id`` = intent id.

Intents and bot snapshots (KV puts, which are JetStream publishes on
``$KV.<bucket>.<key>``) are queued synchronously by the dispatcher and
published by one task, so they reach the server in the order the bots
emitted them: a snapshot queued before an intent is sent before it. Publishing is
pipelined (:class:`~tradebus.common.publish_acks.PublishAcks`, every ack
awaited at most :data:`ACK_TIMEOUT_SECONDS`); a publish that is not
acknowledged is sent again with the same message id, which JetStream
de-duplicates within its duplicate window, and which the ledger
de-duplicates forever by intent id.

Users cannot hold each other up here: each user's intents go to their own
stream (``INTENTS_<user>``) within that user's quota, and when one user's
intent is refused (their backlog is full, their stream is missing) only
that user's later intents wait behind it, in order, retried with a back-off;
every other user's intents and every snapshot keep going out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import NamedTuple

import msgspec
import nats.errors

from tradebus.common import subjects
from tradebus.common.bus import MSG_ID
from tradebus.common.clock import Clock
from tradebus.common.codec import encode
from tradebus.common.messages import Intent
from tradebus.common.publish_acks import PublishAcks
from tradebus.strategy.host_metrics import HostMetrics

log = logging.getLogger(__name__)

ACK_TIMEOUT_SECONDS = 5.0
"""How long a batch's JetStream acks are awaited before the unanswered ones are sent again."""
MAX_BACKOFF_SECONDS = 2.0


class Item(NamedTuple):
    """One queued publish."""

    subject: str
    payload: bytes
    msg_id: str | None
    """``Nats-Msg-Id`` (the intent id), None for a KV put."""
    kind: str | None
    """The intent's type name, None for a KV put."""
    tick_ts: int | None
    """``ts_init`` of the tick that caused the intent (tick-to-intent latency)."""
    user: str | None
    """The intent's user (its stream), None for a KV put."""


class IntentPublisher:
    """Queue + single publishing task (see module docstring).

    Parameters
    ----------
    acks
        Publishes to JetStream and resolves the acks (started).
    clock
        For the tick-to-intent latency.
    metrics
        Host metrics (intents published, latency).
    batch
        Most intents in flight at once.
    """

    def __init__(
        self, acks: PublishAcks, clock: Clock, metrics: HostMetrics, batch: int = 512
    ) -> None:
        self._acks = acks
        self._clock = clock
        self._metrics = metrics
        self._batch = batch
        self._queue: deque[Item] = deque()
        self._held: dict[str, deque[Item]] = {}
        """Per user, intents waiting behind one of theirs that was refused."""
        self._retry_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, subject: str, intent: Intent, tick_ts_init: int | None) -> None:
        """Queue one intent (never blocks).

        Its ``ts_init`` is set to now (the host's clock, ns): a core stamps its
        intents with the market event's time, which is the recording's time in
        a replay; execution measures intent-to-ack latency from ``ts_init``.
        """
        intent = msgspec.structs.replace(intent, ts_init=self._clock.now_ns())
        user = subjects.parse_intent(subject).user
        kind = type(intent).__name__
        self._queue.append(
            Item(subject, encode(intent), intent.intent_id, kind, tick_ts_init, user)
        )
        self._idle.clear()
        self._wake.set()

    def put_kv(self, bucket: str, key: str, value: bytes) -> None:
        """Queue a KV put (never blocks); it keeps its place among the intents."""
        self._queue.append(Item(subjects.kv_subject(bucket, key), value, None, None, None, None))
        self._idle.clear()
        self._wake.set()

    def put_record(self, subject: str, payload: bytes) -> None:
        """Queue a JetStream publish of a record (no message id; a dry-run bot's
        :class:`~tradebus.common.messages.DryRunRecord`); it keeps its place in the order."""
        self._queue.append(Item(subject, payload, None, None, None, None))
        self._idle.clear()
        self._wake.set()

    def put_state(self, bot: str, record: bytes) -> None:
        """Queue the snapshot record of ``bot`` for KV ``bot_state``."""
        self.put_kv(subjects.KV_BOT_STATE, bot, record)

    @property
    def held_users(self) -> list[str]:
        """Users whose intents wait behind one of theirs that was refused."""
        return sorted(self._held)

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued intent is acknowledged; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def run(self) -> None:
        """Publish forever (cancel the task to stop)."""
        backoff = 0.05
        while True:
            items = self._take(time.monotonic())
            if not items:
                await self._wait()
                continue
            failed = await self._publish(items)
            puts = [i for i in failed if i.user is None]
            for item in reversed(failed):
                if item.user is not None:
                    self._hold(item)
            if puts:  # the bus itself fails (KV puts are never refused by a quota)
                self._queue.extendleft(reversed(puts))
                log.warning("publish failed; retrying", extra={"count": len(puts)})
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
            else:
                backoff = 0.05

    def _take(self, now: float) -> list[Item]:
        """The next batch: the held intents of users due for a retry, then the queue
        (an intent of a user still held joins the end of that user's wait)."""
        items: list[Item] = []
        for user in [u for u, at in self._retry_at.items() if at <= now]:
            del self._retry_at[user]
            items.extend(self._held.pop(user))
        while self._queue and len(items) < self._batch:
            item = self._queue.popleft()
            held = self._held.get(item.user) if item.user is not None else None
            if held is not None:
                held.append(item)
            else:
                items.append(item)
        return items

    def _hold(self, item: Item) -> None:
        """Put ``item`` at the front of its user's wait and schedule the user's retry."""
        user = item.user
        assert user is not None
        held = self._held.get(user)
        if held is None:
            held = self._held[user] = deque()
            delay = self._backoff[user] = min(
                MAX_BACKOFF_SECONDS, 2 * self._backoff.get(user, 0.025)
            )
            self._retry_at[user] = time.monotonic() + delay
        held.appendleft(item)

    async def _wait(self) -> None:
        """Wait for a new item or the next retry; idle when nothing is queued or held."""
        if not self._held:
            self._idle.set()
        self._wake.clear()
        timeout = None
        if self._retry_at:
            timeout = max(0.0, min(self._retry_at.values()) - time.monotonic())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _publish(self, items: list[Item]) -> list[Item]:
        """Publish ``items`` pipelined; the ones not acknowledged, in order."""
        futures: list[asyncio.Future[bytes]] = []
        try:
            for item in items:
                headers = {MSG_ID: item.msg_id} if item.msg_id is not None else None
                futures.append(await self._acks.publish(item.subject, item.payload, headers))
        except Exception as exc:  # not sent: connection down
            log.warning("intent publish not sent", extra={"error": repr(exc)})
        if futures:
            _, late = await asyncio.wait(futures, timeout=ACK_TIMEOUT_SECONDS)
            for unanswered in late:
                unanswered.cancel()
        failed = []
        refused: dict[str, str] = {}
        now = self._clock.now_ns()
        for i, item in enumerate(items):
            future = futures[i] if i < len(futures) else None
            error = _failure(future)
            if error is not None:
                failed.append(item)
                if item.user is not None and item.user not in self._held:
                    refused.setdefault(item.user, error)
                continue
            if item.user is not None:
                self._backoff.pop(item.user, None)
            if item.kind is None:
                continue
            self._metrics.intents.labels(type=item.kind).inc()
            if item.tick_ts is not None:
                self._metrics.tick_to_intent.observe(max(0, now - item.tick_ts) / 1e9)
        for user, error in refused.items():
            log.warning(
                "a user's intents wait: JetStream refused one", extra={"user": user, "error": error}
            )
        return failed


def _failure(future: asyncio.Future[bytes] | None) -> str | None:
    """Why a publish failed (never sent, no ack in time, an error reply), or None if acked."""
    if future is None:
        return "not sent"
    if future.cancelled():
        return "no ack in time"
    exc = future.exception()
    if exc is None:
        return None
    if not isinstance(exc, (nats.errors.Error, TimeoutError)):
        log.error("intent publish error", extra={"error": repr(exc)})
    return str(exc) or type(exc).__name__
