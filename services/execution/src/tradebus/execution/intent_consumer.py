"""Execution's intake: every user's ``INTENTS_<user>`` fetched on its own, handled fairly.

One durable pull consumer per user stream (:func:`tradebus.common.bus.intents_stream_config`),
each kept fed by a standing pull request (:class:`~.pull.Puller`) into the
:class:`~.fair_queue.FairQueue` while that user holds fewer than
``user_inflight`` intents there, so one user's
backlog never stands in front of another's. One loop hands the engine what
:meth:`FairQueue.batch` takes (round-robin over users, in order within each
account), acks what the engine handled, and:

* a group's intents are acked once JetStream has stored their events; the
  loop does not wait for that: it hands the engine the next batch meanwhile
  (at most :data:`PIPELINE_DEPTH` groups' acks outstanding), so the next
  group's ledger round trips overlap this group's event acks. If those acks
  fail, the group's intents are nak'ed: redelivered, they resume from their
  committed rows and their events go out again (same message ids);

* :class:`~.orders.RetryLater` (the first intent's live account is
  connecting, or its venue cannot answer now): that account's lane is held
  for a back-off (1 s doubling to :data:`MAX_HOLD_SECONDS`); every other lane
  keeps flowing. Nothing is nak'ed: the held intents stay where they are, in
  order, kept *in progress* at JetStream (``+WPI`` every ``ack_wait / 3``)
  so they are not redelivered meanwhile;
* any other of :data:`~.orders.TRANSIENT_ERRORS` (the ledger or the bus
  down): everything waits, the engine reports itself unhealthy, and the
  same batch is tried again after a back-off;
* any other exception is a defect met by one intent: its lane is held and
  it is tried again, alone, up to ``max_attempts`` times; then execution
  gives up on it (:meth:`IntentConsumer.give_up`): a copy with the error
  goes to stream ``DEADLETTER`` (``deadletter.intent.<user>``), the intent
  is refused with ``dead_letter`` (unless the ledger already answered it),
  and it is acked. Execution never exits because of a message.

An intent that took execution down with it is redelivered after the restart;
the consumer's ``max_deliver`` bounds that: JetStream then stops delivering
it and publishes a ``MAX_DELIVERIES`` advisory, which ``DEADLETTER``
captures and :meth:`IntentConsumer.watch_dead_letters` turns into the same
give-up (the intent is read back from its stream, then deleted from it).

Each user's rate (:class:`~.intent_rate.IntentRate`, on the server's clock) is
checked on the first delivery of each intent; an intent over it is refused
with ``quota_intent_rate``.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tradebus.common import subjects
from tradebus.common.bus import (
    IntentQuota,
    deadletter_stream_config,
    ensure_stream,
    intents_stream_config,
)
from tradebus.common.ids import AccountId, UserId
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.core import TRANSIENT_ERRORS, ExecutionEngine, RetryLater
from tradebus.engine.events import await_acks
from tradebus.engine.intake import Admitted, Refused, admit
from tradebus.engine.risk import Refusal
from tradebus.execution.fair_queue import Delivery, FairQueue
from tradebus.execution.intent_rate import REASON as RATE_REASON
from tradebus.execution.intent_rate import IntentRate
from tradebus.execution.metrics import ExecutionMetrics
from tradebus.execution.pull import Puller
from tradebus.execution.shard import Shard

log = logging.getLogger(__name__)

IDLE_FETCH_SECONDS = 30.0
"""How long a fetch of dead-letter advisories waits for the next one."""
SHARED_BATCH = 64
"""Most intents handed to the engine at once while more than one user has intents ready
(the batch is taken round-robin over users, so no user fills it alone).

It was 16 (a group's answers are published when the whole group is done); with
the group's event acks pipelined the group's own time is short, and larger
groups halve the ledger and bus round trips per intent (execbench, 20 users:
CPU per intent 0.25 -> 0.16 ms, throughput x2-3 on a loaded machine)."""
PIPELINE_DEPTH = 4
"""Most groups whose events' acks are awaited while the engine works on the next batches."""
MAX_HOLD_SECONDS = 10.0
"""The longest a waiting account's lane is held before its head is tried again."""
MAX_PAUSE_SECONDS = 5.0
"""The longest everything waits before a ledger or bus outage is tried again."""
DEADLETTER_CONSUMER_SUFFIX = "-deadletters"
"""The dead-letter advisories' consumer is ``<consumer>-deadletters`` (shard ``i`` of several:
``<consumer>-deadletters-<i>``; each sees every advisory and handles its own users')."""


class IntakeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How execution takes intents (from :class:`~.settings.ExecutionSettings`).

    Attributes
    ----------
    consumer
        Durable consumer name on every ``INTENTS_<user>``.
    fetch_batch
        Most intents handed to the engine at once (one group commit).
    user_inflight
        Most intents of one user held by execution (fetched, not yet acked).
    ack_wait
        Seconds JetStream waits for an ack before redelivering (held intents are
        kept in progress well within it).
    max_deliver
        Deliveries of one intent before JetStream gives up on it (dead letter).
    max_attempts
        Unexpected failures of one intent in this process before execution gives up on it.
    rate, burst
        Each user's intent rate limit (:class:`~.intent_rate.IntentRate`; rate 0: none).
    quota
        The limits of each user's stream (:class:`~tradebus.common.bus.IntentQuota`).
    shard
        Which users' streams this process owns (:class:`~.shard.Shard`); its dead-letter
        advisories consumer is ``<consumer>-deadletters<shard suffix>``.
    """

    consumer: str = "execution"
    fetch_batch: int = 64
    user_inflight: int = 512
    ack_wait: float = 30.0
    max_deliver: int = 10
    max_attempts: int = 3
    rate: float = 100.0
    burst: int = 1000
    quota: IntentQuota = IntentQuota()
    shard: Shard = Shard()


class IntentConsumer:
    """Fetches, schedules and acks every user's intents (see the module docstring).

    Parameters
    ----------
    engine
        Handles batches of intents.
    nc
        NATS connection (system account): the pull requests.
    js
        JetStream context on ``nc``.
    settings
        Consumer names, batch sizes, limits.
    metrics
        Execution metrics.
    users
        Every user with an account at start: one stream and one consumer each (more
        come and go at run time: :meth:`add_user`, :meth:`remove_user`).
    clock
        Monotonic seconds (holds, back-offs).
    """

    def __init__(
        self,
        engine: ExecutionEngine,
        nc: NATS,
        js: JetStreamContext,
        settings: IntakeSettings,
        metrics: ExecutionMetrics,
        users: list[UserId],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._nc = nc
        self._js = js
        self._settings = settings
        self._metrics = metrics
        self._users = sorted(set(users))
        self._clock = clock
        self._accounts: dict[AccountId, AccountSpec] = engine.accounts
        self._queue = FairQueue()
        self._rate = IntentRate(settings.rate, settings.burst)
        self._wake = asyncio.Event()
        self._room: dict[str, asyncio.Event] = {u: asyncio.Event() for u in self._users}
        self._holds: dict[tuple[str, str], int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[JetStreamContext.PullSubscription] = []
        self._fetchers: dict[str, asyncio.Task[None]] = {}
        self._started = False
        self._isolate = False
        self._storing: collections.deque[asyncio.Task[None]] = collections.deque()

    @property
    def queue(self) -> FairQueue:
        """The intents held now."""
        return self._queue

    @property
    def users(self) -> list[UserId]:
        """The users whose streams are fetched (sorted; the same list object, kept up to
        date by :meth:`add_user` and :meth:`remove_user`)."""
        return self._users

    # ------------------------------------------------------------------ set-up
    def consumer_config(self) -> ConsumerConfig:
        """The durable pull consumer of every ``INTENTS_<user>``."""
        s = self._settings
        return ConsumerConfig(
            name=s.consumer,
            durable_name=s.consumer,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=s.ack_wait,
            max_deliver=s.max_deliver,
            max_ack_pending=max(1_000, 2 * s.user_inflight),
        )

    async def start(self) -> None:
        """Create (or update) the ``DEADLETTER`` stream, each user's stream and consumer;
        start fetching, keeping held intents in progress, and watching dead letters."""
        await ensure_stream(self._js, deadletter_stream_config(self._settings.consumer))
        for user in list(self._users):
            await self._open_user(user)
        self._started = True
        dead = await self._js.pull_subscribe(
            subjects.max_deliveries_advisory("*", self._settings.consumer),
            durable=self._settings.consumer
            + DEADLETTER_CONSUMER_SUFFIX
            + self._settings.shard.suffix(),
            stream=subjects.STREAM_DEADLETTER,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60.0),
        )
        self._subs.append(dead)
        self._tasks.append(asyncio.create_task(self.watch_dead_letters(dead), name="deadletters"))
        self._tasks.append(asyncio.create_task(self._keep_in_progress(), name="in-progress"))

    async def _open_user(self, user: UserId) -> None:
        """Create (or update) ``user``'s stream and durable consumer; start fetching it."""
        stream = subjects.intents_stream(user)
        await ensure_stream(self._js, intents_stream_config(user, self._settings.quota))
        await self._js.add_consumer(stream, config=self.consumer_config())
        room = self._room[user]
        limit = self._settings.user_inflight
        puller = Puller(
            self._nc,
            stream,
            self._settings.consumer,
            lambda msg: self._took(user, msg),
            lambda: limit - self._queue.count(user),
            room,
        )
        self._fetchers[user] = asyncio.create_task(puller.run(), name=f"fetch-{user}")

    async def add_user(self, user: UserId) -> None:
        """Take ``user``'s intents from now on (their first account was loaded at run time):
        their ``INTENTS_<user>`` stream and durable consumer are created if new, and
        fetched fairly with everyone else's. No-op for a user already taken."""
        if user in self._users:
            return
        bisect.insort(self._users, user)
        self._room.setdefault(user, asyncio.Event())
        if self._started:
            try:
                await self._open_user(user)
            except BaseException:
                self._users.remove(user)
                raise
        log.info("intake: user added", extra={"user": user})

    async def remove_user(self, user: UserId) -> None:
        """Stop fetching ``user``'s stream (their last account was unloaded). Intents of
        theirs fetched already are still handled (refused: no such account); the stream
        and its consumer stay, so nothing sent meanwhile is lost."""
        if user not in self._users:
            return
        self._users.remove(user)
        task = self._fetchers.pop(user, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        log.info("intake: user removed", extra={"user": user})

    async def close(self) -> None:
        """Stop fetching and watching; held intents stay unacked (redelivered after restart).
        Groups handled already are acked once their events' acks come."""
        while self._storing:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._storing.popleft()
        for user in list(self._fetchers):
            self._tasks.append(self._fetchers.pop(user))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._tasks.clear()
        self._subs.clear()

    # ---------------------------------------------------------------- fetching
    def _took(self, user: str, msg: Msg) -> None:
        """Queue a message of ``user``'s stream (:meth:`_take`) and wake the scheduler."""
        self._take(user, msg)
        self._metrics.intents_held.set(len(self._queue))
        self._wake.set()

    def _take(self, user: str, msg: Msg) -> None:
        """Admit one fetched message (never raises) and queue it in its lane."""
        stream, seq, delivered, sent_ns = ack_facts(msg)
        door = admit(msg.subject, msg.data, seq, self._accounts, stream)
        if delivered == 1 and not self._rate.take(user, sent_ns):
            door = _refused(door, Refusal(RATE_REASON, self._rate.message(user)))
        self._queue.add(Delivery(msg, door, user, seq))

    async def _keep_in_progress(self) -> None:
        """Tell JetStream the held intents are still being worked on (no redelivery)."""
        every = max(1.0, self._settings.ack_wait / 3)
        while True:
            await asyncio.sleep(every)
            for delivery in self._queue:
                with contextlib.suppress(nats.errors.Error, OSError):
                    await delivery.msg.in_progress()

    # -------------------------------------------------------------- scheduling
    async def run(self, stop: asyncio.Event) -> None:
        """Hand batches to the engine until ``stop`` is set (see the module docstring)."""
        pause = 0.5
        while not stop.is_set():
            now = self._clock()
            limit = 1 if self._isolate else self._settings.fetch_batch
            if limit > SHARED_BATCH and self._queue.users_ready(now) > 1:
                limit = SHARED_BATCH  # a group's events go out when it ends: keep it short
            batch = self._queue.batch(limit, now)
            if not batch:
                await self._idle(stop, now)
                continue
            try:
                done, acks = await self._engine.handle_intents_detached([d.door for d in batch])
            except RetryLater as exc:
                self._hold(batch[0], str(exc))
                continue
            except TRANSIENT_ERRORS as exc:
                log.warning("intents wait: transient failure", extra={"error": repr(exc)})
                self._engine.set_healthy(False, f"intents wait: {type(exc).__name__}")
                await asyncio.sleep(pause)
                pause = min(MAX_PAUSE_SECONDS, pause * 2)
                continue
            except Exception as exc:  # a defect met by one intent: never exit because of it
                await self._failed(batch[0], exc)
                continue
            pause = 0.5
            self._isolate = False
            self._engine.set_healthy(True)
            if acks:
                await self._pipeline(batch[:done], acks)
            else:
                await self._acked(batch[:done])

    async def _pipeline(self, handled: list[Delivery], acks: list[asyncio.Future[Any]]) -> None:
        """Take ``handled`` out of the queue now; ack them once ``acks`` have come (a task),
        waiting first for the oldest such task when :data:`PIPELINE_DEPTH` are under way."""
        while self._storing and self._storing[0].done():
            self._storing.popleft()
        if len(self._storing) >= PIPELINE_DEPTH:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._storing.popleft()
        self._forget(handled)
        self._storing.append(
            asyncio.create_task(self._ack_when_stored(handled, acks), name="ack-group")
        )

    async def _ack_when_stored(
        self, handled: list[Delivery], acks: list[asyncio.Future[Any]]
    ) -> None:
        """Ack ``handled`` once JetStream stored their events; nak them if it did not."""
        try:
            await await_acks(acks)
        except TRANSIENT_ERRORS as exc:
            log.warning("events not stored: intents handed in again", extra={"error": repr(exc)})
            self._engine.set_healthy(False, f"events not stored: {type(exc).__name__}")
            for delivery in handled:
                with contextlib.suppress(nats.errors.Error, OSError):
                    await delivery.msg.nak()
            return
        for delivery in handled:
            with contextlib.suppress(nats.errors.Error, OSError):
                await delivery.msg.ack()

    async def _idle(self, stop: asyncio.Event, now: float) -> None:
        """Wait for a new intent, the end of a hold, or ``stop`` (at most half a second)."""
        timeout = 0.5
        release = self._queue.next_release()
        if release is not None:
            timeout = min(timeout, max(0.0, release - now))
        self._wake.clear()
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _acked(self, handled: list[Delivery]) -> None:
        """Ack what the engine handled and forget it."""
        for delivery in handled:
            with contextlib.suppress(nats.errors.Error, OSError):
                await delivery.msg.ack()
        self._forget(handled)

    def _forget(self, handled: list[Delivery]) -> None:
        """Take ``handled`` out of the queue (and their lanes' holds); let their users fetch."""
        for delivery in handled:
            self._holds.pop((delivery.user, delivery.lane), None)
        self._queue.remove(handled)
        for user in {d.user for d in handled}:
            self._room[user].set()
        self._metrics.intents_held.set(len(self._queue))

    def _hold(self, delivery: Delivery, why: str) -> None:
        """Hold the lane of ``delivery`` (its account must wait) with a doubling back-off."""
        key = (delivery.user, delivery.lane)
        times = self._holds.get(key, 0)
        self._holds[key] = times + 1
        seconds = min(MAX_HOLD_SECONDS, 2.0**times)
        self._queue.hold(delivery.user, delivery.lane, self._clock() + seconds)
        self._metrics.lane_holds.inc()
        if times == 0:
            log.warning(
                "account's intents wait; the others flow",
                extra={"user": delivery.user, "account": delivery.lane, "why": why},
            )

    async def _failed(self, delivery: Delivery, exc: Exception) -> None:
        """An unexpected exception handling ``delivery``: try it again alone, or give up."""
        delivery.attempts += 1
        self._isolate = True
        self._metrics.handler_errors.inc()
        log.error(
            "intent failed unexpectedly",
            exc_info=exc,
            extra={"user": delivery.user, "seq": delivery.seq, "attempt": delivery.attempts},
        )
        if delivery.attempts < self._settings.max_attempts:
            self._queue.hold(delivery.user, delivery.lane, self._clock() + delivery.attempts)
            return
        why = f"{type(exc).__name__}: {exc}"
        try:
            await self.give_up(delivery.user, delivery.door, why, StoredIntent.of(delivery.msg))
        except TRANSIENT_ERRORS as err:
            log.warning("dead letter waits", extra={"error": repr(err)})
            self._queue.hold(delivery.user, delivery.lane, self._clock() + 1.0)
            return
        with contextlib.suppress(nats.errors.Error, OSError):
            await delivery.msg.ack()
        self._queue.remove([delivery])
        self._room[delivery.user].set()

    # ------------------------------------------------------------ dead letters
    async def give_up(
        self, user: str, door: Admitted | Refused, why: str, stored: StoredIntent
    ) -> None:
        """Dead-letter one intent: a copy to ``DEADLETTER`` (headers: why, where it came
        from) and a ``dead_letter`` refusal unless the ledger answered it already. The
        caller then removes it from its stream (ack, or delete).

        Raises :data:`~.orders.TRANSIENT_ERRORS` when the bus or the ledger is down.
        """
        headers = {
            "Tradebus-Error": _header_text(why),
            "Tradebus-Subject": _header_text(stored.subject),
            "Tradebus-Stream": stored.stream,
            "Tradebus-Stream-Seq": str(stored.seq),
            "Nats-Msg-Id": f"dead:{stored.stream}:{stored.seq}",
        }
        await self._js.publish(subjects.deadletter_intent(user), stored.data, headers=headers)
        await self._engine.dead_letter(door, why)
        self._metrics.dead_letters.labels(user=user).inc()
        log.error("intent dead-lettered", extra={"user": user, "why": why})

    async def watch_dead_letters(self, psub: JetStreamContext.PullSubscription) -> None:
        """Turn each ``MAX_DELIVERIES`` advisory of an ``INTENTS_<user>`` message into a
        dead letter: read the message back, give up on it, delete it from its stream."""
        while True:
            try:
                msgs = await psub.fetch(16, timeout=IDLE_FETCH_SECONDS)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except nats.errors.Error as exc:
                log.warning("dead-letter fetch failed", extra={"error": repr(exc)})
                await asyncio.sleep(1.0)
                continue
            for advisory in msgs:
                try:
                    await self._advised(advisory)
                except TRANSIENT_ERRORS as exc:
                    log.warning("dead letter waits", extra={"error": repr(exc)})
                    with contextlib.suppress(nats.errors.Error, OSError):
                        await advisory.nak(delay=1.0)
                    continue
                with contextlib.suppress(nats.errors.Error, OSError):
                    await advisory.ack()

    async def _advised(self, advisory: Msg) -> None:
        """Handle one ``MAX_DELIVERIES`` advisory (``{"stream", "stream_seq", "deliveries"}``)."""
        try:
            facts = json.loads(advisory.data)
            stream, seq = str(facts["stream"]), int(facts["stream_seq"])
        except (ValueError, KeyError, TypeError):
            log.error("unreadable max-deliveries advisory", extra={"data": advisory.data[:200]})
            return
        user = subjects.intents_stream_user(stream)
        if user is None or not self._settings.shard.owns(user):
            return  # not a user's stream, or another shard's user (that shard gives up)
        try:
            raw = await self._js.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            return  # acked or deleted meanwhile
        stored = StoredIntent(raw.subject or "", raw.data or b"", stream, seq)
        deliveries = facts.get("deliveries", self._settings.max_deliver)
        why = f"delivered {deliveries} times without being handled (execution stopped on it)"
        held = self._queue.find(user, seq)
        if held is not None:
            self._queue.remove([held])
        door = admit(stored.subject, stored.data, seq, self._accounts, stream)
        await self.give_up(user, door, why, stored)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await self._js.delete_msg(stream, seq)


class StoredIntent(NamedTuple):
    """An intent message as stored: subject, payload, stream and stream sequence."""

    subject: str
    data: bytes
    stream: str
    seq: int

    @classmethod
    def of(cls, msg: Msg) -> StoredIntent:
        """The stored form of a delivered message."""
        meta = msg.metadata
        return cls(msg.subject, msg.data, meta.stream, meta.sequence.stream)


def ack_facts(msg: Msg) -> tuple[str, int, int, int]:
    """``(stream, stream sequence, deliveries, stored at ns)`` of a JetStream message.

    Read from its reply subject, ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream
    seq>.<consumer seq>.<ns>.<pending>``, without nats-py's ``msg.metadata`` (which
    builds a datetime, ~10 µs a message, and rounds the time to a float); any
    other form (with a domain) is read by ``msg.metadata``.
    """
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return tokens[2], int(tokens[5]), int(tokens[4]), int(tokens[7])
    meta = msg.metadata
    sent_ns = int(meta.timestamp.timestamp() * 1e9)
    return meta.stream, meta.sequence.stream, meta.num_delivered, sent_ns


def _refused(door: Admitted | Refused, refusal: Refusal) -> Refused:
    """``door`` refused for ``refusal`` (keeping the intent id and account it names)."""
    if isinstance(door, Refused):
        return Refused(
            ctx=door.ctx, intent_id=door.intent_id, account=door.account, refusal=refusal
        )
    return Refused(
        ctx=door.ctx, intent_id=door.intent.intent_id, account=door.intent.account, refusal=refusal
    )


def _header_text(value: str) -> str:
    """``value`` fit for a NATS header: one line of printable ASCII, at most 500 characters."""
    clean = value.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() else "?" for c in clean)[:500]
