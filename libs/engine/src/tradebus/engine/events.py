"""The events execution publishes, built in one place: order events on
``exec.evt.<user>.<source>``, account alerts on ``exec.alert.<user>.<account>``.

Every event is published with a JetStream message id derived from what it is
about (``acc:<user>:<intent>``, ``fill:<venue>:<account>:<trade id>``, ...), so a
republish after a crash or a redelivery is stored once.

Each event is published and its JetStream ack awaited before the method
returns, unless :meth:`OrderEvents.defer` is in force: then the events go out
at once, in order, and :meth:`OrderEvents.flush` awaits all their acks
together (one round trip for a group of intents instead of one per event),
or :meth:`OrderEvents.detach` hands them to the caller, who awaits them
(:func:`await_acks`) while the engine goes on with the next group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from tradebus.common import subjects
from tradebus.common.clock import Clock
from tradebus.common.ids import AccountId, IntentId, UserId, event_msg_id
from tradebus.common.messages import (
    AccountHalted,
    CancelOrder,
    CancelRejected,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
)
from tradebus.engine.venue import VenueFill
from tradebus.ledger.rows import OrderRow

EmitEvent = Callable[[str, Message, str], Awaitable[None]]
"""``emit(subject, event, msg_id)``: publish an event to JetStream (stream ``EXEC``)."""

EmitNowait = Callable[[str, Message, str], Awaitable["asyncio.Future[Any]"]]
"""``await emit_nowait(subject, event, msg_id)``: publish an event to JetStream and
return the future of its ack, without waiting for it (``publish_async``)."""

FLUSH_TIMEOUT_SECONDS = 5.0
"""How long :meth:`OrderEvents.flush` waits for the acks of ``emit_nowait``'s events."""


class IntentContext(msgspec.Struct, frozen=True, kw_only=True):
    """Where an intent came from: subject, its tokens, JetStream sequence, raw payload.

    ``user`` and ``source`` are empty when the subject itself was malformed.
    ``from_person``: a person published it from their own NATS account
    (``person.intent.<user>.<source>``), so none of its times is trusted.
    ``stream`` is the JetStream stream it was stored in (``INTENTS_<user>``;
    empty when not known); with ``stream_seq`` it names the message.
    """

    subject: str
    user: UserId
    source: str
    stream_seq: int | None
    payload: bytes
    from_person: bool = False
    stream: str = ""


def _row_key(kind: str, row: OrderRow) -> str:
    return event_msg_id(kind, f"{row.user_id}:{row.intent_id}")


class OrderEvents:
    """Publishes order events built from ledger rows (see the module docstring).

    Parameters
    ----------
    emit
        Publishes one event (``exec.evt.<user>.<source>``) with a message id.
    clock
        Stamps ``ts_event`` of events execution originates.
    emit_nowait
        Publishes one event without waiting for its ack (used while deferring;
        without it, deferring changes nothing: each event is published and
        awaited at once, as a backtest's in-memory sink is).
    """

    def __init__(
        self, emit: EmitEvent, clock: Clock, emit_nowait: EmitNowait | None = None
    ) -> None:
        self._emit = emit
        self._emit_nowait = emit_nowait
        self._clock = clock
        self._deferred: list[asyncio.Future[Any]] | None = None
        self._subjects: dict[tuple[str, str], str] = {}

    def _subject(self, user: str, source: str) -> str:
        """``exec.evt.<user>.<source>``, built (and its tokens checked) once per pair."""
        key = (user, source)
        subject = self._subjects.get(key)
        if subject is None:
            subject = self._subjects[key] = subjects.exec_evt(user, source)
        return subject

    def defer(self) -> None:
        """Publish the next events without awaiting their acks, until :meth:`flush`."""
        if self._deferred is None:
            self._deferred = []

    async def flush(self) -> None:
        """Await the acks of every event published since :meth:`defer`; stop deferring.

        Raises as :func:`await_acks`.
        """
        await await_acks(self.detach())

    def detach(self) -> list[asyncio.Future[Any]]:
        """Stop deferring; the ack futures of every event published since :meth:`defer`
        (empty if none, or without ``emit_nowait``: all published and acked already),
        for the caller to await with :func:`await_acks`."""
        pending, self._deferred = self._deferred, None
        return pending or []

    def discard(self) -> None:
        """Stop deferring after a failure: wait for nothing (the publishes finish alone)."""
        pending, self._deferred = self._deferred, None
        for future in pending or ():
            future.add_done_callback(_consume_result)

    async def _publish(self, subject: str, event: Message, msg_id: str) -> None:
        if self._deferred is None or self._emit_nowait is None:
            await self._emit(subject, event, msg_id)
        else:
            self._deferred.append(await self._emit_nowait(subject, event, msg_id))

    async def accepted(self, row: OrderRow, venue_order_id: str) -> None:
        """The venue took the order of ``row``."""
        event = OrderAccepted(
            intent_id=row.intent_id,
            user=row.user_id,
            source=row.source,
            account=row.account_id,
            symbol=row.symbol,
            side=row.side,  # type: ignore[arg-type]
            order_type=row.order_type,  # type: ignore[arg-type]
            price=row.price,
            qty=row.qty,
            client_order_id=str(row.client_order_id),
            venue_order_id=venue_order_id,
            ts_event=self._clock.now_ns(),
        )
        await self._publish(self._subject(row.user_id, row.source), event, _row_key("acc", row))

    async def rejected(self, row: OrderRow, reason: str, message: str) -> None:
        """The venue refused the order of ``row``."""
        event = OrderRejected(
            intent_id=row.intent_id,
            user=row.user_id,
            source=row.source,
            account=row.account_id,
            reason=reason,
            message=message,
            ts_event=self._clock.now_ns(),
        )
        await self._publish(self._subject(row.user_id, row.source), event, _row_key("rej", row))

    async def refused(
        self,
        ctx: IntentContext,
        intent_id: IntentId | None,
        account: AccountId | None,
        reason: str,
        message: str,
    ) -> None:
        """An intent was refused before reaching a venue (answered on its own subject)."""
        if not ctx.user:
            return  # a malformed subject: there is nobody to answer
        event = OrderRejected(
            intent_id=intent_id,
            user=ctx.user,
            source=ctx.source,
            account=account,
            reason=reason,
            message=message,
            ts_event=self._clock.now_ns(),
        )
        key = intent_id if intent_id is not None else f"seq{ctx.stream_seq}"
        msg_id = event_msg_id("rej", f"{ctx.user}:{key}")
        await self._publish(self._subject(ctx.user, ctx.source), event, msg_id)

    async def canceled(
        self, row: OrderRow, cancel_intent_id: IntentId | None, reason: str = "canceled"
    ) -> None:
        """The order of ``row`` is canceled (told to the source that placed it): by a cancel
        intent, or by the venue itself (``cancel_intent_id`` None, ``reason`` ``expired``
        for an IOC's unfilled rest, ``canceled_at_venue`` for one canceled there)."""
        event = OrderCanceled(
            intent_id=row.intent_id,
            user=row.user_id,
            source=row.source,
            account=row.account_id,
            symbol=row.symbol,
            filled_qty=row.filled_qty,
            cancel_intent_id=cancel_intent_id,
            reason=reason,
            ts_event=self._clock.now_ns(),
        )
        await self._publish(self._subject(row.user_id, row.source), event, _row_key("can", row))

    async def cancel_rejected(
        self, ctx: IntentContext, intent: CancelOrder, reason: str, message: str
    ) -> None:
        """A cancel could not cancel its target (told to the source that sent the cancel)."""
        event = CancelRejected(
            intent_id=intent.intent_id,
            user=ctx.user,
            source=ctx.source,
            target_intent_id=intent.target_intent_id,
            reason=reason,
            message=message,
            ts_event=self._clock.now_ns(),
        )
        msg_id = event_msg_id("canrej", f"{ctx.user}:{intent.intent_id}")
        await self._publish(self._subject(ctx.user, ctx.source), event, msg_id)

    async def filled(self, row: OrderRow, fill: VenueFill) -> None:
        """A fill of the order of ``row`` (``row`` as updated by the fill)."""
        event = OrderFilled(
            intent_id=row.intent_id,
            user=row.user_id,
            source=row.source,
            account=row.account_id,
            symbol=row.symbol,
            side=fill.side,
            trade_id=fill.trade_id,
            price=fill.price,
            qty=fill.qty,
            fee=fill.fee,
            fee_asset=fill.fee_asset,
            liquidity=fill.liquidity,
            cum_qty=row.filled_qty,
            leaves_qty=row.qty - row.filled_qty,
            ts_event=fill.ts_event,
        )
        subject = self._subject(row.user_id, row.source)
        await self._publish(subject, event, event_msg_id("fill", fill_ref(fill)))

    async def account_halted(
        self, user: UserId, account: AccountId, venue: str, reason: str, message: str
    ) -> None:
        """The alert that ``account`` is halted, on ``exec.alert.<user>.<account>``."""
        event = AccountHalted(
            user=user,
            account=account,
            venue=venue,
            reason=reason,
            message=message,
            ts_event=self._clock.now_ns(),
        )
        msg_id = event_msg_id("halt", f"{account}:{event.ts_event}")
        await self._publish(subjects.exec_alert(user, account), event, msg_id)


async def await_acks(pending: list[asyncio.Future[Any]]) -> None:
    """Await the JetStream acks ``pending`` (:meth:`OrderEvents.detach`).

    Raises the first failure, in publish order, once every ack has come or
    :data:`FLUSH_TIMEOUT_SECONDS` have passed (an ack still missing then is a
    :class:`TimeoutError`, like a publish timeout).
    """
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=FLUSH_TIMEOUT_SECONDS)
    for future in late:
        future.cancel()
    failures: list[BaseException] = []
    for future in pending:
        if future in late or future.cancelled():
            failures.append(TimeoutError("an event was not acknowledged by JetStream"))
        elif (exc := future.exception()) is not None:
            failures.append(exc)
    if failures:
        raise failures[0]


def _consume_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "exception was never retrieved" warning


def fill_ref(fill: VenueFill) -> str:
    """``<venue>:<account>:<trade id>``: the fill's unique key, also its journal reference."""
    return f"{fill.venue}:{fill.account}:{fill.trade_id}"
