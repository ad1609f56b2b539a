"""Admission of intents (tradebus.execution.intake): the subject decides who sent it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.execution.accounts import AccountSpec
from tradebus.execution.intake import MAX_TEXT_CHARS, Admitted, Refused, admit

ACCOUNTS = {
    "alice-paper": AccountSpec(id="alice-paper", user="alice"),
    "bob-paper": AccountSpec(id="bob-paper", user="bob"),
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
        ("intent.alice.manual", PLACE % b"carol-paper", "unknown_account", "i1", None),
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
    assert door.intent_id == intent_id and door.account is None
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
