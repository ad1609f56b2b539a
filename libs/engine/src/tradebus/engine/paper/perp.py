"""Perpetual funds of the paper venue: margin locks of orders, settlement of fills.

The arithmetic is :mod:`tradebus.engine.perp`'s; this module applies it
to the paper venue's state (:mod:`tradebus.engine.paper.state`). All
locks are in the market's quote asset.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from tradebus.common.markets import Market
from tradebus.common.messages import Side
from tradebus.common.money import ZERO
from tradebus.engine import perp
from tradebus.engine.paper.state import PaperAccount, PaperOrder
from tradebus.engine.perp import PerpPosition, notional_quantum
from tradebus.engine.venue import VenueOrder


def order_lock(
    acct: PaperAccount, market: Market, side: Side, qty: Decimal, price: Decimal, claimed: Decimal
) -> Decimal:
    """Quote a perpetual order of ``qty`` at ``price`` locks now (:func:`perp.order_lock`).

    ``claimed`` is the quantity of the account's resting orders on the same
    side and symbol placed before it.
    """
    position = acct.positions.get(market.symbol)
    return perp.order_lock(
        ZERO if position is None else position.qty,
        side,
        qty,
        claimed,
        price,
        acct.leverage,
        acct.lock_fee_bps,
        notional_quantum(market),
    )


def new_order_lock(
    acct: PaperAccount,
    market: Market,
    order: VenueOrder,
    price: Decimal,
    resting: Iterable[PaperOrder],
) -> Decimal:
    """Quote a new perpetual ``order`` would lock at ``price`` behind the ``resting`` orders.

    ``resting`` are the account's resting orders on ``market``: those on the
    order's side claim the reducible part of the position before it.
    """
    claimed = sum((o.qty for o in resting if o.side == order.side), ZERO)
    return order_lock(acct, market, order.side, order.qty, price, claimed)


def relock(acct: PaperAccount, market: Market, resting: Iterable[PaperOrder]) -> None:
    """Re-margin the account's ``resting`` orders on ``market`` (in placement order).

    Called after the position or the resting orders changed: a fill that
    reduced the position can turn a later reducing order into one that grows
    it (:func:`perp.increasing_qty`). The quote balance's ``locked`` follows.
    """
    quote = acct.balance(market.quote)
    claimed: dict[str, Decimal] = {"buy": ZERO, "sell": ZERO}
    for o in resting:
        assert o.perpetual and o.lock_price is not None
        lock = order_lock(acct, market, o.side, o.qty, o.lock_price, claimed[o.side])  # type: ignore[arg-type]
        claimed[o.side] += o.qty
        quote.locked += lock - o.locked
        o.locked = lock


def settle_fill(
    acct: PaperAccount, order: PaperOrder, price: Decimal, fee: Decimal, market: Market
) -> Decimal:
    """Settle a perpetual fill of ``order`` at ``price`` with ``fee`` (quote).

    Releases the order's margin, moves the position, books realized P&L minus
    the fee in the quote balance and locks the position's new margin.
    Returns the realized P&L (quote, fees excluded).
    """
    quote = acct.balance(market.quote)
    position = acct.positions.setdefault(order.symbol, PerpPosition())
    quantum = notional_quantum(market)
    quote.locked -= order.locked
    realized = perp.apply_fill(position, order.side, order.qty, price, quantum)  # type: ignore[arg-type]
    quote.total += realized - fee
    margin = perp.position_margin(position, acct.leverage, quantum)
    quote.locked += margin - position.margin
    position.margin = margin
    return realized
