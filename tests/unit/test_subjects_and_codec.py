"""Subjects are built and parsed in one place and never widened; messages round-trip as JSON."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

from tradebus.common import subjects
from tradebus.common.codec import decode_event, decode_intent, decode_market, encode
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.messages import (
    CancelAll,
    CancelOrder,
    OrderFilled,
    PlaceOrder,
    QuoteTick,
    TradeTick,
)


def test_builders() -> None:
    assert subjects.md_quote("binance", "BTCUSDT") == "md.quote.binance.BTCUSDT"
    assert subjects.md_trade("backpack", "SOL_USDC") == "md.trade.backpack.SOL_USDC"
    assert subjects.intent("alice", "manual") == "intent.alice.manual"
    assert subjects.exec_evt("alice", "alice-ladder-btc") == "exec.evt.alice.alice-ladder-btc"
    assert subjects.recon_report("alice-paper") == "recon.report.alice-paper"
    assert subjects.ctl("bots", "status") == "ctl.bots.status"
    assert subjects.parse_intent("intent.bob.bot-1") == ("bob", "bot-1", False)
    assert subjects.person_intent("bob", "manual") == "person.intent.bob.manual"
    assert subjects.parse_intent("person.intent.bob.manual") == ("bob", "manual", True)
    assert subjects.intents_stream("bob") == "INTENTS_bob"
    assert subjects.intents_stream_user("INTENTS_bob") == "bob"
    assert subjects.intents_stream_user("KV_bots") is None
    assert subjects.intents_stream_subjects("bob") == ["intent.bob.>", "person.intent.bob.>"]


@pytest.mark.parametrize("bad", ["a.b", "*", ">", "a b", "", "x" * 65, "ü"])
def test_tokens_that_would_widen_or_break_a_subject_are_refused(bad: str) -> None:
    with pytest.raises(subjects.SubjectError):
        subjects.intent(bad, "manual")
    with pytest.raises(subjects.SubjectError):
        subjects.parse_intent(f"intent.{bad}.manual")


def test_parse_intent_needs_exactly_three_tokens() -> None:
    for subject in (
        "intent.alice",
        "intent.alice.bot.extra",
        "exec.alice.bot",
        "person.intent.alice",
        "person.x.alice.bot",
        "personintent.alice.bot",
    ):
        with pytest.raises(subjects.SubjectError):
            subjects.parse_intent(subject)


def test_money_is_a_json_string_and_messages_round_trip() -> None:
    place = PlaceOrder(
        intent_id=IntentId("a:1:b0"),
        account=AccountId("acct"),
        symbol="BTCUSDT",
        side="buy",
        qty=D("0.00100"),
        price=D("61837.63"),
        ts_init=1,
        trigger_ts=2,
    )
    raw = encode(place)
    assert b'"type":"PlaceOrder"' in raw and b'"qty":"0.00100"' in raw
    assert decode_intent(raw) == place
    for intent in (
        CancelOrder(
            intent_id=IntentId("c"), account=AccountId("acct"), target_intent_id=IntentId("a:1:b0")
        ),
        CancelAll(
            intent_id=IntentId("x"), account=AccountId("acct"), symbol="BTCUSDT", scope="account"
        ),
    ):
        assert decode_intent(encode(intent)) == intent
    fill = OrderFilled(
        intent_id=IntentId("a"),
        user=UserId("u"),
        source="s",
        account=AccountId("acct"),
        symbol="BTCUSDT",
        side="sell",
        trade_id="1.1",
        price=D("1.5"),
        qty=D(2),
        fee=D("0.0003"),
        fee_asset="USDT",
        liquidity="maker",
        cum_qty=D(2),
        leaves_qty=D(0),
        ts_event=5,
    )
    assert decode_event(encode(fill)) == fill
    for tick in (
        QuoteTick(
            venue="binance",
            symbol="X",
            unified_symbol="X/Y",
            bid=D(1),
            bid_size=D(2),
            ask=D(3),
            ask_size=D(4),
            ts_event=1,
            ts_recv=2,
            ts_init=3,
            update_id=9,
        ),
        TradeTick(
            venue="binance",
            symbol="X",
            unified_symbol="X/Y",
            price=D(1),
            size=D(2),
            aggressor="sell",
            trade_id="7",
            ts_event=1,
            ts_recv=2,
            ts_init=3,
        ),
    ):
        assert decode_market(encode(tick)) == tick


def test_a_manual_intent_as_typed_on_the_command_line() -> None:
    typed = (
        b'{"type":"PlaceOrder","intent_id":"m-1","account":"alice-paper","symbol":"BTCUSDT",'
        b'"side":"buy","qty":"0.001","price":"60000"}'
    )
    intent = decode_intent(typed)
    assert (
        isinstance(intent, PlaceOrder) and intent.order_type == "limit" and intent.qty == D("0.001")
    )


def test_a_bare_json_number_keeps_its_exact_digits() -> None:
    # msgspec reads the number's text straight into a Decimal: no float is involved
    typed = b'{"type":"PlaceOrder","intent_id":"x","account":"a","symbol":"s","side":"buy",'
    intent = decode_intent(typed + b'"qty":0.1,"price":61837.63000000001}')
    assert isinstance(intent, PlaceOrder)
    assert (intent.qty, intent.price) == (D("0.1"), D("61837.63000000001"))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"type":"Nope"}',
        b'{"type":"PlaceOrder","intent_id":"x","account":"a","symbol":"s","side":"hold","qty":"1"}',
        b'{"type":"PlaceOrder","intent_id":"x","account":"a","symbol":"s","side":"buy","qty":"abc"}',
    ],
)
def test_bad_intents_do_not_decode(raw: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_intent(raw)
