"""Perpetual positions and funding of the local Backpack exchange.

A position is net (one per account and market, long > 0, short < 0), as
``GET /api/v1/position`` shows it (``netQuantity``, ``netCost`` = the signed
``price * quantity`` of what opened it, ``entryPrice = netCost / netQuantity``,
``pnlRealized``, ``cumulativeFundingPayment``; docs.backpack.exchange, Futures,
"Get open positions"). A fill against the position closes
``min(fill, |position|)`` at the average entry price and realizes
``closed * (price - entry)`` for a long (the negative for a short), sharing the
open cost out in proportion (the whole of it on a full close); the rest of a
larger fill opens the other way at the fill price. Realized P&L, fees and
funding settle in the quote asset (USDC) at once.

Funding (``GET /wapi/v1/history/funding``): at the end of an interval each
open position pays ``netQuantity * markPrice * fundingRate`` (a long pays a
positive rate, a short receives it); the payment's ``quantity`` is what the
account received, negative when it paid. The mark price here is the last trade
price (the server has no index).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tests.support.backpack.market import ZERO


@dataclass
class PerpPosition:
    """One account's net position in one perpetual market."""

    account: str
    symbol: str
    position_id: int
    net_qty: Decimal = ZERO
    net_cost: Decimal = ZERO
    realized: Decimal = ZERO
    funding: Decimal = ZERO

    @property
    def entry_price(self) -> Decimal:
        """``netCost / netQuantity``; 0 when flat."""
        return self.net_cost / self.net_qty if self.net_qty else ZERO

    def apply(self, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill (``Bid`` buys, ``Ask`` sells ``qty`` at ``price``); the P&L it
        realized (module docstring)."""
        signed = qty if side == "Bid" else -qty
        if self.net_qty == 0 or (self.net_qty > 0) == (signed > 0):
            self.net_qty += signed
            self.net_cost += signed * price
            return ZERO
        closing = min(qty, abs(self.net_qty))
        direction = 1 if self.net_qty > 0 else -1
        if closing == abs(self.net_qty):
            cost_share = self.net_cost
        else:
            cost_share = self.net_cost * (closing / abs(self.net_qty))
        realized = direction * closing * price - cost_share
        self.net_cost -= cost_share
        self.net_qty += direction * -closing
        if self.net_qty == 0:
            self.net_cost = ZERO
        rest = qty - closing
        if rest > 0:
            self.net_qty = rest if side == "Bid" else -rest
            self.net_cost = self.net_qty * price
        self.realized += realized
        return realized


@dataclass(frozen=True)
class FundingPayment:
    """One funding payment of one position (``GET /wapi/v1/history/funding`` item)."""

    account: str
    symbol: str
    quantity: Decimal
    rate: Decimal
    interval_end_ms: int
