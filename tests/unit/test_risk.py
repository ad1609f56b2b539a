"""Pre-trade checks (tradebus.engine.risk): order shape and account limits."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

from tests.support.markets import market
from tradebus.common.ids import AccountId, IntentId
from tradebus.common.messages import PlaceOrder, PositionRisk
from tradebus.engine.accounts import RiskLimits
from tradebus.engine.risk import (
    RiskSnapshot,
    check_limits,
    check_margin_ratio,
    check_order_shape,
    is_closing,
    margin_ratio,
)
from tradebus.engine.risk_state import DAY_NS, RiskState

BTC = market("BTC", "USDT", step="0.00001", min_notional=D(5), min_qty=D("0.00001"))


def place(
    qty: str, price: str | None = "60000", order_type: str = "limit", side: str = "buy"
) -> PlaceOrder:
    return PlaceOrder(
        intent_id=IntentId("i"),
        account=AccountId("a"),
        symbol="BTCUSDT",
        side=side,  # type: ignore[arg-type]
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


def test_an_immediate_or_cancel_order_is_refused_where_it_would_rest() -> None:
    """The paper venue rests every order: ``time_in_force: ioc`` is refused there with a
    clear reason instead of resting as a good-till-cancelled order (issue 18)."""
    ioc = msgspec.structs.replace(place("0.001"), time_in_force="ioc")
    assert check_order_shape(ioc, BTC) is None  # a live venue expires what does not fill
    refusal = check_order_shape(ioc, BTC, immediate_or_cancel=False)
    assert refusal is not None and refusal.reason == "not_supported"
    assert "time_in_force" in refusal.message and "ioc" in refusal.message
    assert check_order_shape(place("0.001"), BTC) is None  # gtc, the default


def snap(
    open_orders: int = 0, last: str | None = None, pnl: str = "0", rate: int = 0
) -> RiskSnapshot:
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
    a, b, p = AccountId("a"), AccountId("b"), AccountId("p")
    state = RiskState()
    day = DAY_NS * 20_000
    state.on_fill(a, BTC, False, ("buy", D("1"), D("100"), D("0.1"), "USDT"), day + 1)
    # a sell beyond what was bought realizes only on the bought part
    pnl = state.on_fill(a, BTC, False, ("sell", D("2"), D("90"), D("0.2"), "USDT"), day + 2)
    assert pnl == D("-10") - D("0.1") - D("0.1")  # loss, opening fee, half the closing fee
    assert state.daily_realized_pnl(a, day + 3) == pnl
    assert state.daily_realized_pnl(a, day + DAY_NS) == 0  # a new UTC day starts at zero
    assert state.daily_realized_pnl(b, day + 3) == 0
    # a buy's fee in the base asset is valued at the fill price, and the account received
    # 1 - 0.001 BTC: that is all a sell can close
    state.on_fill(a, BTC, False, ("buy", D("1"), D("100"), D("0.001"), "BTC"), day + 4)
    pnl = state.on_fill(a, BTC, False, ("sell", D("1"), D("110"), D("0"), "USDT"), day + 5)
    assert pnl == D("0.999") * 10 - D("0.1")
    # perpetual: a sell opens a short, and buying back realizes
    state.on_fill(p, BTC, True, ("sell", D("1"), D("100"), D("0"), "USDT"), day)
    assert state.on_fill(p, BTC, True, ("buy", D("1"), D("120"), D("0"), "USDT"), day) == -20
    for t in (0, 100, 200):
        state.on_place(a, day + t * 1_000_000)
    assert state.orders_last_second(a, day + 900_000_000) == 3
    assert state.orders_last_second(a, day + 1_150_000_000) == 1


# ------------------------------------------------- closing orders and max_open_orders
AT_LIMIT = RiskLimits(max_open_orders=3)


def at_limit(
    perpetual: bool = False, position: str | None = None, same_side_open: str = "0"
) -> RiskSnapshot:
    return RiskSnapshot(
        open_orders=3,
        perpetual=perpetual,
        position=None if position is None else D(position),
        same_side_open=D(same_side_open),
    )


def open_orders_reason(intent: PlaceOrder, now: RiskSnapshot) -> str | None:
    refusal = check_limits(intent, AT_LIMIT, now)
    return refusal.reason if refusal else None


def test_a_spot_sell_passes_the_open_order_limit_and_a_buy_does_not() -> None:
    sell, buy = place("0.01", side="sell"), place("0.01")
    assert is_closing(sell, at_limit()) and not is_closing(buy, at_limit())
    assert open_orders_reason(sell, at_limit()) is None  # a take-profit at the limit
    assert open_orders_reason(buy, at_limit()) == "risk_max_open_orders"
    # the intent's own clamp_to_free flag proves nothing: a clamped buy is still a buy
    clamped = msgspec.structs.replace(buy, clamp_to_free=True)
    assert open_orders_reason(clamped, at_limit()) == "risk_max_open_orders"
    # far over the limit too: the exemption is not a reserve of a few orders
    over = RiskSnapshot(open_orders=1_000)
    assert check_limits(sell, AT_LIMIT, over) is None


def test_a_closing_order_still_meets_every_other_limit() -> None:
    limits = RiskLimits(
        max_open_orders=3, max_order_notional=D(100), max_daily_loss=D(10), max_orders_per_second=2
    )
    sell = place("0.01", side="sell")  # 600 USDT
    refusal = check_limits(sell, limits, at_limit())
    assert refusal is not None and refusal.reason == "risk_max_notional"
    small = place("0.001", side="sell")  # 60 USDT
    assert check_limits(small, limits, at_limit()) is None
    for now, reason in (
        (RiskSnapshot(open_orders=3, daily_realized_pnl=D(-10)), "risk_daily_loss"),
        (RiskSnapshot(open_orders=3, orders_last_second=2), "risk_order_rate"),
    ):
        refusal = check_limits(small, limits, now)
        assert refusal is not None and refusal.reason == reason


@pytest.mark.parametrize(
    ("side", "qty", "position", "same_side_open", "reason"),
    [
        # a long of 0.05: selling part or all of it back closes
        ("sell", "0.01", "0.05", "0", None),
        ("sell", "0.05", "0.05", "0", None),  # exactly flat
        ("sell", "0.06", "0.05", "0", "risk_max_open_orders"),  # would flip to a short
        ("buy", "0.01", "0.05", "0", "risk_max_open_orders"),  # would grow the long
        # other open sells reduce it first: only what they leave may be closed
        ("sell", "0.02", "0.05", "0.03", None),
        ("sell", "0.03", "0.05", "0.03", "risk_max_open_orders"),
        ("sell", "0.01", "0.05", "0.05", "risk_max_open_orders"),
        ("sell", "0.01", "0.05", "0.08", "risk_max_open_orders"),
        # a short: buying back closes, selling grows it
        ("buy", "0.05", "-0.05", "0", None),
        ("buy", "0.06", "-0.05", "0", "risk_max_open_orders"),
        ("sell", "0.01", "-0.05", "0", "risk_max_open_orders"),
        ("buy", "0.03", "-0.05", "0.02", None),
        ("buy", "0.04", "-0.05", "0.02", "risk_max_open_orders"),
        # flat: every order opens
        ("sell", "0.01", "0", "0", "risk_max_open_orders"),
        ("buy", "0.01", "0", "0", "risk_max_open_orders"),
        # a position execution could not see: nothing is closing
        ("sell", "0.01", None, "0", "risk_max_open_orders"),
    ],
)
def test_a_perpetual_order_passes_the_open_order_limit_only_if_it_reduces_the_position(
    side: str, qty: str, position: str | None, same_side_open: str, reason: str | None
) -> None:
    intent = place(qty, side=side)
    now = at_limit(perpetual=True, position=position, same_side_open=same_side_open)
    assert is_closing(intent, now) == (reason is None)
    assert open_orders_reason(intent, now) == reason
    # a market order is judged by its quantity alike
    assert open_orders_reason(place(qty, None, "market", side), now) == reason
    # under the limit nothing is refused
    below = RiskSnapshot(open_orders=2, perpetual=True, position=now.position)
    assert check_limits(intent, AT_LIMIT, below) is None


def test_margin_ratio_is_maintenance_margin_over_equity_and_its_limit_lets_reduce_only_out() -> (
    None
):
    short = PositionRisk(
        symbol="BTC_USDC_PERP",
        settle="USDC",
        qty=D("-0.1"),
        entry_price=D(60000),
        mark_price=D(61000),
        maintenance_margin=D("0.1") * 61000 * D("0.0125"),  # 76.25
    )
    # equity: 1000 - 0.1 * (61000 - 60000) = 900
    assert margin_ratio([short], D(1000)) == D("76.25") / 900
    assert margin_ratio([], D(1000)) is None
    assert margin_ratio([msgspec.structs.replace(short, mark_price=None)], D(1000)) is None
    assert margin_ratio([short], D(100)) == D("Infinity")  # the equity is gone
    limits = RiskLimits(max_margin_ratio=D("0.08"))
    refusal = check_margin_ratio(place("0.001"), limits, D("0.0847"))
    assert refusal is not None and refusal.reason == "risk_margin_ratio"
    assert "0.0847" in refusal.message and "0.08" in refusal.message
    closing = msgspec.structs.replace(place("0.001"), reduce_only=True)
    assert check_margin_ratio(closing, limits, D("0.0847")) is None
    assert check_margin_ratio(place("0.001"), limits, D("0.05")) is None
    assert check_margin_ratio(place("0.001"), RiskLimits(), D("0.9")) is None
