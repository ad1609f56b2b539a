"""The grid bot's parameters and its price levels (README.md, "Rules").

Money is ``Decimal``; prices in the quote asset, quantities in the base asset.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import msgspec

from tradebus.common.markets import Market
from tradebus.common.money import floor_to

MAX_LEVELS = 200
"""The most price levels a grid may have."""


class GridParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of a grid bot.

    ``lower_price`` / ``upper_price``: the lowest and highest level (quote
    asset, ``0 < lower < upper``); ``grid_levels``: how many price levels,
    both ends included (2 to 200); ``quote_per_level``: the quote each buy
    spends (> 0); ``cancel_on_exit``: cancel the bot's open orders when it
    is stopped (default true).
    """

    lower_price: Decimal
    upper_price: Decimal
    grid_levels: int
    quote_per_level: Decimal
    cancel_on_exit: bool = True

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid field as ``(field, message)``; empty when valid."""
        out: list[tuple[str, str]] = []
        low, high = self.lower_price, self.upper_price
        if not (low.is_finite() and low > 0):
            out.append(("lower_price", f"must be > 0 (got {low})"))
        if not (high.is_finite() and high > 0):
            out.append(("upper_price", f"must be > 0 (got {high})"))
        elif low.is_finite() and high <= low:
            out.append(("upper_price", f"must be above lower_price {low} (got {high})"))
        if not 2 <= self.grid_levels <= MAX_LEVELS:
            got = self.grid_levels
            out.append(("grid_levels", f"must be between 2 and {MAX_LEVELS} (got {got})"))
        if not (self.quote_per_level.is_finite() and self.quote_per_level > 0):
            out.append(("quote_per_level", f"must be > 0 (got {self.quote_per_level})"))
        return out


class GridError(ValueError):
    """The grid cannot trade on its market (levels closer than a tick, orders too small)."""


def level_prices(params: GridParams, market: Market) -> list[Decimal]:
    """The ``grid_levels`` prices, lowest first:
    ``price_i = floor_tick(lower + i * (upper - lower) / (grid_levels - 1))``.

    Raises
    ------
    GridError
        If two levels fall on one tick (the grid is finer than ``tick_size``).
    """
    n, low = params.grid_levels, params.lower_price
    step = (params.upper_price - low) / (n - 1)
    prices = [floor_to(low + step * i, market.tick_size) for i in range(n)]
    if any(b <= a for a, b in pairwise(prices)):
        raise GridError(
            f"levels {step} apart are finer than tick_size {market.tick_size}: "
            "lower grid_levels or widen lower_price..upper_price"
        )
    return prices


def buy_qty(price: Decimal, params: GridParams, market: Market) -> Decimal:
    """The quantity a buy at ``price`` gets: ``floor_step(quote_per_level / price)``.

    Raises
    ------
    GridError
        If it is zero or below the market's ``min_qty`` or ``min_notional``.
    """
    qty = floor_to(params.quote_per_level / price, market.step_size)
    if qty <= 0 or qty < market.min_qty or qty * price < market.min_notional:
        raise GridError(
            f"a buy of quote_per_level {params.quote_per_level} at {price} is {qty} "
            f"{market.base} ({qty * price} {market.quote}), below the market's minimum "
            f"(min_qty {market.min_qty}, min_notional {market.min_notional}, step_size "
            f"{market.step_size}): raise quote_per_level"
        )
    return qty
