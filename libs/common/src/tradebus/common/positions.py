"""Position, average price and P&L of a stream of fills (average-cost method).

Used wherever tradebus reports what a bot or account holds: strategy status
blocks, the demo summary, the ledger report. Quantities are in the base
asset, prices/costs/fees/P&L in the quote asset; a position is signed (short
is negative, for perpetual markets).

Definitions (STRATEGIES.md §1 and the paper fill model rule 6):

* ``avg_price`` = sum(qty * price) / sum(qty) over the fills that opened the
  current position (fees excluded);
* realized P&L is booked when a position is reduced: the closed quantity's
  price difference, minus the closing fill's fee, minus the share of the
  opening fees of the closed quantity. A cycle that opens and closes fully
  therefore realizes ``sell proceeds - buy cost - all fees``;
* unrealized P&L at price ``p`` = ``position * (p - avg_price) - open_fees``.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.messages import Side
from tradebus.common.money import ZERO


class Position(msgspec.Struct, kw_only=True):
    """Mutable running position of one market; apply fills in the order they happened.

    A msgspec struct so that it snapshots with the bot that owns it.
    ``open_cost`` is signed (``qty * avg_price`` of the open position).
    """

    qty: Decimal = ZERO
    open_cost: Decimal = ZERO
    open_fees: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    bought_qty: Decimal = ZERO
    bought_notional: Decimal = ZERO
    sold_qty: Decimal = ZERO
    sold_notional: Decimal = ZERO
    written_off_qty: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal | None:
        """Average entry price of the open position, ``None`` when flat."""
        return self.open_cost / self.qty if self.qty else None

    def unrealized_pnl(self, price: Decimal) -> Decimal:
        """``qty * (price - avg_price) - open_fees``; zero when flat."""
        if not self.qty:
            return ZERO
        return self.qty * price - self.open_cost - self.open_fees

    def apply(self, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        """Apply one fill of ``qty`` (> 0) at ``price`` with ``fee`` in the quote asset."""
        signed = qty if side == "buy" else -qty
        self.fees += fee
        if side == "buy":
            self.bought_qty += qty
            self.bought_notional += qty * price
        else:
            self.sold_qty += qty
            self.sold_notional += qty * price
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            self.qty += signed
            self.open_cost += signed * price
            self.open_fees += fee
            return
        closing = min(qty, abs(self.qty))
        direction = 1 if self.qty > 0 else -1
        if closing == abs(self.qty):  # a full close books the open cost exactly
            cost_share, fee_share = self.open_cost, self.open_fees
        else:
            share = closing / abs(self.qty)
            cost_share, fee_share = self.open_cost * share, self.open_fees * share
        closing_fee = fee * closing / qty
        self.realized_pnl += direction * closing * price - cost_share - closing_fee - fee_share
        self.open_cost -= cost_share
        self.open_fees -= fee_share
        self.qty += signed if closing == qty else -self.qty
        remainder = qty - closing
        if self.qty == 0:
            self.open_cost = ZERO
            self.open_fees = ZERO
        if remainder > 0:  # the fill flipped the position: the rest opens a new one
            self.qty = remainder if side == "buy" else -remainder
            self.open_cost = self.qty * price
            self.open_fees = fee - closing_fee

    def write_off(self, qty: Decimal) -> None:
        """Drop ``qty`` (0 < qty <= |position|) of the open position at its average cost.

        No P&L is booked: the quantity left the bot's control (seed 001: the
        user sold it by hand), so the bot neither gains nor loses on it.
        """
        if qty <= 0 or qty > abs(self.qty):
            raise ValueError(f"cannot write off {qty} of a position of {self.qty}")
        share = qty / abs(self.qty)
        self.open_cost -= self.open_cost * share
        self.open_fees -= self.open_fees * share
        self.qty -= qty if self.qty > 0 else -qty
        self.written_off_qty += qty
        if self.qty == 0:
            self.open_cost = ZERO
            self.open_fees = ZERO
