"""Manual orders: ``POST /api/v1/intents[?wait=seconds]``.

The body is one intent for one of the caller's accounts, by ``type``:

* ``{"type": "place", "account", "symbol", "side", "qty", "price"?,
  "order_type"?, "time_in_force"?, "intent_id"?}``;
* ``{"type": "cancel", "account", "target_intent_id", "intent_id"?}``;
* ``{"type": "cancel_all", "account", "symbol"?, "scope"?, "intent_id"?}``.

It becomes the bus's :data:`~tradebus.common.messages.Intent` and is
published as the caller's own NATS intent would be: on
``person.intent.<user>.manual``, ``Nats-Msg-Id`` = its intent id
(:mod:`tradebus.control.intents`), so execution applies exactly the checks it
applies to a person's intent (ownership, risk, kill switch; the times of a
person's intent are never trusted: ``ts_init`` is the gateway's clock and no
``trigger_ts`` is sent). The answer is 202 with the intent id; with ``wait``
(up to 30 s) the gateway also waits for execution's answers on
``exec.evt.<user>.manual`` and returns them (``events``).

Refusals: an account that does not exist (400 naming ``account``) or is not
the caller's (404); an intent id used before (409 naming ``intent_id``);
the caller's intent stream full or the message too large (429 with
JetStream's reason); no stream taking the caller's intents (503: execution
is not running or has not loaded the account yet). Each intent sent is
audited (``intent.place``, ``intent.cancel``, ``intent.cancel_all``).
Execution's own refusals come back as ``OrderRejected`` events, e.g.
``not_supported`` for ``"time_in_force": "ioc"`` on a paper account (its
orders rest until filled or canceled; live venues take ``ioc``).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated

import msgspec
import nats.errors
from litestar import Router, post
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_202_ACCEPTED

from tradebus.common.ids import AccountId, IntentId
from tradebus.common.messages import (
    CancelAll,
    CancelOrder,
    CancelScope,
    Intent,
    OrderEvent,
    OrderType,
    PlaceOrder,
    Side,
    TimeInForce,
)
from tradebus.common.subjects import TOKEN_PATTERN
from tradebus.control.intents import IntentRefused, send_intent
from tradebus.gateway.auth import SECURED
from tradebus.gateway.context import Caller, Ctx
from tradebus.gateway.errors import ApiError, invalid
from tradebus.gateway.live import account_info

MAX_WAIT_SECONDS = 30.0
INTENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"

Token = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN.pattern)]
IntentIdText = Annotated[str, msgspec.Meta(pattern=INTENT_ID_PATTERN)]
Positive = Decimal
"""A decimal that must be finite and > 0 (msgspec cannot bound a Decimal: :func:`_positive`)."""


class PlaceBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="place"):
    """Place an order: ``qty`` in the base asset; ``price`` (quote per base) required for
    a limit order, the worst price accepted for a market order."""

    account: Token
    symbol: Token
    side: Side
    qty: Positive
    price: Positive | None = None
    order_type: OrderType = "limit"
    time_in_force: TimeInForce = "gtc"
    intent_id: IntentIdText | None = None


class CancelBody(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="cancel"
):
    """Cancel the order that intent ``target_intent_id`` placed."""

    account: Token
    target_intent_id: IntentIdText
    intent_id: IntentIdText | None = None


class CancelAllBody(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="cancel_all"
):
    """Cancel open orders of an account (of one ``symbol``): the manual ones
    (``scope: source``) or all of them, the bots' too (``scope: account``)."""

    account: Token
    symbol: Token | None = None
    scope: CancelScope = "source"
    intent_id: IntentIdText | None = None


IntentBody = PlaceBody | CancelBody | CancelAllBody


class IntentSent(msgspec.Struct, frozen=True, kw_only=True):
    """An intent taken by the bus: its id, and execution's answers within ``wait``
    (``answered`` false if none came: look in the history or on the WebSocket)."""

    intent_id: IntentId
    intent: Intent
    answered: bool
    events: list[OrderEvent]


def _positive(field: str, value: Decimal) -> None:
    """400 naming ``field`` unless ``value`` is a finite number above zero."""
    if not value.is_finite() or value <= 0:
        raise invalid(field, f"must be a number above 0, got {value}")


def _intent(body: IntentBody, now_ns: int) -> Intent:
    intent_id = IntentId(body.intent_id or f"api-{uuid.uuid4().hex}")
    account = AccountId(body.account)
    match body:
        case PlaceBody():
            _positive("qty", body.qty)
            if body.price is not None:
                _positive("price", body.price)
            if body.order_type == "limit" and body.price is None:
                raise invalid("price", "required for a limit order")
            return PlaceOrder(
                intent_id=intent_id,
                account=account,
                symbol=body.symbol,
                side=body.side,
                qty=body.qty,
                price=body.price,
                order_type=body.order_type,
                time_in_force=body.time_in_force,
                ts_init=now_ns,
            )
        case CancelBody():
            return CancelOrder(
                intent_id=intent_id,
                account=account,
                target_intent_id=IntentId(body.target_intent_id),
                ts_init=now_ns,
            )
        case CancelAllBody():
            return CancelAll(
                intent_id=intent_id,
                account=account,
                symbol=body.symbol,
                scope=body.scope,
                ts_init=now_ns,
            )


_ACTIONS = {
    PlaceBody: "intent.place",
    CancelBody: "intent.cancel",
    CancelAllBody: "intent.cancel_all",
}


@post("/intents", status_code=HTTP_202_ACCEPTED, security=SECURED, summary="Send a manual intent")
async def send_manual_intent(
    ctx: Ctx,
    principal: Caller,
    data: JSONBody[IntentBody],
    wait: Annotated[
        float,
        Parameter(ge=0, le=MAX_WAIT_SECONDS, description="seconds to wait for execution"),
    ] = 0.0,
) -> IntentSent:
    """Publish a manual intent of the caller (module docstring)."""
    account = await account_info(ctx.pool, data.account)
    if account is None or not account.active:
        raise invalid("account", f"no account {data.account!r}")
    if account.owner != principal.user:
        raise ApiError(404, "not_found", f"no account {data.account!r}", field="account")
    intent = _intent(data, ctx.clock.now_ns())
    try:
        events = await send_intent(ctx.nc, principal.user, intent, wait, from_person=True)
    except IntentRefused as exc:
        if exc.kind == "duplicate":
            raise ApiError(409, "conflict", exc.message, field="intent_id") from None
        if exc.kind == "quota":
            raise ApiError(429, "too_many_intents", exc.message) from None
        raise ApiError(
            503,
            "unavailable",
            "no stream takes your intents: execution is not running, or has not loaded"
            " your accounts yet",
        ) from None
    except nats.errors.Error as exc:
        raise ApiError(503, "unavailable", f"the bus did not take the intent ({exc})") from None
    await ctx.audit.record(
        principal.actor(),
        _ACTIONS[type(data)],
        f"account:{account.id}",
        user=principal.user,
        after=intent,
    )
    return IntentSent(
        intent_id=intent.intent_id, intent=intent, answered=bool(events), events=events
    )


intents_router = Router(path="/api/v1", route_handlers=[send_manual_intent], tags=["intents"])
