"""Decimal arithmetic for money: rounding to a market's increments, validation.

Money is :class:`decimal.Decimal` everywhere (DESIGN.md); these helpers never
convert through float.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
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
