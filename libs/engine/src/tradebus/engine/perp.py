"""Perpetual positions of the paper venue (pure arithmetic): position, realized P&L, margin.

The model is a linear, quote-margined perpetual in one-way mode, as Binance
USD-M futures and Bybit linear contracts run it, on the same price feed as
the spot market (no separate mark or index price), without funding and
without liquidation:

* **Position** per ``(account, symbol)``: a signed quantity ``qty`` in base
  units (short < 0) and its signed ``open_cost`` = sum of ``qty * price`` of
  the fills that opened it, in quote, so ``avg_price = open_cost / qty``
  (average-cost, as :mod:`tradebus.common.positions`; fees kept apart).
* **Fills** need no base asset. A fill on the position's side (or on a flat
  position) adds to it. An opposite fill closes ``min(fill qty, |qty|)`` and
  realizes ``closing * (price - avg_price)`` for a long (the negative for a
  short); the rest of a larger fill opens a position the other way at the
  fill price (a flip). Realized P&L and fees move the quote balance.
* **Rounding**: the open cost of a partly closed position is shared out in
  proportion and rounded half-even to the decimal places of the market's
  notional quantum ``tick_size * step_size`` (those of ``price * qty``), so
  every amount stays a short exact decimal and venue totals equal ledger
  sums exactly; a full close books the whole open cost.
* **Margin** (quote, locked): an open position locks ``|open_cost| /
  leverage``. An open order locks ``increasing_qty * price / leverage`` plus
  the worst-case fee on its whole notional, where ``increasing_qty`` is the
  part that would grow ``|position|``: an order opposite to the position may
  reduce it, but resting orders on the same side placed earlier claim the
  reducible quantity first (in placement order). Margins round up to the
  quantum's decimal places. A venue recomputes order locks whenever the position or the
  resting orders change (:func:`order_lock` is a function of both).

Sources: Binance USD-M futures "initial margin = notional / leverage" and
"realized PnL" of one-way mode; shared/STRATEGIES.md (fill model, §3 spread
on perpetual markets); task brief for the paper perpetual venue.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

import msgspec

from tradebus.common.markets import Market
from tradebus.common.messages import Side
from tradebus.common.money import ZERO, bps_fee


class PerpPosition(msgspec.Struct, kw_only=True):
    """One perpetual position.

    Attributes
    ----------
    qty
        Signed position in base units (short < 0).
    open_cost
        Signed ``sum(qty * price)`` of the open position, quote.
    margin
        Quote currently locked for it (``|open_cost| / leverage``, rounded up).
    realized_pnl
        Sum of the P&L realized on this symbol so far (fees excluded), quote.
    """

    qty: Decimal = ZERO
    open_cost: Decimal = ZERO
    margin: Decimal = ZERO
    realized_pnl: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal | None:
        """Average entry price (quote per base), ``None`` when flat."""
        return self.open_cost / self.qty if self.qty else None

    def unrealized_pnl(self, price: Decimal) -> Decimal:
        """``qty * price - open_cost``: the P&L of closing everything at ``price``, quote."""
        return self.qty * price - self.open_cost if self.qty else ZERO


def notional_quantum(market: Market) -> Decimal:
    """``tick_size * step_size``: its decimal places are those of ``price * qty``, quote."""
    return market.tick_size * market.step_size


def round_up(value: Decimal, quantum: Decimal) -> Decimal:
    """``value`` (>= 0) rounded up to the decimal places of ``quantum``."""
    return value.quantize(quantum, rounding=ROUND_CEILING)


def apply_fill(
    position: PerpPosition, side: Side, qty: Decimal, price: Decimal, quantum: Decimal
) -> Decimal:
    """Apply a fill of ``qty`` (> 0, base) at ``price`` to ``position``; return the realized P&L.

    The realized P&L (quote, fees excluded) is zero for a fill that opens or
    adds; see the module docstring for closing and flipping. ``margin`` is
    left to the caller (it depends on the leverage).
    """
    signed = qty if side == "buy" else -qty
    if position.qty == 0 or (position.qty > 0) == (signed > 0):
        position.qty += signed
        position.open_cost += signed * price
        return ZERO
    held = abs(position.qty)
    closing = min(qty, held)
    direction = 1 if position.qty > 0 else -1
    if closing == held:
        cost_share = position.open_cost
    else:
        cost_share = (position.open_cost * closing / held).quantize(
            quantum, rounding=ROUND_HALF_EVEN
        )
    realized = direction * closing * price - cost_share
    position.open_cost -= cost_share
    position.qty -= direction * closing
    remainder = qty - closing
    if remainder > 0:  # a flip: the rest opens the other way at the fill price
        position.qty = remainder if side == "buy" else -remainder
        position.open_cost = position.qty * price
    position.realized_pnl += realized
    return realized


def position_margin(position: PerpPosition, leverage: Decimal, quantum: Decimal) -> Decimal:
    """Quote locked by an open position: ``|open_cost| / leverage``, rounded up."""
    return round_up(abs(position.open_cost) / leverage, quantum)


def increasing_qty(position_qty: Decimal, side: Side, qty: Decimal, claimed: Decimal) -> Decimal:
    """The part of an order of ``qty`` that would increase ``|position|``.

    Parameters
    ----------
    position_qty
        Signed position, base units.
    side
        The order's side.
    qty
        The order's quantity, base units.
    claimed
        Quantity of resting orders on the same side placed before this one:
        they reduce the position first.
    """
    opposes = (position_qty > 0 and side == "sell") or (position_qty < 0 and side == "buy")
    reducible = max(ZERO, abs(position_qty) - claimed) if opposes else ZERO
    return qty - min(qty, reducible)


def order_lock(
    position_qty: Decimal,
    side: Side,
    qty: Decimal,
    claimed: Decimal,
    price: Decimal,
    leverage: Decimal,
    fee_bps: Decimal,
    quantum: Decimal,
) -> Decimal:
    """Quote an open perpetual order locks (see :func:`increasing_qty`).

    ``increasing_qty * price / leverage`` rounded up (:func:`round_up`), plus the
    fee of ``fee_bps`` basis points on ``price * qty``. ``price`` is the
    order's limit, or the price a market order is assumed to fill at.
    """
    grows = increasing_qty(position_qty, side, qty, claimed)
    return round_up(grows * price / leverage, quantum) + bps_fee(price * qty, fee_bps)
