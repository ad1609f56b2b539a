"""Average-cost position and P&L (tradebus.common.positions), by hand and by property."""

from __future__ import annotations

import random
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from tradebus.common.markets import Market
from tradebus.common.positions import Position, position_change

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
