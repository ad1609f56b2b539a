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


SIGNIFICANT_DIGITS = 8
"""Significant digits :func:`format_amount` keeps when no precision is given."""


def places_of(step: Decimal) -> int:
    """The decimal places of an increment: ``0.01`` -> 2, ``0.5`` -> 1, ``10`` -> 0."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def format_amount(
    value: Decimal | int | str | None,
    places: int | Decimal | None = None,
    *,
    digits: int = SIGNIFICANT_DIGITS,
    grouping: bool = False,
) -> str:
    """A number for people: plain notation, never an exponent (``0E-8``) nor 28 digits.

    The one display formatter of money, prices and quantities (CLI tables, bot
    status, the demo's summary, history pages). ``places`` is a number of
    decimal places (``2``), or a market's increment (its ``tick_size`` for a
    price, ``step_size`` for a quantity: ``Decimal("0.001")`` means 3 places);
    the value is rounded half-even to it and keeps trailing zeros so that a
    column lines up (``format_amount(Decimal("1.5"), 2) == "1.50"``). ``None``:
    ``digits`` significant digits, trailing zeros dropped
    (``-2.339396771999999999999999980`` -> ``-2.3393968``; ``0E-8`` -> ``0``;
    the integer part is never rounded). Display only: booked amounts are never
    rounded here.

    ``grouping`` adds thousands separators (``1,234.5``). ``None`` is ``-``; a
    text that is not a number, a NaN or an infinity is shown as it is; a negative
    zero as ``0``.
    """
    if value is None:
        return "-"
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except (ArithmeticError, ValueError, TypeError):
        return str(value)
    if not number.is_finite():
        return str(value)
    if places is None:
        exponent = 0 if number.is_zero() else min(0, number.adjusted() - digits + 1)
    else:
        exponent = -(places_of(places) if isinstance(places, Decimal) else max(0, places))
    exact = Context(prec=max(28, number.adjusted() - exponent + 2))  # never InvalidOperation
    shown = number.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN, context=exact)
    if places is None:
        shown = shown.normalize(context=exact)
    if shown.is_zero():
        shown = abs(shown)
    return f"{shown:,f}" if grouping else f"{shown:f}"


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


def format_price(value: Decimal | int | str | None, tick_size: Decimal | None = None) -> str:
    """A price with the market's precision (``tick_size``), or :func:`format_amount`'s
    significant digits when the market is unknown."""
    return format_amount(value, tick_size)


def format_qty(value: Decimal | int | str | None, step_size: Decimal | None = None) -> str:
    """A base-asset quantity with the market's precision (``step_size``), or
    :func:`format_amount`'s significant digits when the market is unknown."""
    return format_amount(value, step_size)


def format_positions(positions: Mapping[str, Decimal | str], step: Decimal | None = None) -> str:
    """Positions per asset or symbol as one readable list: ``BTC 0.0100, ETH 1.5``
    (:func:`format_amount`, in key order; ``-`` when empty)."""
    if not positions:
        return "-"
    return ", ".join(f"{k} {format_amount(v, step)}" for k, v in sorted(positions.items()))
