"""Position, average price and P&L of a stream of fills (average cost, and per cycle).

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

A fee charged in the base asset of a spot market changes what the account
holds: Backpack takes a buy's fee in the asset bought (a Bid fill has
``feeSymbol`` the base, docs.backpack.exchange ``OrderFill``; ccxt's backpack
``parse_trade`` fixture), so a buy of ``q`` delivers ``q - fee``. The position
therefore moves by what the account received or gave up (:func:`position_change`),
and the fee counts in quote at the fill price, so that a take-profit sells what
is really there and the realized P&L stays ``proceeds - cost - fees``.

A bot's realized P&L is booked per cycle (rule 6): :class:`CycleBook` keeps
one :class:`Position` per cycle of its intent ids, so that the sell of one
volume loop realizes against that loop's buy, not against the average cost of
every loop open at the time. An account's position (execution's risk state,
the ledger's account report) has no cycles and stays on average cost.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.markets import Market
from tradebus.common.messages import Side
from tradebus.common.money import ZERO


def position_change(
    side: Side, qty: Decimal, price: Decimal, fee: Decimal, fee_asset: str, market: Market | None
) -> tuple[Decimal, Decimal | None]:
    """How far a fill moves the position (a quantity > 0 in base units, in the fill's
    direction) and its fee in the quote asset.

    * fee in quote: ``(qty, fee)``;
    * fee in base: ``fee * price`` in quote; on a spot market the base received
      is ``qty - fee`` on a buy and the base given up ``qty + fee`` on a sell
      (module docstring); on a perpetual the fee moves no contracts;
    * fee in another asset (BNB) or an unknown market: ``(qty, None)``.
    """
    if market is None:
        return qty, None
    if fee_asset == market.quote:
        return qty, fee
    if fee_asset != market.base:
        return qty, None
    if market.kind == "spot" and fee:
        qty = qty - fee if side == "buy" else qty + fee
    return qty, fee * price


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
    adopted_qty: Decimal = ZERO

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
        cost_share = _share(self.open_cost, closing, self.qty)
        fee_share = _share(self.open_fees, closing, self.qty)
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

    def apply_fill(
        self,
        side: Side,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_asset: str,
        market: Market | None,
    ) -> Decimal | None:
        """Apply one fill as charged (:func:`position_change`); returns its fee in quote,
        None if it has none (then it counts as 0 here)."""
        moved, fee_quote = position_change(side, qty, price, fee, fee_asset, market)
        if moved > 0:
            self.apply(side, moved, price, ZERO if fee_quote is None else fee_quote)
        return fee_quote

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

    def adopt(self, qty: Decimal, price: Decimal) -> None:
        """Take ``qty`` (> 0, base units) the account holds beyond the position into a long
        position at ``price`` (> 0, quote per base): ``qty += q``, ``open_cost += q * price``.

        No fee and no traded notional are booked: nothing was traded (seed 001's "virtual
        buy", docs/strategies.md "Position check").

        Raises
        ------
        ValueError
            If ``qty`` or ``price`` is not > 0, or the position is short.
        """
        if qty <= 0 or price <= 0 or self.qty < 0:
            raise ValueError(f"cannot adopt {qty} at {price} into a position of {self.qty}")
        self.qty += qty
        self.open_cost += qty * price
        self.adopted_qty += qty

    def set_average(self, price: Decimal) -> None:
        """Set the average entry price of the open position to ``price`` (> 0) by hand:
        ``open_cost = qty * price`` (seed 001's ``setManualAveragePrice``).

        Raises
        ------
        ValueError
            If ``price`` is not > 0 or the position is flat.
        """
        if not price > 0 or not self.qty:
            raise ValueError(f"cannot set the average of a position of {self.qty} to {price}")
        self.open_cost = self.qty * price


class CycleBook(msgspec.Struct, kw_only=True):
    """A bot's position in one market booked per cycle (STRATEGIES.md, fill model rule 6).

    A cycle (a ladder or martingale cycle, a spread round, a volume loop: the
    ``<bot>:<run>.<cycle>`` of its intent ids, :func:`tradebus.common.ids.cycle_of`)
    has its own :class:`Position`: a sell closes the buys of its own cycle, so
    a cycle that closes fully realizes exactly ``its sell proceeds - its buy
    cost - all of its fees`` (no division), however many other cycles are open
    at the time (overlapping volume loops). Fills of no cycle (key ``""``,
    manual intents) share one average-cost position.

    ``total`` is the sum over the cycles (quantities in base, money in quote):
    the open position (``qty``, ``open_cost``, ``open_fees``, so ``avg_price``
    and ``unrealized_pnl`` are those of every open cycle together), the
    ``realized_pnl`` summed over the cycles, and the fees and volumes of every
    fill. Read it as any :class:`Position`; change it only through this book.
    ``cycles`` holds the cycles not flat; one is dropped when it is.
    """

    total: Position = msgspec.field(default_factory=Position)
    cycles: dict[str, Position] = msgspec.field(default_factory=dict)

    def apply(self, cycle: str, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        """Apply one fill of ``qty`` (> 0, base) at ``price`` with ``fee`` (quote) to ``cycle``.

        A fill that reduces more than ``cycle`` holds (a late fill of an earlier
        cycle left base that a later cycle's sell takes with it) closes the rest
        against the other open cycles, oldest first, then opens what is still
        left in ``cycle``; its fee is shared out by quantity. So no cycle stays
        open against another of the opposite sign.
        """
        t = self.total
        t.fees += fee
        if side == "buy":
            t.bought_qty += qty
            t.bought_notional += qty * price
        else:
            t.sold_qty += qty
            t.sold_notional += qty * price
        parts = [(cycle, qty)]
        own = self.cycles.get(cycle)
        held = ZERO if own is None else (own.qty if side == "sell" else -own.qty)
        if qty > held:  # more than its own cycle holds: the rest closes the others first
            parts = [(cycle, held)] if held > 0 else []
            left = qty - max(held, ZERO)
            for key, other in list(self.cycles.items()):
                other_held = other.qty if side == "sell" else -other.qty
                if key != cycle and other_held > 0 and left > 0:
                    parts.append((key, min(left, other_held)))
                    left -= min(left, other_held)
            if left > 0:
                parts.append((cycle, left))
        for key, part in parts:
            position = self.cycles.get(key)
            if position is None:
                position = self.cycles[key] = Position()
            before = _open_figures(position)
            share = fee if part == qty else fee * part / qty
            position.apply(side, part, price, share)
            self._moved(key, position, before)

    def apply_fill(
        self,
        cycle: str,
        side: Side,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_asset: str,
        market: Market | None,
    ) -> Decimal | None:
        """:meth:`Position.apply_fill` for ``cycle``: apply one fill as charged
        (:func:`position_change`); returns its fee in quote, None if it has none."""
        moved, fee_quote = position_change(side, qty, price, fee, fee_asset, market)
        if moved > 0:
            self.apply(cycle, side, moved, price, ZERO if fee_quote is None else fee_quote)
        return fee_quote

    def write_off(self, cycle: str, qty: Decimal) -> None:
        """Drop ``qty`` of ``cycle``'s open position at its average cost
        (:meth:`Position.write_off`).

        Raises
        ------
        ValueError
            If ``cycle`` holds less than ``qty`` (or nothing).
        """
        position = self.cycles.get(cycle)
        if position is None:
            raise ValueError(f"cannot write off {qty} of cycle {cycle!r}: it holds nothing")
        before = _open_figures(position)
        position.write_off(qty)
        self.total.written_off_qty += qty
        self._moved(cycle, position, before)

    def held(self, cycle: str) -> Decimal:
        """The open quantity of ``cycle`` (signed, base; 0 if it holds nothing)."""
        position = self.cycles.get(cycle)
        return ZERO if position is None else position.qty

    def _moved(
        self, cycle: str, position: Position, before: tuple[Decimal, Decimal, Decimal, Decimal]
    ) -> None:
        """Carry ``cycle``'s change into ``total``; forget the cycle once it is flat."""
        t = self.total
        t.qty += position.qty - before[0]
        t.open_cost += position.open_cost - before[1]
        t.open_fees += position.open_fees - before[2]
        t.realized_pnl += position.realized_pnl - before[3]
        if position.qty == 0:
            del self.cycles[cycle]
        if not self.cycles:  # nothing open: exactly flat, whatever the sums rounded to
            t.qty, t.open_cost, t.open_fees = ZERO, ZERO, ZERO


def _open_figures(position: Position) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    return position.qty, position.open_cost, position.open_fees, position.realized_pnl


def _share(amount: Decimal, closing: Decimal, qty: Decimal) -> Decimal:
    """The part of ``amount`` (open cost or fees) of ``closing`` out of position ``qty``:
    all of it on a full close (exactly), in proportion otherwise."""
    if closing == abs(qty):
        return amount
    return amount * (closing / abs(qty))


def price_pnl(position: Position, side: Side, qty: Decimal, price: Decimal) -> Decimal:
    """The P&L a fill of ``qty`` at ``price`` would realize on ``position``, fees left out:
    the closed quantity's price difference against the average entry, the open cost shared
    out as :meth:`Position.apply` does; zero for a fill that only opens or adds. What a
    venue that does not report a perpetual fill's realized P&L (Backpack) would book."""
    signed = qty if side == "buy" else -qty
    if position.qty == 0 or (position.qty > 0) == (signed > 0):
        return ZERO
    closing = min(qty, abs(position.qty))
    direction = 1 if position.qty > 0 else -1
    return direction * closing * price - _share(position.open_cost, closing, position.qty)
