"""Manual intents: publish one for a person and collect execution's answers to it.

Shared by ``tradebus intent place|cancel`` (the operator, on
``intent.<user>.manual``) and the gateway (a person, on
``person.intent.<user>.manual``: execution treats it as the person's own NATS
intent, whose times it never trusts). Either way:

* the intent is published to JetStream (stream ``INTENTS_<user>``) with
  ``Nats-Msg-Id`` = its intent id, so a resend within the duplicate window
  is dropped by JetStream and reported as :class:`IntentRefused`
  (``duplicate``);
* execution answers on ``exec.evt.<user>.manual``;
  :func:`send_intent` subscribes there *before* publishing and collects the
  events that answer the intent (:func:`answers`) until a final one
  (:data:`FINAL_EVENTS`), :data:`SETTLE_SECONDS` after a non-final one, or
  ``wait`` seconds.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription

from tradebus.common import subjects
from tradebus.common.bus import MSG_ID
from tradebus.common.codec import decode_event, encode
from tradebus.common.messages import Intent, OrderEvent

FINAL_EVENTS = {
    "PlaceOrder": ("OrderRejected", "OrderFilled", "OrderCanceled"),
    "CancelOrder": ("OrderRejected", "OrderCanceled", "CancelRejected"),
    "CancelAll": ("OrderRejected",),
}
"""Per intent type, the answers after which no other is expected."""
SETTLE_SECONDS = 0.3
"""After a non-final answer (an acceptance, one of a cancel-all's cancels), wait this much more."""
REFUSALS = ("OrderRejected", "CancelRejected")
"""Answers that refuse an intent."""

RefusalKind = Literal["no_stream", "quota", "duplicate"]


class IntentRefused(Exception):
    """JetStream did not take an intent.

    ``kind``: ``no_stream`` (no stream captures the user's intents: execution
    is not running or has no account of theirs), ``quota`` (their stream is
    full or the message too large; ``message`` has JetStream's reason), or
    ``duplicate`` (this intent id was used within the duplicate window).
    """

    def __init__(self, kind: RefusalKind, message: str) -> None:
        super().__init__(message)
        self.kind: RefusalKind = kind
        self.message = message


def answers(intent: Intent, event: Any) -> bool:
    """True if ``event`` answers ``intent``.

    An :class:`OrderCanceled` carries the intent id of the order it ends and,
    in ``cancel_intent_id``, the cancel that ended it.
    """
    ids = (event.intent_id, getattr(event, "cancel_intent_id", None))
    return intent.intent_id in ids


def is_refusal(event: Any) -> bool:
    """True if ``event`` refuses an intent (:data:`REFUSALS`)."""
    return type(event).__name__ in REFUSALS


async def publish_intent(nc: NATS, subject: str, intent: Intent) -> None:
    """Publish ``intent`` on ``subject`` to JetStream (``Nats-Msg-Id`` = its id) and wait
    for the stream's ack.

    Raises
    ------
    IntentRefused
        If no stream takes it, the stream refuses it, or it is a duplicate.
    nats.errors.TimeoutError
        If JetStream does not answer in time.
    """
    try:
        ack = await nc.jetstream().publish(
            subject, encode(intent), headers={MSG_ID: intent.intent_id}
        )
    except (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError):
        raise IntentRefused("no_stream", f"no stream takes intents on {subject}") from None
    except nats.js.errors.APIError as exc:  # the user's quota: backlog, message size
        raise IntentRefused(
            "quota", f"JetStream refused the intent: {exc.description or exc}"
        ) from None
    if ack.duplicate:
        raise IntentRefused("duplicate", f"intent id {intent.intent_id!r} was already used")


async def collect_answers(sub: Subscription, intent: Intent, wait: float) -> list[OrderEvent]:
    """Execution's answers to ``intent`` arriving on ``sub`` (module docstring), within
    ``wait`` seconds at most."""
    events: list[OrderEvent] = []
    final = FINAL_EVENTS[type(intent).__name__]
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            msg = await sub.next_msg(timeout=max(0.01, deadline - time.monotonic()))
        except nats.errors.TimeoutError:
            break
        try:
            event = decode_event(msg.data)
        except Exception:  # not an order event: not an answer
            continue
        if not answers(intent, event):
            continue
        events.append(event)
        if type(event).__name__ in final:
            break
        deadline = min(deadline, time.monotonic() + SETTLE_SECONDS)
    return events


async def send_intent(
    nc: NATS, user: str, intent: Intent, wait: float, from_person: bool = False
) -> list[OrderEvent]:
    """Publish a manual intent of ``user`` and collect execution's answers for up to
    ``wait`` seconds (none collected when ``wait`` <= 0).

    ``from_person``: publish on ``person.intent.<user>.manual`` (a person's
    own intent, as from their NATS account) instead of ``intent.<user>.manual``.

    Raises
    ------
    IntentRefused
        As :func:`publish_intent`.
    """
    source = subjects.MANUAL_SOURCE
    subject = subjects.person_intent(user, source) if from_person else subjects.intent(user, source)
    if wait <= 0:
        await publish_intent(nc, subject, intent)
        return []
    sub = await nc.subscribe(subjects.exec_evt(user, source))
    try:
        await publish_intent(nc, subject, intent)
        return await collect_answers(sub, intent, wait)
    finally:
        await sub.unsubscribe()
