"""Admission of intents (tradebus.engine.intake): the subject decides who sent it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.common.ids import AccountId, UserId
from tradebus.engine.accounts import AccountSpec
from tradebus.engine.intake import (
    MAX_TEXT_CHARS,
    Admitted,
    Refused,
    admit,
    safe_text,
    text_problem,
)

ACCOUNTS = {
    spec.id: spec
    for spec in (
        AccountSpec(id=AccountId("alice-paper"), user=UserId("alice")),
        AccountSpec(id=AccountId("bob-paper"), user=UserId("bob")),
    )
}
PLACE = (
    b'{"type":"PlaceOrder","intent_id":"i1","account":"%s","symbol":"BTCUSDT","side":"buy",'
    b'"qty":"1","price":"1"}'
)


def test_the_owner_is_admitted() -> None:
    door = admit("intent.alice.manual", PLACE % b"alice-paper", 7, ACCOUNTS)
    assert isinstance(door, Admitted)
    assert (door.ctx.user, door.ctx.source, door.ctx.stream_seq) == ("alice", "manual", 7)
    assert door.account.id == "alice-paper" and door.intent.intent_id == "i1"


@pytest.mark.parametrize(
    ("subject", "payload", "reason", "intent_id", "account"),
    [
        ("intent.alice", PLACE % b"alice-paper", "bad_subject", None, None),
        ("intent.al*ce.manual", PLACE % b"alice-paper", "bad_subject", None, None),
        ("intent.alice.manual", b"{", "decode_error", None, None),
        ("intent.alice.manual", PLACE % b"carol-paper", "unknown_account", "i1", "carol-paper"),
        # the payload cannot claim another user: the subject is the authority
        ("intent.bob.manual", PLACE % b"alice-paper", "not_owner", "i1", "alice-paper"),
    ],
)
def test_refusals(
    subject: str, payload: bytes, reason: str, intent_id: str | None, account: str | None
) -> None:
    door = admit(subject, payload, None, ACCOUNTS)
    assert isinstance(door, Refused)
    assert (door.refusal.reason, door.intent_id, door.account) == (reason, intent_id, account)
    assert door.refusal.message
    assert door.ctx.payload == payload


def place(**fields: object) -> bytes:
    """A PlaceOrder of alice's account with ``fields`` replaced."""
    body: dict[str, object] = {
        "type": "PlaceOrder",
        "intent_id": "i1",
        "account": "alice-paper",
        "symbol": "BTCUSDT",
        "side": "buy",
        "qty": "1",
        "price": "1",
    }
    return json.dumps({**body, **fields}).encode()


def storable(text: str | None, limit: int) -> bool:
    """True if Postgres ``text`` can hold ``text`` (no NUL, valid UTF-8) and it is short."""
    return text is None or ("\x00" not in text and len(text.encode()) <= limit * 4)


@pytest.mark.parametrize(
    ("payload", "intent_id", "field"),
    [
        # found by tests/faults/test_hostile_intents.py: a NUL in an id made the ledger
        # insert raise CharacterNotInRepertoireError and killed the execution service
        (place(intent_id="a\x00b"), None, "intent_id holds a control character"),
        (place(intent_id=""), None, "intent_id is empty"),
        (place(intent_id="x" * 201), None, "intent_id has 201 characters"),
        (place(intent_id="x" * 900_000), None, "intent_id has 900000 characters"),
        (place(account="a\x00"), "i1", "account holds a control character"),
        (place(account="a" * 5000), "i1", "account has 5000 characters"),
        (place(symbol="S" * 1_000_000), "i1", "symbol has 1000000 characters"),
        (place(symbol="BTC\nUSDT"), "i1", "symbol holds a control character"),
        (
            json.dumps(
                {
                    "type": "CancelOrder",
                    "intent_id": "c",
                    "account": "alice-paper",
                    "target_intent_id": "t\x00",
                }
            ).encode(),
            "c",
            "target_intent_id holds a control character",
        ),
        (
            json.dumps(
                {"type": "CancelAll", "intent_id": "c", "account": "alice-paper", "symbol": ""}
            ).encode(),
            "c",
            "symbol is empty",
        ),
    ],
)
def test_text_fields_that_the_ledger_cannot_key_are_refused(
    payload: bytes, intent_id: str | None, field: str
) -> None:
    door = admit("intent.alice.manual", payload, 3, ACCOUNTS)
    assert isinstance(door, Refused)
    assert door.refusal.reason == "invalid_intent" and door.refusal.message.startswith(field)
    assert door.intent_id == intent_id
    # the account it names is kept (its lane in execution), unless that is the bad field
    assert (door.account is None) == field.startswith("account")
    assert storable(door.refusal.message, 300)


def test_the_longest_admitted_id_is_admitted() -> None:
    door = admit("intent.alice.manual", place(intent_id="x" * MAX_TEXT_CHARS), 1, ACCOUNTS)
    assert isinstance(door, Admitted)


def test_a_decode_error_quoting_a_nul_is_escaped() -> None:
    # msgspec quotes an unknown tag as is: "Invalid value 'Pl\x00' - at `$.type`"
    door = admit("intent.alice.manual", b'{"type":"Pl\\u0000"}', 1, ACCOUNTS)
    assert isinstance(door, Refused) and door.refusal.reason == "decode_error"
    assert "\x00" not in door.refusal.message and "\\x00" in door.refusal.message


def test_a_malformed_subject_is_kept_escaped_and_cut() -> None:
    subject = "intent.al\x00ce." + "s" * 5000
    door = admit(subject, b"{}", 1, ACCOUNTS)
    assert isinstance(door, Refused) and door.refusal.reason == "bad_subject"
    assert door.ctx.subject.startswith("intent.al\\x00ce.") and len(door.ctx.subject) <= 300
    assert storable(door.refusal.message, 300) and "\x00" not in door.refusal.message
    lone = admit("intent.\udcff.x.y", b"{}", 2, ACCOUNTS)
    assert isinstance(lone, Refused) and lone.ctx.subject.encode()


@settings(max_examples=300, deadline=None)
@given(
    subject=st.sampled_from(["intent.alice.manual", "intent.bob.x", "intent.alice", "x"])
    | st.text(max_size=80),
    payload=st.binary(max_size=200)
    | st.builds(
        place,
        intent_id=st.text(max_size=300),
        account=st.sampled_from(["alice-paper", "bob-paper"]) | st.text(max_size=300),
        symbol=st.text(max_size=300),
    ),
)
def test_whatever_arrives_what_is_kept_of_it_is_storable(subject: str, payload: bytes) -> None:
    """Every refusal's texts fit a Postgres ``text`` column and an event (property)."""
    door = admit(subject, payload, 1, ACCOUNTS)
    if isinstance(door, Admitted):
        texts = [door.intent.intent_id, door.intent.account, door.intent.symbol]  # type: ignore[union-attr]
        assert all(storable(t, MAX_TEXT_CHARS) and t for t in texts)
        return
    for text, limit in [
        (door.ctx.subject, 300),
        (door.intent_id, MAX_TEXT_CHARS),
        (door.account, MAX_TEXT_CHARS),
        (door.refusal.message, 600),
    ]:
        assert storable(text, limit)
        if text is not None:
            text.encode()  # no lone surrogate


# --------------------------------------------------------------------------------------
# Issue 14: one hostile message must never stop execution; ids must read as what they are
# --------------------------------------------------------------------------------------

BAD_UTF8 = {
    "ff": b"\xff",
    "lone-continuation": b"\x80",
    "overlong-nul": b"\xc0\x80",
    "truncated": b"\xe2\x80",
    "utf8-surrogate": b"\xed\xa0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
}


def raw_place(**raw: bytes) -> bytes:
    """:func:`place` with the bytes of some string values (without quotes) replaced raw."""
    payload = place(**{k: f"@{k}@" for k in raw})
    for key, value in raw.items():
        payload = payload.replace(f"@{key}@".encode(), value)
    return payload


def test_invalid_utf8_inside_the_intent_id_is_a_decode_error_not_a_crash() -> None:
    # msgspec raised UnicodeDecodeError here: admit let it out, execution exited, and the
    # message (never acked) came back after every restart
    payload = b'{"type":"PlaceOrder","intent_id":"\xff","account":"alice-paper",'
    payload += b'"symbol":"BTCUSDT","side":"buy","qty":"1","price":"1"}'
    door = admit("intent.alice.manual", payload, 5, ACCOUNTS)
    assert isinstance(door, Refused)
    assert (door.refusal.reason, door.intent_id, door.account) == ("decode_error", None, None)
    assert door.refusal.message == "payload is not UTF-8: invalid start byte at byte 34"
    assert (door.ctx.user, door.ctx.source, door.ctx.payload) == ("alice", "manual", payload)


@pytest.mark.parametrize("bad", BAD_UTF8.values(), ids=BAD_UTF8.keys())
@pytest.mark.parametrize(
    "where", ["intent_id", "account", "symbol", "side", "qty", "type", "key", "unknown_field"]
)
def test_a_payload_that_is_not_utf8_anywhere_is_a_decode_error(where: str, bad: bytes) -> None:
    """Not only in the strings msgspec keeps: in a key or an ignored field too (RFC 8259 8.1)."""
    if where == "key":
        payload = place().replace(b'"account"', b'"acc' + bad + b'ount"', 1)
    elif where == "unknown_field":
        payload = raw_place(note=b"x" + bad)
    else:
        payload = raw_place(**{where: b"a" + bad + b"b"})
    with pytest.raises(UnicodeDecodeError):
        payload.decode()
    door = admit("intent.alice.manual", payload, 1, ACCOUNTS)
    assert isinstance(door, Refused) and door.refusal.reason == "decode_error"
    assert door.refusal.message.startswith("payload is not UTF-8: ")
    assert storable(door.refusal.message, 300)


@pytest.mark.parametrize(
    ("escaped", "reason"),
    [
        (b"\\ud800", "decode_error"),  # a lone high surrogate
        (b"\\udc00", "decode_error"),  # a lone low one
        (b"\\ud800A", "decode_error"),  # a high one not followed by a low one
        (b"\\udc00\\ud800", "decode_error"),  # a pair the wrong way round
        (b"\\ud83d\\ude00", None),  # a real pair: one emoji, admitted
        (b"\\u0000", "invalid_intent"),
        (b"\\u202e", "invalid_intent"),
        (b"\\u2028", "invalid_intent"),
        (b"\\ufeff", "invalid_intent"),
    ],
)
def test_surrogates_and_escaped_characters_in_the_intent_id(
    escaped: bytes, reason: str | None
) -> None:
    door = admit("intent.alice.manual", raw_place(intent_id=b"i" + escaped), 1, ACCOUNTS)
    if reason is None:
        assert isinstance(door, Admitted) and door.intent.intent_id == "i\U0001f600"
        return
    assert isinstance(door, Refused) and door.refusal.reason == reason
    assert door.intent_id is None and storable(door.refusal.message, 300)
    door.refusal.message.encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x00", "decode_error"),  # JSON allows no raw control character in a string
        (b"\x01", "decode_error"),
        (b"\n", "decode_error"),
        (b"\x1f", "decode_error"),
        (b"\x7f", "invalid_intent"),  # JSON allows a raw DEL: refused as an id character
        ("\x85".encode(), "invalid_intent"),  # a C1 control (NEL), valid UTF-8
        ("\u202e".encode(), "invalid_intent"),
        ("\u200b".encode(), "invalid_intent"),
    ],
)
@pytest.mark.parametrize("field", ["intent_id", "account", "symbol"])
def test_raw_control_and_format_characters_inside_strings(
    field: str, raw: bytes, reason: str
) -> None:
    door = admit("intent.alice.manual", raw_place(**{field: b"a" + raw + b"b"}), 1, ACCOUNTS)
    assert isinstance(door, Refused) and door.refusal.reason == reason
    if reason == "invalid_intent":
        assert door.refusal.message.startswith(f"{field} holds ")
        assert door.intent_id == (None if field == "intent_id" else "i1")
    assert not any(refused_char(c) for c in door.refusal.message)


FORMAT_CHARACTERS = [
    *(chr(c) for c in range(0x202A, 0x202F)),  # LRE RLE PDF LRO RLO: bidi embeddings, overrides
    *(chr(c) for c in range(0x2066, 0x206A)),  # LRI RLI FSI PDI: bidi isolates
    "\u200b",  # zero width space
    "\u200c",  # zero width non-joiner
    "\u200d",  # zero width joiner
    "\u200e",  # left-to-right mark
    "\u200f",  # right-to-left mark
    "\u061c",  # arabic letter mark
    "\u2060",  # word joiner
    "\u2061",  # function application (invisible)
    "\u2064",  # invisible plus
    "\ufeff",  # zero width no-break space (BOM)
    "\u00ad",  # soft hyphen
    "\u180e",  # mongolian vowel separator
    "\U000e0001",  # language tag
    "\U000e0041",  # tag latin capital letter a
]
OTHER_REFUSED = {
    "\x85": "a control character",  # C1 NEL
    "\x9b": "a control character",  # C1 CSI: starts a terminal escape sequence
    "\u2028": "a line separator",
    "\u2029": "a paragraph separator",
    "\ue000": "a private-use character",
    "\uf8ff": "a private-use character",
    "\U00100000": "a private-use character",
    "\u0378": "an unassigned code point",
    "\ufffe": "an unassigned code point",  # noncharacters are unassigned
    "\uffff": "an unassigned code point",
    "\U0010ffff": "an unassigned code point",
    "\u034f": "an invisible character",  # combining grapheme joiner
    "\u3164": "an invisible character",  # hangul filler
    "\ufe0f": "an invisible character",  # variation selector 16
    "\U000e0100": "an invisible character",  # variation selector 17
}
REFUSED_KIND = {**dict.fromkeys(FORMAT_CHARACTERS, "a format character"), **OTHER_REFUSED}


def refused_char(ch: str) -> bool:
    """True for a character no refusal may show raw (controls, format and the like)."""
    return ch in REFUSED_KIND or (ch < " " or ch == "\x7f") or "\ud800" <= ch <= "\udfff"


def intent_with(field: str, value: str) -> bytes:
    """An intent of alice's account with ``field`` set to ``value``."""
    if field == "target_intent_id":
        body = {"type": "CancelOrder", "intent_id": "c", "account": "alice-paper"}
        return json.dumps({**body, field: value}, ensure_ascii=False).encode()
    if field == "cancel_symbol":
        body = {"type": "CancelAll", "intent_id": "c", "account": "alice-paper"}
        return json.dumps({**body, "symbol": value}, ensure_ascii=False).encode()
    return place(**{field: value})


@pytest.mark.parametrize("ch", REFUSED_KIND, ids=[f"U+{ord(c):04X}" for c in REFUSED_KIND])
@pytest.mark.parametrize(
    "field", ["intent_id", "account", "symbol", "target_intent_id", "cancel_symbol"]
)
def test_every_format_and_invisible_character_is_refused_in_every_id_field(
    field: str, ch: str
) -> None:
    """A bidi override, a zero-width space...: an id that shows as another one is refused,
    as ``invalid_intent`` naming the field and the code point, the value quoted escaped."""
    lookalike = "alice-paper" if field == "account" else "BTCUSDT"
    value = lookalike[:5] + ch + lookalike[5:]
    door = admit("intent.alice.manual", intent_with(field, value), 1, ACCOUNTS)
    assert isinstance(door, Refused)
    name = "symbol" if field == "cancel_symbol" else field
    kind = REFUSED_KIND[ch]
    assert door.refusal.reason == "invalid_intent"
    assert door.refusal.message.startswith(f"{name} holds {kind} (U+{ord(ch):04X} at 5): ")
    assert ch not in door.refusal.message and ascii(ch)[1:-1] in door.refusal.message
    kept_id = {"intent_id": None, "target_intent_id": "c", "cancel_symbol": "c"}.get(field, "i1")
    assert door.intent_id == kept_id
    assert door.account == (None if field == "account" else "alice-paper")


def test_a_lone_surrogate_is_refused_by_the_text_check_as_well() -> None:
    """JSON cannot carry one (msgspec refuses ``\\ud800``), but the check does not rely on it."""
    assert text_problem("ab\ud800") == "holds a surrogate (U+D800 at 2): 'ab\\\\ud800'"
    assert safe_text("ab\udcff\u202e", 100) == "ab\\udcff\\u202e"


@pytest.mark.parametrize(
    "value",
    ["BTCUSDT", "fz-1:2.3:tp", "ålice", "Βtc", "i\U0001f600", "a b", "日本", "x\u00a0y"],
)
def test_printable_text_is_admitted_in_ids(value: str) -> None:
    """Letters of any script, emoji and spaces are not refused by the character check."""
    assert text_problem(value) is None


def test_a_decode_error_quoting_a_bidi_override_is_escaped() -> None:
    # msgspec quotes the bad enum value: "Invalid enum value 'b\u202euy' - at `$.side`"
    door = admit("intent.alice.manual", place(side="b\u202euy"), 1, ACCOUNTS)
    assert isinstance(door, Refused) and door.refusal.reason == "decode_error"
    assert "\u202e" not in door.refusal.message and "\\u202e" in door.refusal.message


@pytest.mark.parametrize(
    ("first", "last", "reason", "account"),
    [
        ("bob-paper", "alice-paper", None, "alice-paper"),
        ("alice-paper", "bob-paper", "not_owner", "bob-paper"),
        ("alice-paper", "carol-paper", "unknown_account", "carol-paper"),
    ],
)
def test_a_duplicate_key_means_its_last_value_and_ownership_is_checked_on_that_one(
    first: str, last: str, reason: str | None, account: str | None
) -> None:
    """msgspec keeps the last of two ``account`` keys (as json.loads does); the owner check
    is made on that account, the one the order would be placed on."""
    payload = place(account=last).replace(b"{", b'{"account": "%s", ' % first.encode(), 1)
    assert payload.count(b'"account"') == 2 and json.loads(payload)["account"] == last
    door = admit("intent.alice.manual", payload, 1, ACCOUNTS)
    if reason is None:
        assert isinstance(door, Admitted) and door.account.id == last
        assert door.intent.account == last
        return
    assert isinstance(door, Refused) and door.refusal.reason == reason
    assert door.account == account and last in door.refusal.message


def test_two_different_type_keys_are_a_decode_error() -> None:
    payload = place().replace(b"{", b'{"type": "CancelAll", ', 1)
    door = admit("intent.alice.manual", payload, 1, ACCOUNTS)
    assert isinstance(door, Refused) and door.refusal.reason == "decode_error"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"[" * 5000 + b"]" * 5000,
        place(note="@").replace(b'"@"', b"[" * 3000 + b"]" * 3000),
        place(note="@").replace(b'"@"', b'{"a":' * 3000 + b"1" + b"}" * 3000),
        place(qty="@").replace(b'"@"', b"[" * 3000 + b"]" * 3000),
        b'{"a":' * 200_000,
    ],
    ids=["objects", "arrays", "arrays-in-a-field", "objects-in-a-field", "arrays-as-qty", "open"],
)
def test_deep_nesting_is_a_decode_error(payload: bytes) -> None:
    door = admit("intent.alice.manual", payload, 1, ACCOUNTS)
    assert isinstance(door, Refused) and door.refusal.reason == "decode_error"
    assert (door.ctx.user, door.ctx.source) == ("alice", "manual")
    assert storable(door.refusal.message, 300)


@pytest.mark.parametrize(
    ("field", "text", "reason"),
    [
        ("qty", '"1e999999"', None),  # admitted here; refused by the order checks
        ("qty", "1e999999", None),
        ("qty", '"1e999999999999999999999"', "decode_error"),  # beyond Decimal's exponents
        ("qty", '"1' + "0" * 5000 + '"', None),
        ("qty", "1" + "0" * 5000, None),
        ("qty", '"NaN"', None),
        ("qty", '"-0"', None),
        ("price", '"-Infinity"', None),
        ("ts_init", "1" + "0" * 5000, "decode_error"),  # an int field: out of range
        ("ts_init", "1e999999", "decode_error"),
        ("note", "1" + "0" * 5000, None),  # an unknown field is skipped
        # msgspec takes integers of up to 4,300 digits: the ledger's bigint cannot
        ("trigger_ts", "-" + "9" * 30, "invalid_intent"),
        ("trigger_ts", "1" + "0" * 4299, "invalid_intent"),
        ("ts_init", str(2**63), "invalid_intent"),
        ("ts_init", "-1", "invalid_intent"),
        ("ts_init", str(2**63 - 1), None),
        ("trigger_ts", "0", None),
    ],
    ids=lambda v: v if not isinstance(v, str) or len(v) < 30 else f"{v[:12]}...({len(v)})",
)
def test_huge_numbers_never_raise(field: str, text: str, reason: str | None) -> None:
    payload = place(**{field: "@"}).replace(b'"@"', text.encode())
    door = admit("intent.alice.manual", payload, 1, ACCOUNTS)
    if reason is None:
        assert isinstance(door, Admitted)
    else:
        assert isinstance(door, Refused) and door.refusal.reason == reason
        assert storable(door.refusal.message, 300)
        if reason == "invalid_intent":
            assert door.refusal.message.startswith(f"{field} is out of range")
            assert door.intent_id == "i1"


class Boom(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "where"),
    [
        (Boom("b\u202eoom\x00"), "decode_intent"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "decode_intent"),
        (RecursionError("maximum recursion depth exceeded"), "decode_intent"),
        (OverflowError("int too large"), "decode_intent"),
        (ValueError("Exceeds the limit (4300 digits)"), "bad_text_field"),
        (KeyError("x"), "bad_text_field"),
        (TypeError("nope"), "parse_intent"),
    ],
)
def test_any_exception_while_decoding_or_checking_is_a_refusal(
    monkeypatch: pytest.MonkeyPatch, exc: Exception, where: str
) -> None:
    """Whatever the decoder or a check raises (a library's new error, a bug), the message
    is refused as ``decode_error`` naming the exception's type, never raised: execution
    would exit, and the message, never acked, would stop every restart too."""
    from tradebus.engine import intake

    def boom(*args: object) -> None:
        raise exc

    if where == "parse_intent":
        monkeypatch.setattr(intake.subjects, "parse_intent", boom)
    else:
        monkeypatch.setattr(intake, where, boom)
    door = admit("intent.alice.manual", place(), 9, ACCOUNTS)
    assert isinstance(door, Refused)
    assert (door.refusal.reason, door.intent_id, door.account) == ("decode_error", None, None)
    if where == "decode_intent" and isinstance(exc, UnicodeDecodeError):
        assert door.refusal.message.startswith("payload is not UTF-8")
    else:
        assert door.refusal.message.startswith(f"{type(exc).__name__}: ")
    assert not any(refused_char(c) for c in door.refusal.message)
    assert door.ctx.payload == place() and door.ctx.stream_seq == 9
    if where != "parse_intent":  # the refusal event still goes to the sender
        assert (door.ctx.user, door.ctx.source) == ("alice", "manual")


def test_memory_error_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running out of memory is the process's problem, not the message's: it propagates."""
    from tradebus.engine import intake

    def boom(payload: bytes) -> None:
        raise MemoryError

    monkeypatch.setattr(intake, "decode_intent", boom)
    with pytest.raises(MemoryError):
        admit("intent.alice.manual", place(), 1, ACCOUNTS)


@settings(max_examples=300, deadline=None)
@given(
    raw=st.dictionaries(
        st.sampled_from(["intent_id", "account", "symbol", "side", "qty", "type"]),
        st.binary(min_size=1, max_size=12).filter(lambda b: b'"' not in b and b"\\" not in b),
        min_size=1,
        max_size=3,
    )
)
def test_whatever_bytes_are_inside_the_strings_admit_answers(raw: dict[str, bytes]) -> None:
    """Raw bytes inside JSON strings (where random payloads never put them): admit never
    raises, and nothing it keeps holds a character an id may not hold (property)."""
    door = admit("intent.alice.manual", raw_place(**raw), 1, ACCOUNTS)
    if isinstance(door, Admitted):
        texts = [door.intent.intent_id, door.intent.account, door.intent.symbol]  # type: ignore[union-attr]
    else:
        texts = [door.intent_id, door.account, door.refusal.message]
    for text in texts:
        assert text is None or not any(refused_char(c) for c in text), text
        assert storable(text, 600)
