"""The ``ladder`` strategy's parameters and its buy levels (shared/STRATEGIES.md §1)."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.markets import Market
from tradebus.common.money import HUNDRED, ONE, ZERO, floor_to
from tradebus.strategies.common_checks import Problems, non_negative, positive
from tradebus.strategies.position_check import PositionCheck


class LadderParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of STRATEGIES.md §1 (percent parameters are in percent), and the exits
    of docs/strategies.md ("Exits"):

    ``position_check``: the per-bot position check (seed 001, docs/strategies.md
    "Position check"), off by default: ``{enabled: false, interval_seconds: 60,
    on_tick: false, position_difference_threshold: 5 (percent), action: alert}``
    (:class:`~tradebus.strategies.position_check.PositionCheck`).
    ``stop_loss_pct`` S (default 0 = off): with a position, sell it marketably
    once ``p <= avg * (1 - S/100)``; the cycle then closes with its loss and a
    new one starts only if ``restart_after_stop_loss`` (default false: the bot
    stops and its user decides whether to trade on after a loss; 3Commas offers
    the same choice of stop-loss action). ``trailing_take_profit_pct`` Tr
    (default 0 = off: sell as soon as the take-profit is reached): once
    ``p >= avg * (1 + T/100)``, follow the highest ``p`` since (the peak) and
    sell once ``p <= peak * (1 - Tr/100)``; a buy fill disarms it (it re-arms
    at the new average's level).
    """

    total_quote: Decimal
    order_count: int
    max_drop_pct: Decimal
    take_profit_pct: Decimal
    increment_pct: Decimal = ZERO
    min_order_quote: Decimal = Decimal(10)
    restart_after_take_profit: bool = True
    no_fill_restart_minutes: Decimal = Decimal(60)
    cancel_on_exit: bool = True
    stop_loss_pct: Decimal = ZERO
    restart_after_stop_loss: bool = False
    trailing_take_profit_pct: Decimal = ZERO
    position_check: PositionCheck = PositionCheck()

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid field as ``(field, message)``; empty when valid."""
        out = Problems()
        check, d, nf = out.check, self.max_drop_pct, self.no_fill_restart_minutes
        check("total_quote", positive(self.total_quote), "must be > 0")
        check("order_count", 1 <= self.order_count <= 200, "must be between 1 and 200")
        check("max_drop_pct", positive(d) and d < 100, "must be > 0 and < 100")
        check("increment_pct", non_negative(self.increment_pct), "must be >= 0")
        check("take_profit_pct", positive(self.take_profit_pct), "must be > 0")
        check("min_order_quote", non_negative(self.min_order_quote), "must be >= 0")
        check("no_fill_restart_minutes", non_negative(nf), "must be >= 0 (0 = never)")
        sl, tr = self.stop_loss_pct, self.trailing_take_profit_pct
        check(
            "stop_loss_pct",
            non_negative(sl) and sl < HUNDRED,
            f"must be >= 0 and < 100 (0 = off), not {sl}",
        )
        check(
            "trailing_take_profit_pct",
            non_negative(tr) and tr < HUNDRED,
            f"must be >= 0 and < 100 (0 = off), not {tr}",
        )
        return out.found + self.position_check.problems()


class Level(msgspec.Struct, frozen=True, kw_only=True):
    """One planned buy: level ``index`` (0 = nearest the price), limit price, quantity, quote."""

    index: int
    price: Decimal
    qty: Decimal
    quote: Decimal


class LadderError(ValueError):
    """No level of the ladder survives the minimum order size."""


def plan_levels(p0: Decimal, params: LadderParams, market: Market) -> list[Level]:
    """The buy levels of a cycle starting at reference price ``p0`` (STRATEGIES.md §1).

    ``price_i = floor_tick(P0 - step*(i+1))``, ``quote_i = base * r**i * scale``,
    ``qty_i = floor_step(quote_i / price_i)``; level ``i`` is kept only if
    ``price_i * qty_i >= min_order_quote``.

    Raises
    ------
    LadderError
        If no level survives, naming the parameters that made it so.
    """
    n = params.order_count
    lowest = p0 * (ONE - params.max_drop_pct / HUNDRED)
    step = (p0 - lowest) / n
    r = ONE + params.increment_pct / HUNDRED
    q = params.total_quote
    base = q / n if params.increment_pct == 0 else q * (r - ONE) / (r**n - ONE)
    base = max(params.min_order_quote, base)
    scale = min(ONE, q / sum(base * r**i for i in range(n)))
    levels = []
    for i in range(n):
        price = floor_to(p0 - step * (i + 1), market.tick_size)
        if price <= 0:
            continue
        quote = base * r**i * scale
        qty = floor_to(quote / price, market.step_size)
        if qty > 0 and price * qty >= params.min_order_quote:
            levels.append(Level(index=i, price=price, qty=qty, quote=quote))
    if not levels:
        raise LadderError(
            f"no ladder level reaches min_order_quote={params.min_order_quote} at price {p0}: "
            f"total_quote={q}, order_count={n}, increment_pct={params.increment_pct}, "
            f"step_size={market.step_size}; raise total_quote or lower order_count"
        )
    return levels
