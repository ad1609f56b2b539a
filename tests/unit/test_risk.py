"""Pre-trade checks (tradebus.execution.risk): order shape and account limits."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.support.markets import market
from tradebus.common.messages import PlaceOrder
from tradebus.execution.accounts import RiskLimits
from tradebus.execution.risk import RiskSnapshot, check_limits, check_order_shape
from tradebus.execution.risk_state import DAY_NS, RiskState

BTC = market("BTC", "USDT", step="0.00001", min_notional=D(5), min_qty=D("0.00001"))


def place(qty: str, price: str | None = "60000", order_type: str = "limit") -> PlaceOrder:
    return PlaceOrder(
        intent_id="i",
        account="a",
        symbol="BTCUSDT",
        side="buy",
        qty=D(qty),
        price=None if price is None else D(price),
        order_type=order_type,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("qty", "price", "order_type", "reason"),
    [
        ("0", "60000", "limit", "invalid_quantity"),
        ("-1", "60000", "limit", "invalid_quantity"),
        ("NaN", "60000", "limit", "invalid_quantity"),
        ("Infinity", "60000", "limit", "invalid_quantity"),
        ("1e400", "60000", "limit", "invalid_quantity"),
        ("0.001", "1e20", "limit", "invalid_price"),
        ("0.001", None, "limit", "invalid_price"),
        ("0.001", "0", "limit", "invalid_price"),
        ("0.001", "-5", "limit", "invalid_price"),
        ("0.000001", "60000", "limit", "invalid_precision"),
        ("0.001", "60000.001", "limit", "invalid_precision"),
        ("0.0001", "60000", "limit", None),  # 6 USDT
        ("0.00008", "60000", "limit", "below_min_notional"),  # 4.8 USDT < 5
        ("0.001", None, "market", None),
    ],
)
def test_order_shape(qty: str, price: str | None, order_type: str, reason: str | None) -> None:
    refusal = check_order_shape(place(qty, price, order_type), BTC)
    assert (refusal.reason if refusal else None) == reason


def snap(open_orders: int = 0, last: str | None = None, pnl: str = "0", rate: int = 0):  # type: ignore[no-untyped-def]
    return RiskSnapshot(
        open_orders=open_orders,
        last_price=None if last is None else D(last),
        daily_realized_pnl=D(pnl),
        orders_last_second=rate,
    )


def test_limits() -> None:
    limits = RiskLimits(max_order_notional=D(1000), max_open_orders=2)
    assert check_limits(place("0.01"), limits, snap()) is None  # 600 USDT
    refusal = check_limits(place("0.02"), limits, snap())  # 1200 USDT
    assert refusal is not None and refusal.reason == "risk_max_notional"
    refusal = check_limits(place("0.02", None, "market"), limits, snap(last="60000"))
    assert refusal is not None and refusal.reason == "risk_max_notional"
    refusal = check_limits(place("0.01"), limits, snap(open_orders=2))
    assert refusal is not None and refusal.reason == "risk_max_open_orders"
    assert check_limits(place("1"), RiskLimits(), snap(10_000, None, "-1e9", 10_000)) is None


@pytest.mark.parametrize(
    ("price", "last", "reason"),
    [
        ("60000", "60000", None),
        ("63000", "60000", None),  # exactly 5 % above
        ("63000.1", "60000", "risk_price_band"),  # a fat finger on the buy side
        ("57000", "60000", None),
        ("56999.9", "60000", "risk_price_band"),
        ("6000", "60000", "risk_price_band"),  # a missing zero
        ("60000", None, "risk_no_reference_price"),
        (None, None, None),  # a market order has no limit to compare
    ],
)
def test_price_band(price: str | None, last: str | None, reason: str | None) -> None:
    limits = RiskLimits(price_band_pct=D(5))
    intent = place("0.01", price, "limit" if price is not None else "market")
    refusal = check_limits(intent, limits, snap(last=last))
    assert (refusal.reason if refusal else None) == reason
    if refusal is not None:
        assert refusal.message  # every refusal says why, for people


def test_daily_loss_and_order_rate() -> None:
    limits = RiskLimits(max_daily_loss=D(100), max_orders_per_second=5)
    assert check_limits(place("0.01"), limits, snap(pnl="-99.99", rate=4)) is None
    refusal = check_limits(place("0.01"), limits, snap(pnl="-100"))
    assert refusal is not None and refusal.reason == "risk_daily_loss"
    assert "-100" in refusal.message
    refusal = check_limits(place("0.01"), limits, snap(rate=5))
    assert refusal is not None and refusal.reason == "risk_order_rate"
    assert check_limits(place("0.01"), limits, snap(pnl="250")) is None  # a gain is no loss


def test_risk_state_realized_pnl_by_utc_day_and_order_rate() -> None:
    state = RiskState()
    day = DAY_NS * 20_000
    state.on_fill("a", BTC, False, ("buy", D("1"), D("100"), D("0.1"), "USDT"), day + 1)
    # a sell beyond what was bought realizes only on the bought part
    pnl = state.on_fill("a", BTC, False, ("sell", D("2"), D("90"), D("0.2"), "USDT"), day + 2)
    assert pnl == D("-10") - D("0.1") - D("0.1")  # loss, opening fee, half the closing fee
    assert state.daily_realized_pnl("a", day + 3) == pnl
    assert state.daily_realized_pnl("a", day + DAY_NS) == 0  # a new UTC day starts at zero
    assert state.daily_realized_pnl("b", day + 3) == 0
    # a fee in the base asset is valued at the fill price
    state.on_fill("a", BTC, False, ("buy", D("1"), D("100"), D("0.001"), "BTC"), day + 4)
    pnl = state.on_fill("a", BTC, False, ("sell", D("1"), D("110"), D("0"), "USDT"), day + 5)
    assert pnl == D("10") - D("0.1")
    # perpetual: a sell opens a short, and buying back realizes
    state.on_fill("p", BTC, True, ("sell", D("1"), D("100"), D("0"), "USDT"), day)
    assert state.on_fill("p", BTC, True, ("buy", D("1"), D("120"), D("0"), "USDT"), day) == -20
    for t in (0, 100, 200):
        state.on_place("a", day + t * 1_000_000)
    assert state.orders_last_second("a", day + 900_000_000) == 3
    assert state.orders_last_second("a", day + 1_150_000_000) == 1
