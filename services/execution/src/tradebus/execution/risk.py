"""Pure pre-trade checks: is this order well formed for its market, and within limits?

Each check returns a :class:`Refusal` (machine-readable ``reason`` plus a
message for people) or None. Order of checks: shape (positive, finite, on
the market's increments, above its minimums), then the account's limits.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.markets import Market
from tradebus.common.messages import PlaceOrder
from tradebus.common.money import is_positive_finite
from tradebus.execution.accounts import RiskLimits

MAX_MAGNITUDE = 15
"""Quantities and prices of 10**15 or more are refused outright (no market trades them)."""


class Refusal(msgspec.Struct, frozen=True):
    """Why an intent is refused: ``reason`` (code) and ``message`` (for people)."""

    reason: str
    message: str


def check_order_shape(intent: PlaceOrder, market: Market) -> Refusal | None:
    """Check qty and price: positive, finite, on the market's increments, above its minimums."""
    if not is_positive_finite(intent.qty):
        return Refusal(
            "invalid_quantity", f"qty must be a positive finite number, got {intent.qty}"
        )
    if intent.order_type == "limit" and intent.price is None:
        return Refusal("invalid_price", "a limit order needs a price")
    if intent.price is not None and not is_positive_finite(intent.price):
        return Refusal(
            "invalid_price", f"price must be a positive finite number, got {intent.price}"
        )
    too_large = intent.qty.adjusted() >= MAX_MAGNITUDE
    if too_large or (intent.price is not None and intent.price.adjusted() >= MAX_MAGNITUDE):
        what = "qty" if too_large else "price"
        return Refusal(
            f"invalid_{'quantity' if too_large else 'price'}", f"{what} is absurdly large"
        )
    if intent.qty % market.step_size != 0:
        return Refusal(
            "invalid_precision", f"qty {intent.qty} is not a multiple of step {market.step_size}"
        )
    if intent.price is not None and intent.price % market.tick_size != 0:
        return Refusal(
            "invalid_precision",
            f"price {intent.price} is not a multiple of tick {market.tick_size}",
        )
    if intent.qty < market.min_qty:
        return Refusal("below_min_qty", f"qty {intent.qty} < minimum {market.min_qty}")
    if intent.price is not None and intent.price * intent.qty < market.min_notional:
        return Refusal(
            "below_min_notional",
            f"notional {intent.price * intent.qty} < minimum {market.min_notional} {market.quote}",
        )
    return None


def check_limits(
    intent: PlaceOrder,
    limits: RiskLimits,
    open_orders: int,
    last_price: Decimal | None,
) -> Refusal | None:
    """The account's limits: order notional (at its price, or the last price) and open orders."""
    price = intent.price if intent.price is not None else last_price
    cap = limits.max_order_notional
    if cap is not None and price is not None and price * intent.qty > cap:
        return Refusal(
            "risk_max_notional", f"order notional {price * intent.qty} exceeds the limit {cap}"
        )
    if limits.max_open_orders is not None and open_orders >= limits.max_open_orders:
        return Refusal(
            "risk_max_open_orders",
            f"{open_orders} open orders, the limit is {limits.max_open_orders}",
        )
    return None
