"""Journal entries of fills and the sums that make balances (tradebus.ledger.entries)."""

from __future__ import annotations

import random
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.common.ids import AccountId
from tradebus.common.messages import Side
from tradebus.ledger.entries import (
    FILL_KINDS,
    FillFacts,
    PerpFillFacts,
    deposit_entries,
    fill_entries,
    perp_fill_entries,
    position_asset,
    sum_balances,
)


def fact(side: Side, qty: str, price: str, fee: str, ref: str = "paper:1") -> FillFacts:
    return FillFacts(
        account=AccountId("a"),
        base="BTC",
        quote="USDT",
        side=side,
        price=D(price),
        qty=D(qty),
        fee=D(fee),
        fee_asset="USDT",
        ref=ref,
    )


def test_buy_and_sell_entries() -> None:
    buy = fill_entries(fact("buy", "0.5", "60000", "1.5"))
    assert [(e.asset, e.amount, e.kind) for e in buy] == [
        ("BTC", D("0.5"), "fill"),
        ("USDT", D("-30000"), "fill"),
        ("USDT", D("-1.5"), "fee"),
    ]
    sell = fill_entries(fact("sell", "0.5", "61000", "1.525"))
    assert [(e.asset, e.amount) for e in sell] == [
        ("BTC", D("-0.5")),
        ("USDT", D("30500")),
        ("USDT", D("-1.525")),
    ]


def test_zero_fee_books_no_fee_entry() -> None:
    assert [e.kind for e in fill_entries(fact("buy", "1", "10", "0"))] == ["fill", "fill"]


def test_balances_are_sums_of_deposits_and_fills() -> None:
    entries = deposit_entries(AccountId("a"), {"USDT": D(100000), "BTC": D(0)}, "initial")
    entries += fill_entries(fact("buy", "0.5", "60000", "1.5", "paper:1"))
    entries += fill_entries(fact("sell", "0.2", "61000", "0.61", "paper:2"))
    assert sum_balances(entries) == {
        ("a", "USDT"): D(100000) - 30000 - D("1.5") + 12200 - D("0.61"),
        ("a", "BTC"): D("0.3"),
    }


def perp_fact(side: str, qty: str, pnl: str, fee: str, ref: str = "paper:1") -> PerpFillFacts:
    return PerpFillFacts(
        account=AccountId("a"),
        symbol="BTCUSDT",
        quote="USDT",
        side=side,  # type: ignore[arg-type]
        qty=D(qty),
        realized_pnl=D(pnl),
        fee=D(fee),
        fee_asset="USDT",
        ref=ref,
    )


def test_perpetual_fills_journal_the_position_realized_pnl_and_fee() -> None:
    assert position_asset("BTCUSDT") == "BTCUSDT-PERP"
    opening = perp_fill_entries(perp_fact("sell", "0.5", "0", "1.5"))
    assert [(e.asset, e.amount, e.kind) for e in opening] == [
        ("BTCUSDT-PERP", D("-0.5"), "fill"),  # no base asset moves; no P&L on an opening
        ("USDT", D("-1.5"), "fee"),
    ]
    closing = perp_fill_entries(perp_fact("buy", "0.2", "-12.5", "0"))
    assert [(e.asset, e.amount, e.kind) for e in closing] == [
        ("BTCUSDT-PERP", D("0.2"), "fill"),
        ("USDT", D("-12.5"), "realized_pnl"),
    ]
    assert {e.kind for e in opening + closing} <= set(FILL_KINDS)


def test_perpetual_balances_are_the_position_and_the_quote_net_of_pnl_and_fees() -> None:
    entries = deposit_entries(AccountId("a"), {"USDT": D(1000)}, "initial")
    entries += perp_fill_entries(perp_fact("buy", "3", "0", "0.3", "paper:1"))
    entries += perp_fill_entries(perp_fact("sell", "2", "6", "0.2", "paper:2"))
    entries += perp_fill_entries(perp_fact("sell", "3", "2.5", "0.15", "paper:3"))
    assert sum_balances(entries) == {
        ("a", "USDT"): D(1000) - D("0.3") + 6 - D("0.2") + D("2.5") - D("0.15"),
        ("a", "BTCUSDT-PERP"): D(-2),
    }


side = st.sampled_from(["buy", "sell"])
amount = st.decimals(min_value=D("0.00001"), max_value=D(100), places=5)
price = st.decimals(min_value=D("0.01"), max_value=D(100000), places=2)


@given(st.lists(st.tuples(side, amount, price, amount), max_size=30), st.randoms())
@settings(max_examples=200)
def test_entries_conserve_value_and_order_does_not_matter(fills: list, rnd: random.Random) -> None:
    facts = [fact(s, str(q), str(p), str(f), f"paper:{i}") for i, (s, q, p, f) in enumerate(fills)]
    for f in facts:
        base, quote, *fee = fill_entries(f)
        # at the fill price, what moved in is what moved out, less the fee
        assert base.amount * f.price + quote.amount == 0
        assert sum(e.amount for e in fee) == -f.fee
    entries = [e for f in facts for e in fill_entries(f)]
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    assert sum_balances(entries) == sum_balances(shuffled)
