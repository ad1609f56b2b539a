"""Pre-trade checks (tradebus.execution.risk): order shape and account limits."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.support.markets import market
from tradebus.common.messages import PlaceOrder
from tradebus.execution.accounts import RiskLimits
from tradebus.execution.risk import check_limits, check_order_shape

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


def test_limits() -> None:
    limits = RiskLimits(max_order_notional=D(1000), max_open_orders=2)
    assert check_limits(place("0.01"), limits, 0, None) is None  # 600 USDT
    refusal = check_limits(place("0.02"), limits, 0, None)  # 1200 USDT
    assert refusal is not None and refusal.reason == "risk_max_notional"
    refusal = check_limits(place("0.02", None, "market"), limits, 0, D(60000))
    assert refusal is not None and refusal.reason == "risk_max_notional"
    refusal = check_limits(place("0.01"), limits, 2, None)
    assert refusal is not None and refusal.reason == "risk_max_open_orders"
    assert check_limits(place("1"), RiskLimits(), 10_000, None) is None
