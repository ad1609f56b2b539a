"""Admission of an intent (pure): whose is it, what is it, may that user use that account?

The subject ``intent.<user>.<source>`` is the authority on who sent an intent
(DESIGN.md, "Execution" step 2); the payload only names the account, which
must belong to that user. Everything that fails here is refused with a reason
before any ledger row or venue call.

Text fields of the payload are checked here too, because they become ledger
keys, rows and event fields: an id or symbol with a NUL (Postgres ``text``
cannot hold it), a control character, or a length fit only for a DoS (a
1 MB intent id: no btree index can hold it, and its answer would not fit in
a NATS message) is refused as ``invalid_intent`` with the field's path, and
never echoed whole. A malformed subject is recorded escaped for the same
reason.
"""

from __future__ import annotations

import re

import msgspec

from tradebus.common import subjects
from tradebus.common.codec import decode_intent
from tradebus.common.messages import CancelAll, CancelOrder, Intent, PlaceOrder
from tradebus.execution.accounts import AccountSpec
from tradebus.execution.events import IntentContext
from tradebus.execution.risk import Refusal

MAX_DECODE_MESSAGE = 500
MAX_TEXT_CHARS = 200
"""Longest intent id, account id or symbol admitted (strategy ids are far shorter)."""
MAX_SUBJECT_CHARS = 300
"""Longest malformed subject kept as is in a refusal (longer ones are cut)."""
SHOW_CHARS = 40
"""How much of a refused value a refusal message quotes."""

_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f]")


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
    ``decode_error`` (not an intent), ``invalid_intent`` (an id, account or
    symbol that is empty, too long or holds a control character: the
    refusal then carries no intent id), ``unknown_account``, ``not_owner``.
    """
    try:
        user, source = subjects.parse_intent(subject)
    except subjects.SubjectError:
        kept = safe_text(subject, MAX_SUBJECT_CHARS)
        ctx = IntentContext(
            subject=kept, user="", source="", stream_seq=stream_seq, payload=payload
        )
        message = f"not an intent subject: {safe_text(subject, SHOW_CHARS)!r}"
        message += " (expected intent.<user>.<source>, tokens [A-Za-z0-9_-]{1,64})"
        return Refused(
            ctx=ctx, intent_id=None, account=None, refusal=Refusal("bad_subject", message)
        )
    ctx = IntentContext(
        subject=subject, user=user, source=source, stream_seq=stream_seq, payload=payload
    )
    try:
        intent = decode_intent(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        # msgspec quotes bad values (an unknown ``side``), so escape the message too
        refusal = Refusal("decode_error", safe_text(str(exc), MAX_DECODE_MESSAGE))
        return Refused(ctx=ctx, intent_id=None, account=None, refusal=refusal)
    problem = bad_text_field(intent)
    if problem is not None:
        intent_id = None if problem.startswith("intent_id") else intent.intent_id
        refusal = Refusal("invalid_intent", problem)
        return Refused(ctx=ctx, intent_id=intent_id, account=None, refusal=refusal)
    spec = accounts.get(intent.account)
    if spec is None:
        refusal = Refusal("unknown_account", f"no account {intent.account!r}")
        return Refused(ctx=ctx, intent_id=intent.intent_id, account=None, refusal=refusal)
    if spec.user != user:
        refusal = Refusal("not_owner", f"account {intent.account!r} is not {user}'s")
        return Refused(ctx=ctx, intent_id=intent.intent_id, account=intent.account, refusal=refusal)
    return Admitted(ctx=ctx, intent=intent, account=spec)


def safe_text(value: str, limit: int) -> str:
    """``value`` fit for a ledger row and a log: control characters (NUL included) escaped,
    cut to ``limit`` characters (marked with ``...``); lone surrogates escaped too."""
    try:
        value.encode()
    except UnicodeEncodeError:
        value = value.encode(errors="backslashreplace").decode()
    if _BAD_CHAR.search(value):
        value = _BAD_CHAR.sub(lambda m: ascii(m.group())[1:-1], value)
    return value if len(value) <= limit else value[: limit - 3] + "..."


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be an id or a symbol (empty, too long, control character), or None."""
    if not value:
        return "is empty"
    if len(value) > MAX_TEXT_CHARS:
        return f"has {len(value)} characters (at most {MAX_TEXT_CHARS})"
    if _BAD_CHAR.search(value):
        return f"holds a control character: {safe_text(value, SHOW_CHARS)!r}"
    return None


def bad_text_field(intent: Intent) -> str | None:
    """``"<field> <problem>"`` for the first text field of ``intent`` that cannot be kept, or None.

    ``intent_id`` is checked first, so a refusal that names another field may
    still quote the intent id.
    """
    fields: list[tuple[str, str | None]] = [("intent_id", intent.intent_id)]
    fields.append(("account", intent.account))
    match intent:
        case PlaceOrder():
            fields.append(("symbol", intent.symbol))
        case CancelOrder():
            fields.append(("target_intent_id", intent.target_intent_id))
        case CancelAll():
            fields.append(("symbol", intent.symbol))
    for name, value in fields:
        if value is None:
            continue
        problem = text_problem(value)
        if problem is not None:
            return f"{name} {problem}"
    return None
