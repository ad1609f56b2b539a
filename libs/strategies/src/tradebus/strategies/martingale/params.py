"""The ``martingale`` parameters and the pure planning of a cycle's orders.

Source: shared/STRATEGIES.md §2 (seed 002). Holds :class:`MartingaleParams`
with its validation (``problems()``), and the functions of the parameters
alone that :mod:`tradebus.strategies.martingale.bot` trades by: the base order
``floor_tick(p * 1.005)``, the safety levels ``P_base * (1 - dev_j/100)`` with
``dev_j = d * (1 + s + ... + s**(j-1))``, the take-profit price
``floor_tick(avg * (1 + T/100))`` and the worst-case capital
``base_quote + sum(quote_j)`` checked against the free balance.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.markets import Market
from tradebus.common.money import HUNDRED, ONE, ZERO, floor_to
from tradebus.strategies.common_checks import Problems, at_least, non_negative, positive

NS_PER_SECOND = 1_000_000_000
BASE_BUY_FACTOR = Decimal("1.005")
MAX_SAFETY_ORDERS = 20


class MartingaleParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of STRATEGIES.md §2: money in the quote asset, percents in percent.

    ``cooldown_seconds`` is market time between a cycle's end and the next
    cycle; ``stop_loss_pct`` 0 means no stop-loss. ``trailing_take_profit_pct``
    Tr (default 0 = off: the resting take-profit sell of §2) replaces that
    sell by a trailing exit (docs/strategies.md, "Exits"): no take-profit
    order rests; once ``p`` reaches the take-profit price
    ``floor_tick(avg * (1 + T/100))`` the bot follows the highest ``p`` since
    (the peak) and sells marketably once ``p <= peak * (1 - Tr/100)``; a buy
    fill disarms it (it re-arms at the new price); the stop-loss is checked first.
    """

    base_quote: Decimal
    safety_quote: Decimal
    max_safety_orders: int
    price_deviation_pct: Decimal
    take_profit_pct: Decimal
    step_scale: Decimal = ONE
    volume_scale: Decimal = ONE
    stop_loss_pct: Decimal = ZERO
    cooldown_seconds: Decimal = ZERO
    min_order_quote: Decimal = Decimal(10)
    cancel_on_exit: bool = True
    trailing_take_profit_pct: Decimal = ZERO

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid field as ``(field, message)``; empty when valid."""
        out = Problems()
        check = out.check
        n, d, sq = self.max_safety_orders, self.price_deviation_pct, self.safety_quote
        sl = self.stop_loss_pct
        check("base_quote", positive(self.base_quote), "must be > 0")
        check("safety_quote", non_negative(sq) and (sq > 0 or n == 0), "must be > 0")
        check("max_safety_orders", 0 <= n <= MAX_SAFETY_ORDERS, "must be between 0 and 20")
        check("price_deviation_pct", positive(d) and d < HUNDRED, "must be > 0 and < 100")
        check("step_scale", at_least(self.step_scale, ONE), "must be >= 1")
        check("volume_scale", at_least(self.volume_scale, ONE), "must be >= 1")
        check("take_profit_pct", positive(self.take_profit_pct), "must be > 0")
        check(
            "stop_loss_pct", non_negative(sl) and sl < HUNDRED, "must be >= 0 and < 100 (0 = none)"
        )
        check("cooldown_seconds", non_negative(self.cooldown_seconds), "must be >= 0")
        tr = self.trailing_take_profit_pct
        check(
            "trailing_take_profit_pct",
            non_negative(tr) and tr < HUNDRED,
            f"must be >= 0 and < 100 (0 = off), not {tr}",
        )
        check("min_order_quote", non_negative(self.min_order_quote), "must be >= 0")
        if not out.found and n and deviation_pct(n, self) >= HUNDRED:
            deepest = deviation_pct(n, self)
            out.found.append(
                (
                    "price_deviation_pct",
                    f"safety order {n} would be {deepest} % below"
                    " the base price; the deepest must be < 100 %",
                )
            )
        return out.found


class SafetyLevel(msgspec.Struct, frozen=True, kw_only=True):
    """Safety order ``index`` (1..N): cumulative deviation (%), limit price, quantity, quote."""

    index: int
    deviation_pct: Decimal
    price: Decimal
    qty: Decimal
    quote: Decimal


def deviation_pct(j: int, params: MartingaleParams) -> Decimal:
    """``dev_j = d * (1 + s + ... + s**(j-1))`` in percent (STRATEGIES.md §2)."""
    s = params.step_scale
    return params.price_deviation_pct * sum((s**i for i in range(j)), ZERO)


def worst_case_capital(params: MartingaleParams) -> Decimal:
    """``base_quote + sum(safety_quote * v**(j-1), j = 1..N)`` in the quote asset (§2)."""
    v, n = params.volume_scale, params.max_safety_orders
    return params.base_quote + sum((params.safety_quote * v**j for j in range(n)), ZERO)


def base_order(p: Decimal, params: MartingaleParams, market: Market) -> tuple[Decimal, Decimal]:
    """``(price, qty)`` of the base order at reference price ``p`` (§2).

    ``price = floor_tick(p * 1.005)`` (marketable), ``qty = floor_step(base_quote / price)``,
    so the notional never exceeds ``base_quote``.
    """
    price = floor_to(p * BASE_BUY_FACTOR, market.tick_size)
    qty = floor_to(params.base_quote / price, market.step_size) if price > 0 else ZERO
    return price, qty


def plan_safety_orders(
    p_base: Decimal, params: MartingaleParams, market: Market
) -> list[SafetyLevel]:
    """The safety orders of a cycle whose base order filled at ``p_base`` (§2).

    ``price_j = floor_tick(P_base * (1 - dev_j/100))``,
    ``quote_j = safety_quote * v**(j-1)``, ``qty_j = floor_step(quote_j / price_j)``;
    a level whose price is not positive or whose notional is below
    ``min_order_quote`` is skipped.
    """
    levels = []
    for j in range(1, params.max_safety_orders + 1):
        dev = deviation_pct(j, params)
        price = floor_to(p_base * (ONE - dev / HUNDRED), market.tick_size)
        if price <= 0:
            continue
        quote = params.safety_quote * params.volume_scale ** (j - 1)
        qty = floor_to(quote / price, market.step_size)
        if qty > 0 and price * qty >= params.min_order_quote:
            levels.append(
                SafetyLevel(index=j, deviation_pct=dev, price=price, qty=qty, quote=quote)
            )
    return levels


def take_profit_price(avg: Decimal, params: MartingaleParams, market: Market) -> Decimal:
    """``floor_tick(avg * (1 + T/100))``: the take-profit limit for average price ``avg`` (§2)."""
    return floor_to(avg * (ONE + params.take_profit_pct / HUNDRED), market.tick_size)


def cooldown_ns(params: MartingaleParams) -> int:
    """``cooldown_seconds`` in nanoseconds of market time (``ts_recv``)."""
    return int(params.cooldown_seconds * NS_PER_SECOND)
