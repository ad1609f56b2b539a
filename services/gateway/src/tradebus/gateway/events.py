"""The live-events hub: order events and bot status changes fanned out to WebSocket clients.

One gateway process holds **one** feed of each source, shared by every client:

* order events: a :class:`~tradebus.common.bus.StreamTail` (a JetStream
  ordered consumer of ``EXEC``, renewed after every reconnect) on
  ``exec.evt.>``, from the stream's next message on; each event keeps its
  ``EXEC`` stream sequence (``seq``), which a client resumes from;
* bot status changes: a core NATS subscription on ``bot.status.>``
  (``BotStatusChanged``, published by the strategy hosts; current-state
  snapshots, no sequence). The hub keeps the last status of each bot it saw.

Each message is validated and turned into the JSON text a client receives
once, then handed to the :class:`Subscriber` objects of its user (token 3 of
the subject, which NATS permissions tie to the user) and to those watching
everyone (admins). Nothing is decoded for a user nobody watches.

**Backpressure.** A subscriber's queue is bounded (``queue_limit`` frames).
Handing a frame on never waits: when the queue is full the subscriber is
marked *overflowed* (its queue dropped) and its connection closes with
:data:`CLOSE_SLOW` telling it to resume from the last sequence it was sent.
So a slow client never slows the hub, the other clients, or the gateway.

**Resume.** A client that reconnects with ``since_seq`` is attached first
(live events held back), then the events of ``(since_seq, last]`` are
replayed to it by an ordered consumer of its own, filtered to
``exec.evt.<user>.>`` (``exec.evt.>`` for everyone) and ended as soon as it
is caught up; replay waits for room in the queue (the client's pace) rather
than overflowing. Then the held live events are released. Every event is
handed on at most once per subscriber, in stream order (sequences at or
below the last one handed on are dropped), so the client gets exactly the
events it missed and then the live ones.

Frames (JSON text, one per WebSocket message; ``seq`` is the ``EXEC``
stream sequence)::

    {"type": "order", "seq": 42, "subject": "exec.evt.alice.alice-btc",
     "event": {"type": "OrderFilled", ...}}
    {"type": "status", "bot": "alice-btc", "user": "alice", "ts_event": 1700000000000000000,
     "status": {...BotStatus...} | null}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable

import msgspec
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from tradebus.common import subjects
from tradebus.common.bus import StreamTail
from tradebus.common.codec import decode_bot_status_changed, decode_event, encode
from tradebus.common.messages import BotStatus, BotStatusChanged
from tradebus.gateway.prices import MarketPrices

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1024
"""Frames waiting for one client at most; one more and it is closed (:data:`CLOSE_SLOW`)."""
REPLAY_IDLE_SECONDS = 0.25
"""A replay that received nothing this long asks its consumer whether anything is left."""
REPLAY_PENDING_MSGS = 65_536
"""Messages a replay consumer holds at most (JetStream flow control paces it to the client)."""

CLOSE_POLICY = 1008
"""WebSocket close: policy violation (no or bad token, not allowed to watch that)."""
CLOSE_GOING_AWAY = 1001
"""WebSocket close: the gateway is stopping (resume from the last seq elsewhere or later)."""
CLOSE_INTERNAL = 1011
"""WebSocket close: the gateway cannot serve events (its hub is not running)."""
CLOSE_SLOW = 4001
"""WebSocket close: the client read too slowly; reconnect with ``since_seq`` (in the reason)."""

EXEC_EVENTS_ALL = "exec.evt.>"


def exec_events_of(user: str) -> str:
    """``exec.evt.<user>.>``: the order events of ``user``'s bots and manual intents."""
    return f"exec.evt.{subjects.token(user, 'user')}.>"


class _StatusFrame(msgspec.Struct, frozen=True, kw_only=True, tag="status"):
    bot: str
    user: str
    ts_event: int
    status: BotStatus | None


class _OrderFrame(msgspec.Struct, frozen=True, kw_only=True, tag="order"):
    seq: int
    subject: str
    event: msgspec.Raw


def status_frame(bot: str, user: str, ts_event: int, status: BotStatus | None) -> str:
    """The ``status`` frame of ``bot`` (``status`` None: no host runs it now)."""
    return encode(_StatusFrame(bot=bot, user=user, ts_event=ts_event, status=status)).decode()


def control_frame(kind: str, **fields: object) -> str:
    """A frame of the connection itself: ``{"type": kind, **fields}``."""
    return encode({"type": kind, **fields}).decode()


class SubscriberEnded(Exception):
    """The subscriber ended (it overflowed, or the hub is stopping) while a replay ran."""


class Subscriber:
    """One WebSocket client of the hub: a bounded queue of frames, in order.

    ``user`` is whose events it gets (None: everyone's). Frames are
    ``(seq, text)``, ``seq`` 0 for frames that are not ``EXEC`` events.

    Attributes
    ----------
    last_seq
        The highest ``EXEC`` sequence queued for it (later ones only go on).
    sent_seq
        The highest ``EXEC`` sequence the connection finished sending (what
        the client resumes from after :data:`CLOSE_SLOW`).
    overflowed
        True once a frame did not fit; nothing more is queued.
    """

    def __init__(self, user: str | None, queue_limit: int = QUEUE_LIMIT) -> None:
        self.user = user
        self._limit = queue_limit
        self._queue: deque[tuple[int, str]] = deque()
        self._held: list[tuple[int, str]] | None = None
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.last_seq = 0
        self.sent_seq = 0
        self.overflowed = False
        self.ended = asyncio.Event()
        """Set when the subscriber must close (overflow, or the hub stopping)."""
        self.end_code = 0
        """The close code when :attr:`ended` is set."""
        self.expires = 0
        """When the connection's access token expires (Unix seconds; kept by the route)."""

    @property
    def queue_limit(self) -> int:
        """Frames it may have waiting at most."""
        return self._limit

    # ---------------------------------------------------------------- hub side
    def offer(self, seq: int, text: str) -> None:
        """A live frame (never waits): held back during a replay, dropped if ``seq`` was
        already handed on; overflow when the queue is full."""
        if self.overflowed:
            return
        if self._held is not None:
            if len(self._held) >= self._limit:
                self._overflow()
            else:
                self._held.append((seq, text))
            return
        if seq and seq <= self.last_seq:
            return
        if len(self._queue) >= self._limit:
            self._overflow()
            return
        self._push(seq, text)

    def say(self, text: str) -> None:
        """A frame that is not an ``EXEC`` event (a status, a frame of the connection): goes
        on at once even during a replay; overflow when the queue is full."""
        if self.overflowed:
            return
        if len(self._queue) >= self._limit:
            self._overflow()
            return
        self._push(0, text)

    def _push(self, seq: int, text: str) -> None:
        self._queue.append((seq, text))
        if seq:
            self.last_seq = seq
        if len(self._queue) >= self._limit:
            self._room.clear()
        self._ready.set()

    def _overflow(self) -> None:
        self.overflowed = True
        self._queue.clear()
        self._held = None
        self.end(CLOSE_SLOW)

    def end(self, code: int) -> None:
        """Tell the connection to close with ``code`` (the first reason given wins)."""
        if not self.ended.is_set():
            self.end_code = code
            self.ended.set()
        self._ready.set()
        self._room.set()

    def hold(self) -> None:
        """Hold live frames back (a replay is about to run)."""
        self._held = []

    async def replayed(self, seq: int, text: str) -> None:
        """A replayed frame: waits for room in the queue (the replay goes at the client's
        pace); dropped if ``seq`` was already handed on.

        Raises
        ------
        SubscriberEnded
            If the subscriber ended meanwhile.
        """
        while len(self._queue) >= self._limit and not self.ended.is_set():
            await self._room.wait()
        if self.ended.is_set():
            raise SubscriberEnded
        if seq <= self.last_seq:
            return
        self._push(seq, text)

    def release(self) -> None:
        """End the hold: the live frames held back go on, those already replayed dropped."""
        held, self._held = self._held, None
        for seq, text in held or ():
            self.offer(seq, text)

    # --------------------------------------------------------- connection side
    async def next(self) -> tuple[int, str] | None:
        """The next frame to send, waiting for one; None once the subscriber ended."""
        while not self._queue:
            if self.ended.is_set():
                return None
            self._ready.clear()
            await self._ready.wait()
        if self.ended.is_set():
            return None
        frame = self._queue.popleft()
        if len(self._queue) < self._limit:
            self._room.set()
        return frame

    def sent(self, seq: int) -> None:
        """The frame of ``seq`` was sent."""
        if seq > self.sent_seq:
            self.sent_seq = seq

    @property
    def queued(self) -> int:
        """Frames waiting."""
        return len(self._queue)


class Replay(msgspec.Struct, frozen=True, kw_only=True):
    """What a replay did: ``events`` replayed, the stream's ``first_seq`` and ``last_seq``
    when it began, and ``gap``: events after ``since_seq`` were already gone (the stream's
    retention), so the client missed some."""

    events: int
    first_seq: int
    last_seq: int
    gap: bool


class EventHub:
    """The live-events hub of one gateway process (module docstring).

    Parameters
    ----------
    nc
        The gateway's NATS connection.
    queue_limit
        Frames per subscriber (:data:`QUEUE_LIMIT` by default).
    prices
        Keeps each market's prices from the statuses seen (the price charts), if given.
    """

    def __init__(
        self, nc: NATS, queue_limit: int | None = None, prices: MarketPrices | None = None
    ) -> None:
        self._nc = nc
        self.prices = prices
        """Where the statuses' prices are kept for the price charts (None: nowhere)."""
        self._js: JetStreamContext = nc.jetstream()
        self._limit = queue_limit or QUEUE_LIMIT
        self._by_user: dict[str, set[Subscriber]] = {}
        self._everyone: set[Subscriber] = set()
        self._tail: StreamTail | None = None
        self._status_sub: Subscription | None = None
        self._statuses: dict[str, tuple[BotStatusChanged, float]] = {}
        self.running = False
        """True between :meth:`start` and :meth:`stop`."""
        self.frames = 0
        """Frames handed to subscribers so far."""
        self.overflows = 0
        """Subscribers dropped for reading too slowly so far."""

    async def start(self) -> None:
        """Start both feeds (order events from the stream's next message on)."""
        self._tail = StreamTail(self._nc, subjects.STREAM_EXEC, EXEC_EVENTS_ALL, self._on_event)
        await self._tail.start()
        self._status_sub = await self._nc.subscribe(subjects.BOT_STATUS_ALL, cb=self._on_status)
        self.running = True

    async def stop(self) -> None:
        """Stop the feeds and tell every subscriber to go (:data:`CLOSE_GOING_AWAY`)."""
        self.running = False
        for sub in self._subscribers():
            sub.end(CLOSE_GOING_AWAY)
        if self._tail is not None:
            with contextlib.suppress(Exception):
                await self._tail.stop()
        if self._status_sub is not None:
            with contextlib.suppress(Exception):
                await self._status_sub.unsubscribe()

    # ------------------------------------------------------------- subscribers
    def attach(self, user: str | None, hold: bool = False) -> Subscriber:
        """A new subscriber of ``user``'s events (None: everyone's); ``hold``: live events
        are held back until :meth:`Subscriber.release` (a replay comes first)."""
        sub = Subscriber(user, self._limit)
        if hold:
            sub.hold()
        if user is None:
            self._everyone.add(sub)
        else:
            self._by_user.setdefault(user, set()).add(sub)
        return sub

    def detach(self, sub: Subscriber) -> None:
        """Forget ``sub`` (its connection ended)."""
        sub.end(sub.end_code or CLOSE_GOING_AWAY)
        if sub.user is None:
            self._everyone.discard(sub)
            return
        subs = self._by_user.get(sub.user)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_user[sub.user]

    def _subscribers(self) -> list[Subscriber]:
        return [*self._everyone, *(s for subs in self._by_user.values() for s in subs)]

    @property
    def subscribers(self) -> int:
        """Subscribers attached now."""
        return len(self._everyone) + sum(len(s) for s in self._by_user.values())

    def _targets(self, user: str) -> Iterable[Subscriber]:
        subs = self._by_user.get(user)
        if subs:
            yield from list(subs)
        if self._everyone:
            yield from list(self._everyone)

    def _deliver(self, user: str, seq: int, text: str) -> None:
        for sub in self._targets(user):
            sub.offer(seq, text)
            if sub.overflowed:  # dropped: its connection closes with CLOSE_SLOW
                self.overflows += 1
                self.detach(sub)
            else:
                self.frames += 1

    # ------------------------------------------------------------------- feeds
    @staticmethod
    def order_frame(msg: Msg) -> tuple[str, int, str] | None:
        """``(user, seq, frame)`` of an ``exec.evt`` message, or None if it is not a valid
        order event of the user its subject names."""
        parts = msg.subject.split(".")
        if len(parts) < 4:
            return None
        user = parts[2]
        try:
            event = decode_event(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("not an order event", extra={"subject": msg.subject})
            return None
        if event.user != user:
            log.warning("order event of another user", extra={"subject": msg.subject})
            return None
        seq = msg.metadata.sequence.stream
        frame = _OrderFrame(seq=seq, subject=msg.subject, event=msgspec.Raw(msg.data))
        return user, seq, encode(frame).decode()

    async def _on_event(self, msg: Msg) -> None:
        parts = msg.subject.split(".", 3)
        if len(parts) < 4 or (not self._everyone and parts[2] not in self._by_user):
            return  # nobody watches this user
        made = self.order_frame(msg)
        if made is not None:
            user, seq, text = made
            self._deliver(user, seq, text)
            await asyncio.sleep(0)  # the connections send (a burst must not fill their queues)

    async def _on_status(self, msg: Msg) -> None:
        try:
            changed = decode_bot_status_changed(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("not a bot status", extra={"subject": msg.subject})
            return
        status = changed.status
        if msg.subject != subjects.bot_status(status.user, status.bot):
            log.warning("bot status on another subject", extra={"subject": msg.subject})
            return
        self._statuses[status.bot] = (changed, time.monotonic())
        if self.prices is not None:
            self.prices.see(status)
        if self._everyone or status.user in self._by_user:
            text = status_frame(status.bot, status.user, changed.ts_event, status)
            self._deliver(status.user, 0, text)
            await asyncio.sleep(0)

    def last_statuses(self) -> dict[str, tuple[BotStatusChanged, float]]:
        """The last status change seen of each bot, with when it came (monotonic seconds)."""
        return dict(self._statuses)

    # ------------------------------------------------------------------ resume
    async def replay(self, sub: Subscriber, since_seq: int) -> Replay:
        """Hand ``sub`` the events after ``since_seq`` (module docstring, "Resume"), at its
        pace, then release its held live events.

        Raises
        ------
        SubscriberEnded
            If the subscriber ended meanwhile (it closes; nothing to undo).
        """
        try:
            info = await self._js.stream_info(subjects.STREAM_EXEC)
            first, last = int(info.state.first_seq), int(info.state.last_seq)
            gap = since_seq + 1 < first and since_seq < last
            events = 0
            if since_seq < last:
                events = await self._replay(sub, since_seq, last)
            return Replay(events=events, first_seq=first, last_seq=last, gap=gap)
        finally:
            if not sub.ended.is_set():
                sub.release()

    async def _replay(self, sub: Subscriber, since_seq: int, last: int) -> int:
        subject = EXEC_EVENTS_ALL if sub.user is None else exec_events_of(sub.user)
        psub = await self._js.subscribe(
            subject,
            stream=subjects.STREAM_EXEC,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=since_seq + 1
            ),
            pending_msgs_limit=REPLAY_PENDING_MSGS,
        )
        received = events = 0
        try:
            while True:
                try:
                    msg = await psub.next_msg(timeout=REPLAY_IDLE_SECONDS)
                except nats.errors.TimeoutError:
                    consumer = await psub.consumer_info()
                    delivered = consumer.delivered.consumer_seq if consumer.delivered else 0
                    if not consumer.num_pending and (delivered or 0) <= received:
                        return events  # nothing (more) of this user in the range
                    continue
                received += 1
                made = self.order_frame(msg)
                seq = msg.metadata.sequence.stream
                if made is not None:
                    await sub.replayed(seq, made[2])
                    events += 1
                if seq >= last or not msg.metadata.num_pending:
                    return events
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
