"""Average-cost position and P&L (tradebus.common.positions), by hand and by property."""

from __future__ import annotations

import random
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.common.ids import cycle_of
from tradebus.common.markets import Market
from tradebus.common.positions import CycleBook, Position, position_change

ETH_SPOT = Market(
    symbol="ETH_USDC", base="ETH", quote="USDC", tick_size=D("0.01"), step_size=D("0.0001")
)
ETH_PERP = Market(
    symbol="ETH_USDC_PERP",
    base="ETH",
    quote="USDC",
    tick_size=D("0.01"),
    step_size=D("0.0001"),
    kind="perpetual",
)


def test_average_price_and_fees_of_an_open_position() -> None:
    p = Position()
    p.apply("buy", D(1), D(100), D("0.1"))
    p.apply("buy", D(1), D(110), D("0.1"))
    assert (p.qty, p.avg_price, p.open_fees) == (D(2), D(105), D("0.2"))
    assert p.unrealized_pnl(D(120)) == D(2) * 120 - 210 - D("0.2")


def test_round_trip_realizes_proceeds_minus_cost_minus_all_fees() -> None:
    p = Position()
    p.apply("buy", D(1), D(100), D("0.1"))
    p.apply("buy", D(1), D(110), D("0.1"))
    p.apply("sell", D(2), D(120), D("0.24"))
    assert p.qty == 0 and p.avg_price is None
    assert p.realized_pnl == D(240) - D(210) - D("0.44")
    assert p.fees == D("0.44")


def test_partial_close_realizes_its_share_of_the_opening_fees() -> None:
    p = Position()
    p.apply("buy", D(2), D(100), D("0.2"))
    p.apply("sell", D(1), D(110), D("0.05"))
    assert p.realized_pnl == D(10) - D("0.05") - D("0.1")
    assert (p.qty, p.avg_price, p.open_fees) == (D(1), D(100), D("0.1"))


def test_a_spot_buy_charged_in_the_base_asset_holds_what_the_account_received() -> None:
    # Backpack: a Bid fill of 0.1 ETH at 2000 with fee 0.0001 ETH delivers 0.0999 ETH
    p = Position()
    fee = p.apply_fill("buy", D("0.1"), D(2000), D("0.0001"), "ETH", ETH_SPOT)
    assert fee == D("0.2")  # in USDC, at the fill price
    assert (p.qty, p.avg_price, p.fees) == (D("0.0999"), D(2000), D("0.2"))
    # selling all of it at 2100 (fee in USDC) realizes proceeds - what was paid - fees
    p.apply_fill("sell", D("0.0999"), D(2100), D("0.1"), "USDC", ETH_SPOT)
    assert p.qty == 0
    assert p.realized_pnl == D("0.0999") * 2100 - D("0.1") * 2000 - D("0.1")


def test_base_fees_move_contracts_only_on_spot_and_other_assets_count_nothing() -> None:
    assert position_change("buy", D(1), D(2000), D("0.001"), "ETH", ETH_PERP) == (D(1), D(2))
    assert position_change("sell", D(1), D(2000), D("0.001"), "ETH", ETH_SPOT) == (
        D("1.001"),
        D(2),
    )
    assert position_change("buy", D(1), D(2000), D("0.3"), "USDC", ETH_SPOT) == (D(1), D("0.3"))
    assert position_change("buy", D(1), D(2000), D("0.01"), "BNB", ETH_SPOT) == (D(1), None)
    assert position_change("buy", D(1), D(2000), D("0.01"), "ETH", None) == (D(1), None)


def test_a_fill_through_zero_opens_the_other_side_at_its_price() -> None:
    p = Position()
    p.apply("buy", D(1), D(100), D(0))
    p.apply("sell", D(3), D(90), D("0.3"))
    assert p.realized_pnl == D(-10) - D("0.1")  # one third of the fee closes the long
    assert (p.qty, p.avg_price, p.open_fees) == (D(-2), D(90), D("0.2"))
    assert p.unrealized_pnl(D(80)) == D(20) - D("0.2")  # a short gains when the price falls


fills = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.decimals(min_value=D("0.001"), max_value=D(10), places=3),
        st.decimals(min_value=D(1), max_value=D(1000), places=2),
    ),
    min_size=1,
    max_size=40,
)


@given(fills=fills, seed=st.randoms())
@settings(max_examples=200)
def test_shuffled_fills_give_the_same_position(fills: list, seed: random.Random) -> None:
    a, b = Position(), Position()
    for side, qty, price in fills:
        a.apply(side, qty, price, D(0))
    shuffled = list(fills)
    seed.shuffle(shuffled)
    for side, qty, price in shuffled:
        b.apply(side, qty, price, D(0))
    assert a.qty == b.qty
    assert a.bought_qty == b.bought_qty and a.sold_notional == b.sold_notional


@given(
    buys=st.lists(
        st.tuples(
            st.decimals(min_value=D("0.001"), max_value=D(10), places=3),
            st.decimals(min_value=D(1), max_value=D(1000), places=2),
        ),
        min_size=1,
        max_size=20,
    ),
    exit_price=st.decimals(min_value=D(1), max_value=D(1000), places=2),
)
@settings(max_examples=200)
def test_average_within_range_and_cycle_pnl_identity(buys: list, exit_price: D) -> None:
    p = Position()
    fee = D("0.01")
    for qty, price in buys:
        p.apply("buy", qty, price, fee)
    prices = [price for _, price in buys]
    assert p.avg_price is not None and min(prices) <= p.avg_price <= max(prices)
    qty = p.qty
    p.apply("sell", qty, exit_price, fee)
    cost = sum(q * price for q, price in buys)
    assert p.qty == 0
    assert p.realized_pnl == qty * exit_price - cost - fee * (len(buys) + 1)


def test_cycle_of_an_intent_id() -> None:
    assert cycle_of("alice-volume:1.12:s2") == "alice-volume:1.12"
    assert cycle_of("a:b:3.4:b0") == "a:b:3.4"  # a bot id may hold a colon
    for other in ("manual-1", "alice:x.1:b", "alice:1.1", ":1.1:b", "alice:1.1:", "a:1.²:b"):
        assert cycle_of(other) == ""


def test_a_cycle_book_closes_each_cycle_against_its_own_cost() -> None:
    """Rule 6: two overlapping cycles, each realizing proceeds - cost - its fees exactly."""
    book = CycleBook()
    book.apply("b:1.1", "buy", D(1), D(100), D("0.1"))
    book.apply("b:1.2", "buy", D(1), D(110), D("0.1"))
    t = book.total
    assert (t.qty, t.avg_price, t.open_fees, t.bought_notional) == (D(2), D(105), D("0.2"), D(210))
    book.apply("b:1.1", "sell", D(1), D(101), D("0.1"))  # closes cycle 1 only
    assert (t.realized_pnl, t.qty, t.avg_price, t.open_fees) == (D("0.8"), D(1), D(110), D("0.1"))
    assert t.unrealized_pnl(D(111)) == D("0.9")
    assert list(book.cycles) == ["b:1.2"]
    book.apply("b:1.2", "sell", D(1), D(108), D("0.1"))
    assert (t.realized_pnl, t.qty, t.open_cost, t.fees, book.cycles) == (
        D("-1.4"),
        D(0),
        D(0),
        D("0.4"),
        {},
    )
    average = Position()  # the average cost the volume bot used to book
    for side, qty, price in (("buy", 1, 100), ("buy", 1, 110), ("sell", 1, 101)):
        average.apply(side, D(qty), D(price), D("0.1"))  # type: ignore[arg-type]
    assert average.realized_pnl == D("-4.2")


def test_a_cycle_book_writes_off_within_its_cycle() -> None:
    book = CycleBook()
    book.apply_fill("b:1.1", "buy", D(2), D(100), D("0.002"), "ETH", ETH_SPOT)  # fee in base
    assert (book.held("b:1.1"), book.total.open_fees) == (D("1.998"), D("0.200"))
    book.write_off("b:1.1", D("0.998"))
    assert (book.held("b:1.1"), book.total.written_off_qty) == (D(1), D("0.998"))
    try:
        book.write_off("b:1.9", D(1))
    except ValueError as e:
        assert "b:1.9" in str(e)
    else:
        raise AssertionError("a cycle that holds nothing cannot write off")


@given(
    st.lists(
        st.tuples(
            st.integers(1, 4),
            st.decimals(min_value=D("0.001"), max_value=D(5), places=3),
            st.decimals(min_value=D(1), max_value=D(1000), places=2),
        ),
        max_size=30,
    )
)
@settings(max_examples=100, deadline=None)
def test_a_cycle_book_keeps_the_same_cash_as_one_position(
    buys: list[tuple[int, D, D]],
) -> None:
    """Per cycle or on average cost, realized + unrealized P&L is the same money: only
    its split differs. Every cycle sold in full realizes its own proceeds - cost - fees."""
    book, average, price = CycleBook(), Position(), D(500)
    for cycle, qty, p in buys:
        book.apply(f"b:1.{cycle}", "buy", qty, p, D("0.01"))
        average.apply("buy", qty, p, D("0.01"))
    for key in sorted(book.cycles):
        held = book.held(key)
        book.apply(key, "sell", held, price, D("0.02"))
        average.apply("sell", held, price, D("0.02"))
    assert book.total.qty == average.qty == 0 and book.cycles == {}
    assert abs(book.total.realized_pnl - average.realized_pnl) < D("1E-18")  # rounding only
    per_cycle: dict[int, tuple[D, D]] = {}
    for cycle, qty, p in buys:
        q, c = per_cycle.get(cycle, (D(0), D(0)))
        per_cycle[cycle] = (q + qty, c + qty * p)
    expected = sum(
        (q * price - c - D("0.01") * n - D("0.02"))
        for cycle, (q, c) in per_cycle.items()
        for n in [sum(1 for b in buys if b[0] == cycle)]
    )
    assert book.total.realized_pnl == expected


def test_a_sell_beyond_its_cycle_closes_the_other_open_cycles_oldest_first() -> None:
    """A late buy fill of cycle 1 after cycle 2 opened: cycle 2's sell of everything
    closes its own base, then cycle 1's, so no cycle stays open against another."""
    book = CycleBook()
    book.apply("b:1.2", "buy", D(1), D(100), D("0.1"))
    book.apply("b:1.1", "buy", D("0.5"), D(90), D("0.05"))  # late fill of cycle 1
    book.apply("b:1.2", "sell", D("1.5"), D(110), D("0.3"))
    # cycle 2: 110 - 100 - 0.1 - 0.2 = 9.7; cycle 1: 55 - 45 - 0.05 - 0.1 = 9.85
    assert (book.total.realized_pnl, book.total.qty, book.total.open_cost) == (
        D("19.55"),
        0,
        0,
    )
    assert book.cycles == {} and book.total.fees == D("0.45")
    book.apply("b:1.3", "sell", D(1), D(100), D(0))  # nothing open: it opens a short
    assert (book.held("b:1.3"), book.total.qty, book.total.avg_price) == (D(-1), D(-1), D(100))
