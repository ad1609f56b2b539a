"""Decimal arithmetic for money: rounding to a market's increments, validation.

Money is :class:`decimal.Decimal` everywhere (DESIGN.md); these helpers never
convert through float.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any, TypeVar, overload

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
BPS = Decimal(10_000)

_D = TypeVar("_D")
_RAISE: Any = object()


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


def places_of(step: Decimal) -> int:
    """The decimal places of an increment: ``0.01`` -> 2, ``0.5`` -> 1, ``10`` -> 0."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def format_amount(value: Decimal, places: int | Decimal | None = None) -> str:
    """``value`` as text for people: plain notation, never an exponent (``0``, not
    ``0E-8``), never more digits than asked.

    ``places`` is a number of decimal places (``2``), or a market's increment
    (its ``tick_size`` for a price, ``step_size`` for a quantity: ``0.001``
    means 3 places); the value is rounded half-even to it and keeps trailing
    zeros so that a column lines up (``format_amount(Decimal("1.5"), 2) ==
    "1.50"``). ``None``: the value's own digits, trailing zeros dropped
    (``-2.3393967719999999999`` stays as long: give ``places`` where a market
    is known). A NaN or infinity is shown as Python writes it; a negative zero
    as ``0``.
    """
    if not value.is_finite():
        return str(value)
    if places is None:
        shown = value.normalize()
    else:
        digits = places_of(places) if isinstance(places, Decimal) else max(0, places)
        exact = Context(prec=max(28, value.adjusted() + digits + 2))  # never InvalidOperation
        shown = value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN, context=exact)
    if shown.is_zero():
        shown = abs(shown)
    return f"{shown:f}"


def is_positive_finite(value: Decimal | None) -> bool:
    """True for a finite Decimal strictly greater than zero (not NaN, not Infinity)."""
    return value is not None and value.is_finite() and value > 0


def bps_fee(notional: Decimal, bps: Decimal) -> Decimal:
    """Fee of ``bps`` basis points on ``notional`` (same unit as ``notional``)."""
    return notional * bps / BPS


@overload
def ccxt_decimal(value: object, info: object = None, keys: Iterable[str] = ()) -> Decimal: ...


@overload
def ccxt_decimal(
    value: object, info: object = None, keys: Iterable[str] = (), *, default: _D
) -> Decimal | _D: ...


def ccxt_decimal(
    value: object, info: object = None, keys: Iterable[str] = (), *, default: Any = _RAISE
) -> Any:
    """The exchange's own decimal of a number ccxt returned: the one ccxt-to-Decimal conversion.

    ccxt's unified numbers are floats (``1.5``), or text when the client was
    made with ``number = str``. A ``str`` or ``Decimal`` ``value`` is taken
    as is (``Decimal(value)``). For a float or int, the raw exchange answer
    ``info`` (ccxt's ``info`` dict) is searched for the text it came from:
    the fields ``keys`` first (where that exchange keeps this number), then
    every top-level field; the first string or integer equal to ``value`` as
    a float wins (``"1.50"`` for ``1.5``, keeping the exchange's digits).
    Else ``Decimal(str(value))``: the float's shortest repr, never
    ``Decimal(float)``'s binary expansion.

    Parameters
    ----------
    value
        ccxt's number (float, int, str, Decimal) or None.
    info
        The raw answer ccxt parsed (a dict; anything else is ignored).
    keys
        ``info`` fields to try first.
    default
        Returned for a ``None`` value; without it a ``None`` raises.

    Raises
    ------
    ValueError
        If ``value`` is None (and no ``default``) or a bool.
    decimal.InvalidOperation
        If a text ``value`` is not a number.
    """
    if value is None:
        if default is _RAISE:
            raise ValueError("missing number")
        return default
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, (str, Decimal)):
        return Decimal(value)
    if isinstance(info, Mapping):
        for key in (*keys, *info):
            raw = info.get(key)
            if isinstance(raw, (str, int)) and not isinstance(raw, bool):
                try:
                    if float(raw) == value:
                        return Decimal(raw)
                except (ValueError, InvalidOperation):
                    continue
    return Decimal(str(value))
