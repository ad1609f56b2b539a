"""Decimal arithmetic for money: rounding to a market's increments, validation.

Money is :class:`decimal.Decimal` everywhere (DESIGN.md); these helpers never
convert through float.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
BPS = Decimal(10_000)


def floor_to(value: Decimal, increment: Decimal) -> Decimal:
    """Round ``value`` down to a multiple of ``increment`` (``floor_tick``/``floor_step``).

    Source: STRATEGIES.md, ``floor_tick(x)`` and ``floor_step(x)``. The result
    has the increment's exponent (``floor_to(98, 0.01) == Decimal("98.00")``).

    Raises
    ------
    ValueError
        If ``increment`` is not positive.
    """
    if increment <= 0:
        raise ValueError(f"increment must be > 0, got {increment}")
    steps = (value / increment).to_integral_value(rounding=ROUND_FLOOR)
    return (steps * increment).quantize(increment)


def is_positive_finite(value: Decimal | None) -> bool:
    """True for a finite Decimal strictly greater than zero (not NaN, not Infinity)."""
    return value is not None and value.is_finite() and value > 0


def bps_fee(notional: Decimal, bps: Decimal) -> Decimal:
    """Fee of ``bps`` basis points on ``notional`` (same unit as ``notional``)."""
    return notional * bps / BPS
