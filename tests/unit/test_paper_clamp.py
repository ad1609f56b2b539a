"""``PlaceOrder.clamp_to_free``: a spot sell sized by the paper venue's free base balance
(tradebus.engine.sizing), hand-computed."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.support.markets import BTCUSDT as MARKET
from tests.support.sim import paper_exchange
from tests.support.ticks import trade
from tradebus.common.ids import AccountId, IntentId
from tradebus.common.messages import PlaceOrder
from tradebus.engine.risk import Refusal
from tradebus.engine.sizing import clamp_to_free, is_same_size, wants_free_balance
from tradebus.engine.venue import VenueOrder


def intent(qty: str, side: str = "sell", clamp: bool = True) -> PlaceOrder:
    return PlaceOrder(
        intent_id=IntentId("bot:1:tp"),
        account=AccountId("a"),
        symbol="BTCUSDT",
        side=side,  # type: ignore[arg-type]
        qty=D(qty),
        price=D("60000"),
        clamp_to_free=clamp,
    )


def free_btc(btc: str, resting_sell: str | None = None) -> D:
    """Free BTC of a paper account holding ``btc`` with a resting sell of ``resting_sell``."""
    ex = paper_exchange([MARKET], {"BTC": D(btc)}, "a")
    ex.on_trade(trade("60000", 1))
    if resting_sell is not None:
        ex.place(
            AccountId("a"),
            VenueOrder(
                client_order_id="1",
                intent_id=IntentId("other"),
                symbol="BTCUSDT",
                side="sell",
                order_type="limit",
                price=D("70000"),
                qty=D(resting_sell),
                trigger_ts=None,
            ),
        )
    (btc_balance,) = [b for b in ex.balances(AccountId("a")) if b.asset == "BTC"]
    return btc_balance.free


def test_a_sell_for_more_than_is_free_is_clamped_to_the_free_balance() -> None:
    free = free_btc("0.5", resting_sell="0.2")  # 0.2 locked by the resting sell
    assert free == D("0.3")
    sized = clamp_to_free(intent("0.5"), MARKET, free)
    assert isinstance(sized, PlaceOrder)
    assert sized.qty == D("0.3") and sized.intent_id == "bot:1:tp" and sized.price == D(60000)


def test_the_clamped_quantity_is_floored_to_the_step() -> None:
    sized = clamp_to_free(intent("1"), MARKET, D("0.123456789"))
    assert isinstance(sized, PlaceOrder) and sized.qty == D("0.12345")


def test_a_sell_the_free_balance_covers_is_left_alone() -> None:
    order = intent("0.3")
    assert clamp_to_free(order, MARKET, free_btc("0.5", resting_sell="0.2")) is order
    assert clamp_to_free(order, MARKET, D("0.4")) is order


@pytest.mark.parametrize("free", ["0", "0.000009", "-0.1"])
def test_less_than_one_step_free_is_refused_naming_the_free_balance(free: str) -> None:
    refusal = clamp_to_free(intent("0.5"), MARKET, D(free))
    assert isinstance(refusal, Refusal)
    assert refusal.reason == "insufficient_balance"
    assert f"free BTC balance is {free}" in refusal.message


def test_everything_locked_by_resting_sells_is_not_free() -> None:
    refusal = clamp_to_free(intent("0.5"), MARKET, free_btc("0.2", resting_sell="0.2"))
    assert isinstance(refusal, Refusal) and refusal.reason == "insufficient_balance"


def test_buys_perpetuals_and_unflagged_sells_are_not_clamped() -> None:
    assert wants_free_balance(intent("1"), perpetual=False)
    assert not wants_free_balance(intent("1", side="buy"), perpetual=False)
    assert not wants_free_balance(intent("1"), perpetual=True)
    assert not wants_free_balance(intent("1", clamp=False), perpetual=False)


def test_a_redelivered_clamped_intent_matches_its_smaller_order_row() -> None:
    assert is_same_size(intent("0.5"), D("0.5"))
    assert is_same_size(intent("0.5"), D("0.3"))
    assert not is_same_size(intent("0.5"), D("0.6"))
    assert not is_same_size(intent("0.5", clamp=False), D("0.3"))
    assert not is_same_size(intent("0.5", side="buy"), D("0.3"))
