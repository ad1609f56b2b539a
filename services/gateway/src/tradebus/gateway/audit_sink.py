"""The audit sink: JetStream stream ``AUDIT`` into the ``audit_log`` table.

Every part of tradebus publishes its audit events on ``audit.<source>``
(:class:`tradebus.control.audit.AuditTrail`); the stream ``AUDIT`` keeps them
until this sink, run by the gateway, has written them to Postgres
(:class:`tradebus.ledger.audit.AuditLog`). One durable pull consumer
(``gateway-audit``, explicit acks) is fetched in batches:

* a batch is written in one statement and acked only after it committed, so
  an event is never lost: a crash before the ack redelivers it, and the
  row's unique ``event_id`` stores a redelivered event once;
* a message that is not an :class:`~tradebus.common.messages.AuditEvent`, or
  whose ``source`` is not the one of its subject (``audit.<source>``: only
  that source may publish there, so the subject vouches for it), is logged
  (subject, size and error, never its payload) and terminated: it is never
  redelivered and never holds up the stream;
* an event Postgres refuses (a value it cannot hold, such as a NUL
  character) is found by writing its batch one event at a time, then
  terminated the same way;
* while Postgres cannot be reached, the batch is kept in progress at
  JetStream (no redelivery) and tried again after a back-off (0.5 s doubling
  to 10 s); nothing is acked meanwhile, and the events published meanwhile
  wait in the stream.

Several gateway replicas may run a sink each: they share the durable
consumer, so each event is delivered to one of them at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tradebus.common import subjects
from tradebus.common.codec import decode_audit_event
from tradebus.common.messages import AuditEvent
from tradebus.ledger.audit import AuditLog
from tradebus.ledger.errors import LEDGER_UNAVAILABLE

log = logging.getLogger(__name__)

DURABLE = "gateway-audit"
"""Name of the sink's durable consumer on ``AUDIT``."""

UNREACHABLE: tuple[type[BaseException], ...] = (
    *LEDGER_UNAVAILABLE,
    OSError,  # connection refused or reset, timeouts
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up (57xxx)
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections (53xxx)
)
"""Errors of a write that mean "Postgres cannot be reached now": try again later."""


LAST_FETCH_SECONDS = 0.2
"""How long the last fetch at a stop waits for events already in the stream."""


class AuditSink:
    """Writes the ``AUDIT`` stream to ``audit_log`` (module docstring).

    Parameters
    ----------
    js
        JetStream context of a connection that may consume ``AUDIT`` (the
        gateway's); the stream must exist (``tradebus.common.bus.ensure_streams``).
    audit_log
        Where the events go.
    durable
        Name of the durable consumer (shared by every gateway replica).
    batch
        Most events fetched and written at once.
    fetch_seconds
        How long one fetch waits for events (also how soon :meth:`run` sees
        its stop event while the stream is idle).
    ack_wait_seconds
        JetStream redelivers an event not acked (nor kept in progress) within this.
    retry_seconds, max_retry_seconds
        Back-off between writes while Postgres cannot be reached: the first
        delay, doubling up to the longest.

    Attributes ``written`` (rows stored), ``duplicates`` (events stored
    before), ``rejected`` (messages terminated) count since the start;
    ``healthy`` is False while Postgres cannot be reached.
    """

    def __init__(
        self,
        js: JetStreamContext,
        audit_log: AuditLog,
        *,
        durable: str = DURABLE,
        batch: int = 256,
        fetch_seconds: float = 1.0,
        ack_wait_seconds: float = 30.0,
        retry_seconds: float = 0.5,
        max_retry_seconds: float = 10.0,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch: must be at least 1, not {batch}")
        self._js = js
        self._log = audit_log
        self._durable = durable
        self._batch = batch
        self._fetch_seconds = fetch_seconds
        self._ack_wait = ack_wait_seconds
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self.written = 0
        self.duplicates = 0
        self.rejected = 0
        self.healthy = True

    def consumer_config(self) -> ConsumerConfig:
        """The durable pull consumer on ``AUDIT``: every event from the first, explicit
        acks, delivered until acked (no ``max_deliver``: an event is never dropped)."""
        return ConsumerConfig(
            name=self._durable,
            durable_name=self._durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_ack_pending=max(1_000, 4 * self._batch),
        )

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        await self._js.add_consumer(subjects.STREAM_AUDIT, config=self.consumer_config())
        return await self._js.pull_subscribe_bind(
            durable=self._durable, stream=subjects.STREAM_AUDIT
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Write events until ``stop`` is set; never raises because of a message, Postgres
        or NATS being away (each is logged and waited out)."""
        psub: JetStreamContext.PullSubscription | None = None
        pause = self._retry
        while not stop.is_set():
            try:
                if psub is None:
                    psub = await self._subscribe()
                msgs = await self._fetch_or_stop(psub, stop)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except (nats.errors.Error, OSError) as exc:  # NATS away, consumer gone
                log.warning("audit fetch failed; retrying", extra={"error": repr(exc)})
                if psub is not None:
                    with contextlib.suppress(Exception):
                        await psub.unsubscribe()
                psub = None
                await self._sleep(stop, pause)
                pause = min(self._max_retry, pause * 2)
                continue
            pause = self._retry
            try:
                await self._handle(msgs, stop)
            except Exception:  # a defect: the batch stays unacked and comes back later
                log.exception("audit batch not written", extra={"events": len(msgs)})
                await self._sleep(stop, self._max_retry)
        if psub is not None:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def _fetch_or_stop(
        self, psub: JetStreamContext.PullSubscription, stop: asyncio.Event
    ) -> list[Msg]:
        """One fetch, cut short when ``stop`` is set: then one last quick fetch takes what
        is already waiting (the events of the last requests), so a stop neither waits out
        an idle fetch nor leaves those for the next start. Whatever an abandoned fetch
        would have delivered stays unacked and comes again (after ``ack_wait``); rows are
        written once by event id.

        Raises
        ------
        nats.errors.TimeoutError
            No event within ``fetch_seconds``.
        """
        fetching = asyncio.ensure_future(psub.fetch(self._batch, timeout=self._fetch_seconds))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({fetching, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not fetching.done():
            fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fetching
            try:
                return await psub.fetch(self._batch, timeout=LAST_FETCH_SECONDS)
            except (nats.errors.Error, TimeoutError):
                return []
        return fetching.result()

    async def _handle(self, msgs: list[Msg], stop: asyncio.Event) -> None:
        """Write one fetched batch; terminate what cannot be written ever."""
        good: list[tuple[Msg, AuditEvent]] = []
        for msg in msgs:
            try:
                event = decode_audit_event(msg.data)
                if msg.subject != subjects.audit(event.source):
                    raise ValueError(f"an event of source {event.source!r} on {msg.subject}")
            except (msgspec.MsgspecError, ValueError) as exc:
                await self._reject(msg, str(exc))
                continue
            good.append((msg, event))
        if good:
            await self._store(good, stop)

    async def _store(self, batch: list[tuple[Msg, AuditEvent]], stop: asyncio.Event) -> None:
        """Write ``batch``, then ack it; wait out an outage (unacked if ``stop`` comes)."""
        delay = self._retry
        while True:
            try:
                written = await self._log.write([event for _, event in batch])
            except UNREACHABLE as exc:
                if self.healthy:
                    log.warning(
                        "audit log unreachable; events wait in the stream",
                        extra={"error": repr(exc), "events": len(batch)},
                    )
                self.healthy = False
                for msg, _ in batch:  # still ours: no redelivery meanwhile
                    with contextlib.suppress(nats.errors.Error, OSError):
                        await msg.in_progress()
                await self._sleep(stop, delay)
                if stop.is_set():
                    return  # unacked: redelivered to the next sink
                delay = min(self._max_retry, delay * 2)
                continue
            except asyncpg.PostgresError as exc:  # a value Postgres refuses
                if len(batch) == 1:
                    await self._reject(batch[0][0], f"refused by Postgres: {exc!r}")
                    return
                for one in batch:  # find the bad one
                    await self._store([one], stop)
                    if stop.is_set():
                        return
                return
            break
        if not self.healthy:
            log.info("audit log reachable again")
            self.healthy = True
        self.written += written
        self.duplicates += len(batch) - written
        for msg, _ in batch:
            with contextlib.suppress(nats.errors.Error, OSError):
                await msg.ack()

    async def _reject(self, msg: Msg, why: str) -> None:
        """Log (never the payload: it is not ours to print) and terminate ``msg``."""
        self.rejected += 1
        log.error(
            "malformed audit message dropped",
            extra={"subject": msg.subject, "bytes": len(msg.data or b""), "error": why[:500]},
        )
        with contextlib.suppress(nats.errors.Error, OSError):
            await msg.term()

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
