"""Journal entries of fills and the sums that make balances (tradebus.ledger.entries)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.ledger.entries import FillFacts, deposit_entries, fill_entries, sum_balances


def fact(side: str, qty: str, price: str, fee: str, ref: str = "paper:1") -> FillFacts:
    return FillFacts(
        account="a",
        base="BTC",
        quote="USDT",
        side=side,
        price=D(price),
        qty=D(qty),  # type: ignore[arg-type]
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
    entries = deposit_entries("a", {"USDT": D(100000), "BTC": D(0)}, "initial")
    entries += fill_entries(fact("buy", "0.5", "60000", "1.5", "paper:1"))
    entries += fill_entries(fact("sell", "0.2", "61000", "0.61", "paper:2"))
    assert sum_balances(entries) == {
        ("a", "USDT"): D(100000) - 30000 - D("1.5") + 12200 - D("0.61"),
        ("a", "BTC"): D("0.3"),
    }


side = st.sampled_from(["buy", "sell"])
amount = st.decimals(min_value=D("0.00001"), max_value=D(100), places=5)
price = st.decimals(min_value=D("0.01"), max_value=D(100000), places=2)


@given(st.lists(st.tuples(side, amount, price, amount), max_size=30), st.randoms())
@settings(max_examples=200)
def test_entries_conserve_value_and_order_does_not_matter(fills: list, rnd) -> None:  # type: ignore[no-untyped-def]
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
