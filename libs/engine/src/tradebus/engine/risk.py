"""Pure pre-trade checks: is this order well formed for its market, and within limits?

Each check returns a :class:`Refusal` (machine-readable ``reason`` plus a
message for people) or None. Order of checks: shape (positive, finite, on
the market's increments, above its minimums), then the account's limits
(:func:`check_limits`, per account, all optional):

==========================  ===========================  ==============================
limit                       refusal ``reason``           refused when
==========================  ===========================  ==============================
``max_order_notional``      ``risk_max_notional``        price (or last price) x qty > it
``max_open_orders``         ``risk_max_open_orders``     open orders >= it, unless closing
``price_band_pct``          ``risk_price_band``          |limit / last trade - 1| x 100 > it
                            ``risk_no_reference_price``  no last trade price to compare with
``max_daily_loss``          ``risk_daily_loss``          today's (UTC) realized P&L <= -it
``max_orders_per_second``   ``risk_order_rate``          orders placed in the last second >= it
group ``total_capital``     ``group_capital``            a group's buy: committed + notional > it
==========================  ===========================  ==============================

The last is a strategy group's cap, not the account's (:mod:`tradebus.engine.group_capital`,
:func:`check_group_capital`).

The state they need (open orders, last trade price, the day's realized P&L,
recent placements, the position the order would reduce) is given by the
caller as a :class:`RiskSnapshot` (:mod:`tradebus.engine.risk_state`
keeps most of it; :mod:`tradebus.engine.vetting` reads the position from
the venue), so the checks stay pure.

**Closing orders are exempt from** ``max_open_orders`` (issue 14: a user's
manual orders at the limit must not block a bot's take-profit or stop-loss
and leave its position open). Execution decides what closes, never a flag of
the intent (:func:`is_closing`):

* spot: every sell. It can only sell base the account holds (the venue locks
  it at placement, or refuses the order), so it can never add exposure; how
  many such sells can be open is bounded by the holdings over the market's
  step size and minimums;
* perpetual: an order on the side opposite to the account's position in that
  symbol whose quantity is at most the position less the quantity of the
  account's open orders on the same side and symbol (those reduce it first,
  as the venue's margin counts them: :func:`~tradebus.engine.perp.increasing_qty`),
  so that even if every such order fills, the position only shrinks towards
  flat; it can never flip or grow it. On a venue that does not show
  execution its resting orders (only the paper venue does), no perpetual
  order is closing.

Every other limit applies to closing orders as to any other.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.markets import Market
from tradebus.common.messages import PlaceOrder, PositionRisk
from tradebus.common.money import ZERO, is_positive_finite
from tradebus.engine.accounts import RiskLimits
from tradebus.engine.perp import increasing_qty

MAX_MAGNITUDE = 15
"""Quantities and prices of 10**15 or more are refused outright (no market trades them)."""


class Refusal(msgspec.Struct, frozen=True):
    """Why an intent is refused: ``reason`` (code) and ``message`` (for people)."""

    reason: str
    message: str


def check_order_shape(
    intent: PlaceOrder, market: Market, *, immediate_or_cancel: bool = True
) -> Refusal | None:
    """Check the time in force (an ``ioc`` order on a venue that cannot expire it,
    ``immediate_or_cancel`` False, is refused as ``not_supported`` rather than left
    resting), then qty and price: positive, finite, on the market's increments, above
    its minimums."""
    if intent.time_in_force != "gtc" and not immediate_or_cancel:
        return Refusal(
            "not_supported",
            f"time_in_force {intent.time_in_force!r} is not supported on this venue: its"
            " orders rest until filled or canceled (gtc); send a limit order and cancel it"
            " instead",
        )
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


class RiskSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What the limits of one account are checked against, now.

    ``last_price`` is the market's last trade price (quote per base; None
    if none seen yet), ``daily_realized_pnl`` the account's realized P&L
    since 00:00 UTC in the quote asset (negative is a loss), ``orders_last_second``
    the orders placed in the last second.

    What :func:`is_closing` needs: ``perpetual`` (the account trades the
    order's market as a perpetual); for a perpetual order, ``position`` (the
    account's signed position in the order's symbol, base units; None when
    not known) and ``same_side_open`` (base quantity of the account's open
    orders on that symbol and on the order's side).
    """

    open_orders: int = 0
    last_price: Decimal | None = None
    daily_realized_pnl: Decimal = Decimal(0)
    orders_last_second: int = 0
    perpetual: bool = False
    position: Decimal | None = None
    same_side_open: Decimal = ZERO


def is_closing(intent: PlaceOrder, now: RiskSnapshot) -> bool:
    """True if ``intent`` can only reduce the account's exposure (module docstring).

    Spot: a sell. Perpetual: opposite to ``now.position`` and at most
    ``|position| - same_side_open``; False when the position is unknown.
    """
    if not now.perpetual:
        return intent.side == "sell"
    if now.position is None:
        return False
    return increasing_qty(now.position, intent.side, intent.qty, now.same_side_open) == 0


def check_limits(intent: PlaceOrder, limits: RiskLimits, now: RiskSnapshot) -> Refusal | None:
    """The account's limits (module docstring), first refusal wins; None if within all."""
    price = intent.price if intent.price is not None else now.last_price
    cap = limits.max_order_notional
    if cap is not None and price is not None and price * intent.qty > cap:
        return Refusal(
            "risk_max_notional", f"order notional {price * intent.qty} exceeds the limit {cap}"
        )
    most = limits.max_open_orders
    if most is not None and now.open_orders >= most and not is_closing(intent, now):
        return Refusal(
            "risk_max_open_orders",
            f"{now.open_orders} open orders, the limit is {most}"
            " (only an order that reduces a position may exceed it)",
        )
    band = limits.price_band_pct
    if band is not None and intent.price is not None:
        if now.last_price is None:
            return Refusal(
                "risk_no_reference_price",
                f"no last trade price of {intent.symbol} yet to check the {band}% price band",
            )
        off = abs(intent.price / now.last_price - 1) * 100
        if off > band:
            return Refusal(
                "risk_price_band",
                f"limit {intent.price} is {off.quantize(Decimal('0.01'))}% from the last trade"
                f" {now.last_price}; the band is {band}%",
            )
    loss = limits.max_daily_loss
    if loss is not None and now.daily_realized_pnl <= -loss:
        return Refusal(
            "risk_daily_loss",
            f"realized P&L today is {now.daily_realized_pnl}; the daily loss limit is {loss}",
        )
    rate = limits.max_orders_per_second
    if rate is not None and now.orders_last_second >= rate:
        return Refusal(
            "risk_order_rate",
            f"{now.orders_last_second} orders in the last second, the limit is {rate}",
        )
    return None


def margin_ratio(positions: list[PositionRisk], settle_balance: Decimal) -> Decimal | None:
    """The account's margin ratio: the positions' maintenance margin over its equity,
    ``settle_balance + sum(qty * (mark - entry))`` (Binance USD-M's "margin ratio =
    maintenance margin / margin balance"; the venue liquidates at 1). None without a
    position, or when a position lacks its mark, entry or maintenance margin; a
    non-positive equity is ``Decimal("Infinity")``."""
    if not positions:
        return None
    needed, unrealized = ZERO, ZERO
    for p in positions:
        if p.maintenance_margin is None or p.mark_price is None or p.entry_price is None:
            return None
        needed += p.maintenance_margin
        unrealized += p.qty * (p.mark_price - p.entry_price)
    equity = settle_balance + unrealized
    return needed / equity if equity > 0 else Decimal("Infinity")


def check_margin_ratio(
    intent: PlaceOrder, limits: RiskLimits, ratio: Decimal | None
) -> Refusal | None:
    """``max_margin_ratio``: refuse an order that is not reduce-only once the account's last
    measured ``ratio`` reached the limit."""
    most = limits.max_margin_ratio
    if most is None or ratio is None or ratio < most or intent.reduce_only:
        return None
    return Refusal(
        "risk_margin_ratio",
        f"the account's margin ratio is {ratio.quantize(Decimal('0.0001'))}, the limit is"
        f" {most}: only reduce-only orders go out until it is lower",
    )


def check_group_capital(
    intent: PlaceOrder,
    group: str,
    total_capital: Decimal,
    committed: Decimal,
    last_price: Decimal | None,
) -> Refusal | None:
    """A strategy group's shared cap (docs/strategies.md, "Group capital cap"): refuse a
    buy of one of its bots when ``committed + price x qty > total_capital``, ``price`` the
    limit (a market order: ``last_price``; refused when there is none to value it).
    ``committed`` is what the group's bots commit now (quote,
    :func:`tradebus.engine.group_capital.committed_quote`). Sells pass."""
    if intent.side != "buy":
        return None
    price = intent.price if intent.price is not None else last_price
    if price is None:
        return Refusal(
            "group_capital",
            f"no last trade price of {intent.symbol} to value a market buy against group"
            f" {group}'s total_capital {total_capital}",
        )
    notional = price * intent.qty
    if committed + notional > total_capital:
        return Refusal(
            "group_capital",
            f"group {group} commits {committed} of its total_capital {total_capital};"
            f" this buy of {notional} would take it to {committed + notional}",
        )
    return None
