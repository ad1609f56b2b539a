"""Sizing a place intent before it is persisted: ``PlaceOrder.clamp_to_free`` (pure).

Source: seed 001's real-position check and STRATEGIES.md §1 ("before
selling, the position is min(bot position, account's free base balance)"):
a bot whose position was partly sold by hand sells what is really there.

A spot sell with ``clamp_to_free`` is placed for at most the account's free
base balance (``total - locked``, as the venue reports it), floored to the
market's step size. The order row, :class:`OrderAccepted` and the venue all
carry the placed quantity. If it floors to zero the intent is refused with
``insufficient_balance``. Buys and perpetual markets ignore the flag (a
perpetual sell needs no base asset). The engine reads the free balance and
places the order under its lock, so no other order of the account (or fill)
can move the balance in between.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.markets import Market
from tradebus.common.messages import PlaceOrder
from tradebus.common.money import ZERO, floor_to
from tradebus.engine.risk import Refusal


def wants_free_balance(intent: PlaceOrder, perpetual: bool) -> bool:
    """True if ``intent`` is sized by the free base balance (a spot sell with the flag)."""
    return intent.clamp_to_free and intent.side == "sell" and not perpetual


def clamp_to_free(intent: PlaceOrder, market: Market, free: Decimal) -> PlaceOrder | Refusal:
    """``intent`` with ``qty = min(qty, floor_step(free))``, or a refusal if that is zero.

    Parameters
    ----------
    intent
        A sell whose ``qty`` (base units) is already on the step size.
    market
        Its market (``step_size``, ``base``).
    free
        The account's free base balance (``total - locked``), base units.

    Returns
    -------
    PlaceOrder | Refusal
        ``intent`` itself when the free balance covers it, a copy with the
        smaller quantity otherwise, or ``insufficient_balance`` naming the
        free balance when less than one step is free.
    """
    placeable = floor_to(max(free, ZERO), market.step_size)
    if placeable >= intent.qty:
        return intent
    if placeable <= 0:
        return Refusal(
            "insufficient_balance",
            f"clamp_to_free: free {market.base} balance is {free}, less than one step"
            f" ({market.step_size}); nothing to sell",
        )
    return msgspec.structs.replace(intent, qty=placeable)


def is_same_size(intent: PlaceOrder, placed_qty: Decimal) -> bool:
    """Whether an order row of ``placed_qty`` may have come from ``intent`` (redeliveries).

    Equal quantities always; a smaller one when the intent asked to clamp a sell.
    """
    if placed_qty == intent.qty:
        return True
    return intent.clamp_to_free and intent.side == "sell" and 0 < placed_qty < intent.qty
