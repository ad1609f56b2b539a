"""Admission of an intent (pure): whose is it, what is it, may that user use that account?

The subject ``intent.<user>.<source>`` is the authority on who sent an intent
(DESIGN.md, "Execution" step 2); the payload only names the account, which
must belong to that user. Everything that fails here is refused with a reason
before any ledger row or venue call.

Text fields of the payload are checked here too, because they become ledger
keys, rows and event fields: an id or symbol with a NUL (Postgres ``text``
cannot hold it), a control character, a character that changes how the
text around it is shown without being seen itself (a bidi override, a
zero-width space: an id that reads like another one), or a length fit only
for a DoS (a 1 MB intent id: no btree index can hold it, and its answer
would not fit in a NATS message) is refused as ``invalid_intent`` with the
field's path, and never echoed raw. A malformed subject is recorded escaped
for the same reason.

The subject also says whether a person published the intent from their own
NATS account (``person.intent.<user>.<source>``): such an intent's times are
never trusted, so its ``trigger_ts`` is dropped and the paper venue makes the
order live from its receipt (a backdated order cannot fill on past prices).
Only the system's own services (a strategy host's bots, the operator) may say
which market event caused an intent.

One message must never stop execution: a message that is never acked comes
back after every restart. :func:`admit` therefore refuses (``decode_error``)
whatever it cannot decode or check, whatever the exception (a payload that
is not UTF-8, nesting deeper than the decoder recurses), except
:class:`MemoryError`.
"""

from __future__ import annotations

import logging
import re
from unicodedata import category

import msgspec

from tradebus.common import subjects
from tradebus.common.codec import decode_intent
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.messages import CancelAll, CancelOrder, Intent, PlaceOrder
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.events import IntentContext
from tradebus.engine.risk import Refusal

MAX_DECODE_MESSAGE = 500
MAX_TEXT_CHARS = 200
"""Longest intent id, account id or symbol admitted (strategy ids are far shorter)."""
MAX_TIME_NS = 2**63 - 1
"""Latest ``ts_init`` or ``trigger_ts`` admitted: a Postgres ``bigint`` (JSON has no limit,
and msgspec decodes integers of up to 4,300 digits)."""
MAX_SUBJECT_CHARS = 300
"""Longest malformed subject kept as is in a refusal (longer ones are cut)."""
SHOW_CHARS = 40
"""How much of a refused value a refusal message quotes."""

log = logging.getLogger(__name__)

_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REFUSED_CATEGORIES = {
    "Cc": "a control character",  # C0, DEL, C1
    "Cf": "a format character",  # bidi overrides and isolates, zero-width, BOM, tags
    "Cs": "a surrogate",  # only a lone one can reach a str
    "Co": "a private-use character",  # no agreed meaning or glyph: cannot be read back
    "Cn": "an unassigned code point",  # noncharacters too (U+FFFE); per Python's Unicode
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
"""Unicode categories an id, account or symbol may not hold, and how a refusal names them."""
_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0") | {
    chr(c) for c in (*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0))
}
"""Default-ignorable code points outside those categories (grapheme joiner, Hangul
fillers, variation selectors): drawn as nothing, so refused as well."""
_EXPECTED = (msgspec.DecodeError, msgspec.ValidationError)
"""What the decoder raises for a payload that is not an intent (its message says why)."""


class Admitted(msgspec.Struct, frozen=True, kw_only=True):
    """An intent its sender may act on: its context, the intent, the account."""

    ctx: IntentContext
    intent: Intent
    account: AccountSpec


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """An intent refused at the door, with what could be read of it."""

    ctx: IntentContext
    intent_id: IntentId | None
    account: AccountId | None
    refusal: Refusal


def admit(
    subject: str,
    payload: bytes,
    stream_seq: int | None,
    accounts: dict[AccountId, AccountSpec],
    stream: str = "",
) -> Admitted | Refused:
    """Decide whether the intent on ``subject`` may be acted on. Never raises (but
    :class:`MemoryError`): whatever cannot be decoded or checked is refused.

    Refusal reasons: ``bad_subject`` (not ``intent.<user>.<source>``),
    ``decode_error`` (not an intent: not UTF-8, not JSON, not one of the
    intents; or any other exception while decoding or checking it, named by
    its type), ``invalid_intent`` (an id, account or symbol that is empty,
    too long or holds a control, format or other invisible character: the
    refusal carries no intent id if that is the intent id; or a time that is
    negative or beyond a ``bigint``), ``unknown_account``, ``not_owner``.
    """
    try:
        return _admit(subject, payload, stream_seq, accounts, stream)
    except MemoryError:
        raise
    except Exception as exc:  # one hostile message must not stop execution (module docstring)
        return _unreadable(subject, payload, stream_seq, exc, stream)


def _admit(
    subject: str,
    payload: bytes,
    stream_seq: int | None,
    accounts: dict[AccountId, AccountSpec],
    stream: str,
) -> Admitted | Refused:
    try:
        user, source, from_person = subjects.parse_intent(subject)
    except subjects.SubjectError:
        kept = safe_text(subject, MAX_SUBJECT_CHARS)
        ctx = IntentContext(
            subject=kept,
            user=UserId(""),
            source="",
            stream_seq=stream_seq,
            payload=payload,
            stream=stream,
        )
        message = f"not an intent subject: {safe_text(subject, SHOW_CHARS)!r}"
        message += " (expected intent.<user>.<source>, tokens [A-Za-z0-9_-]{1,64})"
        return Refused(
            ctx=ctx, intent_id=None, account=None, refusal=Refusal("bad_subject", message)
        )
    ctx = IntentContext(
        subject=subject,
        user=user,
        source=source,
        stream_seq=stream_seq,
        payload=payload,
        from_person=from_person,
        stream=stream,
    )
    try:
        if not payload.isascii():
            # JSON is UTF-8 (RFC 8259 8.1); msgspec checks only the strings it keeps,
            # and raises UnicodeDecodeError for those
            payload.decode()
        intent = decode_intent(payload)
    except UnicodeDecodeError as exc:
        message = f"payload is not UTF-8: {exc.reason} at byte {exc.start}"
        refusal = Refusal("decode_error", safe_text(message, MAX_DECODE_MESSAGE))
        return Refused(ctx=ctx, intent_id=None, account=None, refusal=refusal)
    except _EXPECTED as exc:
        # msgspec quotes bad values (an unknown ``side``), so escape the message too
        refusal = Refusal("decode_error", safe_text(str(exc), MAX_DECODE_MESSAGE))
        return Refused(ctx=ctx, intent_id=None, account=None, refusal=refusal)
    return admit_intent(ctx, intent, accounts)


def admit_intent(
    ctx: IntentContext, intent: Intent, accounts: dict[AccountId, AccountSpec]
) -> Admitted | Refused:
    """The checks of :func:`admit` after decoding, for an intent that is already an object
    (a backtest's, the tests' simulation's: ``ctx`` says who sent it).

    Refusal reasons: ``invalid_intent``, ``unknown_account``, ``not_owner``
    (see :func:`admit`). A person's ``trigger_ts`` is dropped.
    """
    problem = bad_text_field(intent) or bad_time_field(intent)
    if problem is not None:
        intent_id = None if problem.startswith("intent_id") else intent.intent_id
        account = intent.account if text_problem(intent.account) is None else None
        refusal = Refusal("invalid_intent", problem)
        return Refused(ctx=ctx, intent_id=intent_id, account=account, refusal=refusal)
    spec = accounts.get(intent.account)
    if spec is None:
        refusal = Refusal("unknown_account", f"no account {intent.account!r}")
        return Refused(ctx=ctx, intent_id=intent.intent_id, account=intent.account, refusal=refusal)
    if spec.user != ctx.user:
        refusal = Refusal("not_owner", f"account {intent.account!r} is not {ctx.user}'s")
        return Refused(ctx=ctx, intent_id=intent.intent_id, account=intent.account, refusal=refusal)
    if ctx.from_person and isinstance(intent, PlaceOrder) and intent.trigger_ts is not None:
        # a person's times are never trusted: their order goes live from its receipt
        intent = msgspec.structs.replace(intent, trigger_ts=None)
    return Admitted(ctx=ctx, intent=intent, account=spec)


def _unreadable(
    subject: str, payload: bytes, stream_seq: int | None, exc: Exception, stream: str = ""
) -> Refused:
    """The refusal of a message whose decoding or checking raised ``exc`` (``decode_error``,
    named by the exception's type); the subject's user and source are kept if it has them."""
    user, source = UserId(""), ""
    try:
        parsed = subjects.parse_intent(subject)
        user, source, kept = parsed[0], parsed[1], subject
    except Exception:
        kept = _last_resort(subject, MAX_SUBJECT_CHARS)
    try:
        detail = str(exc)
    except Exception:
        detail = ""
    message = _last_resort(f"{type(exc).__name__}: {detail}", MAX_DECODE_MESSAGE)
    if not isinstance(exc, RecursionError):  # nesting is hostile input, not a bug
        log.warning("intent refused: %s while decoding or checking it", type(exc).__name__)
    ctx = IntentContext(
        subject=kept,
        user=user,
        source=source,
        stream_seq=stream_seq,
        payload=payload,
        stream=stream,
    )
    return Refused(ctx=ctx, intent_id=None, account=None, refusal=Refusal("decode_error", message))


def _last_resort(value: object, limit: int) -> str:
    """:func:`safe_text` of ``value``, or its :func:`ascii` form if even that fails."""
    try:
        return safe_text(value, limit)  # type: ignore[arg-type]
    except Exception:
        return ascii(value)[:limit]


def _refused_char(ch: str) -> str | None:
    """How a refusal names ``ch`` if an id may not hold it (control, format, invisible,
    surrogate, private-use, unassigned, line or paragraph separator), else None."""
    if ch < "\x7f":
        return "a control character" if ch < " " else None
    kind = _REFUSED_CATEGORIES.get(category(ch))
    if kind is None and ch in _INVISIBLE:
        return "an invisible character"
    return kind


def _first_refused_char(value: str) -> tuple[int, str] | None:
    """Index and kind (:func:`_refused_char`) of the first character of ``value`` an id
    may not hold, or None. ASCII text (every id a strategy makes) takes one regex scan."""
    if value.isascii():
        found = _ASCII_CONTROL.search(value)
        return None if found is None else (found.start(), "a control character")
    for i, ch in enumerate(value):
        kind = _refused_char(ch)
        if kind is not None:
            return i, kind
    return None


def safe_text(value: str, limit: int) -> str:
    """``value`` fit for a ledger row, a log and a person's screen: every character an id
    may not hold (:func:`_refused_char`: NUL, controls, bidi overrides, zero-width
    characters, lone surrogates, ...) escaped as ``\\x00``, ``\\u202e``, cut to ``limit``
    characters (marked with ``...``)."""
    value = value[: limit + 1]  # escaping only lengthens: what is cut here is never shown
    if value.isascii():
        if _ASCII_CONTROL.search(value):
            value = _ASCII_CONTROL.sub(lambda m: ascii(m.group())[1:-1], value)
    elif _first_refused_char(value) is not None:
        value = "".join(ascii(ch)[1:-1] if _refused_char(ch) else ch for ch in value)
    return value if len(value) <= limit else value[: limit - 3] + "..."


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be an id or a symbol (empty, too long, a character
    :func:`_refused_char` names), or None."""
    if not value:
        return "is empty"
    if len(value) > MAX_TEXT_CHARS:
        return f"has {len(value)} characters (at most {MAX_TEXT_CHARS})"
    found = _first_refused_char(value)
    if found is not None:
        i, kind = found
        shown = safe_text(value, SHOW_CHARS)
        return f"holds {kind} (U+{ord(value[i]):04X} at {i}): {shown!r}"
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


def bad_time_field(intent: Intent) -> str | None:
    """``"<field> is out of range ..."`` for a time of ``intent`` that is negative or too
    large for the ledger (:data:`MAX_TIME_NS`), or None."""
    times: list[tuple[str, int | None]] = [("ts_init", intent.ts_init)]
    if isinstance(intent, PlaceOrder):
        times.append(("trigger_ts", intent.trigger_ts))
    for name, value in times:
        if value is not None and not 0 <= value <= MAX_TIME_NS:
            shown = safe_text(str(value), SHOW_CHARS)
            return f"{name} is out of range (0 to {MAX_TIME_NS} ns): {shown}"
    return None
