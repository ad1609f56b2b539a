"""Admission of an intent (pure): whose is it, what is it, may that user use that account?

The subject ``intent.<user>.<source>`` is the authority on who sent an intent
(DESIGN.md, "Execution" step 2); the payload only names the account, which
must belong to that user. Everything that fails here is refused with a reason
before any ledger row or venue call.
"""

from __future__ import annotations

import msgspec

from tradebus.common import subjects
from tradebus.common.codec import decode_intent
from tradebus.common.messages import Intent
from tradebus.execution.accounts import AccountSpec
from tradebus.execution.events import IntentContext
from tradebus.execution.risk import Refusal

MAX_DECODE_MESSAGE = 500


class Admitted(msgspec.Struct, frozen=True, kw_only=True):
    """An intent its sender may act on: its context, the intent, the account."""

    ctx: IntentContext
    intent: Intent
    account: AccountSpec


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """An intent refused at the door, with what could be read of it."""

    ctx: IntentContext
    intent_id: str | None
    account: str | None
    refusal: Refusal


def admit(
    subject: str, payload: bytes, stream_seq: int | None, accounts: dict[str, AccountSpec]
) -> Admitted | Refused:
    """Decide whether the intent on ``subject`` may be acted on.

    Refusal reasons: ``bad_subject`` (not ``intent.<user>.<source>``),
    ``decode_error`` (not an intent), ``unknown_account``, ``not_owner``.
    """
    try:
        user, source = subjects.parse_intent(subject)
    except subjects.SubjectError as exc:
        ctx = IntentContext(
            subject=subject, user="", source="", stream_seq=stream_seq, payload=payload
        )
        return Refused(
            ctx=ctx, intent_id=None, account=None, refusal=Refusal("bad_subject", str(exc))
        )
    ctx = IntentContext(
        subject=subject, user=user, source=source, stream_seq=stream_seq, payload=payload
    )
    try:
        intent = decode_intent(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        refusal = Refusal("decode_error", str(exc)[:MAX_DECODE_MESSAGE])
        return Refused(ctx=ctx, intent_id=None, account=None, refusal=refusal)
    spec = accounts.get(intent.account)
    if spec is None:
        refusal = Refusal("unknown_account", f"no account {intent.account!r}")
        return Refused(ctx=ctx, intent_id=intent.intent_id, account=None, refusal=refusal)
    if spec.user != user:
        refusal = Refusal("not_owner", f"account {intent.account!r} is not {user}'s")
        return Refused(ctx=ctx, intent_id=intent.intent_id, account=intent.account, refusal=refusal)
    return Admitted(ctx=ctx, intent=intent, account=spec)
