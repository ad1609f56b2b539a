"""Admission of intents (tradebus.execution.intake): the subject decides who sent it."""

from __future__ import annotations

import pytest

from tradebus.execution.accounts import AccountSpec
from tradebus.execution.intake import Admitted, Refused, admit

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
