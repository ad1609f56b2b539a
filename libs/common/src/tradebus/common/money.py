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


# ----------------------------------------------------------------------------- display

SIGNIFICANT_DIGITS = 8
"""Significant digits :func:`format_amount` keeps when no market precision is known."""


def _places_of(step: Decimal) -> int:
    """Decimal places of an increment: ``0.00001`` -> 5, ``0.5`` -> 1, ``10`` -> 0."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def format_amount(
    value: Decimal | int | str | None,
    places: int | None = None,
    step: Decimal | str | None = None,
    *,
    digits: int = SIGNIFICANT_DIGITS,
    grouping: bool = False,
) -> str:
    """A number for people: fixed point, never an exponent (``0E-8``) nor 28 digits.

    The one display formatter of money, prices and quantities (CLI tables, bot
    status, the demo's summary, history pages). Precision, first that applies:

    * ``step``: the market's increment (its ``tick_size`` for prices, ``step_size``
      for quantities): as many decimal places as the increment has
      (``format_amount(Decimal("98.123"), step=Decimal("0.01")) == "98.12"``);
    * ``places``: that many decimal places (``format_amount(x, 4)``);
    * otherwise ``digits`` significant digits, trailing zeros dropped
      (``-2.339396771999999999999999980`` -> ``"-2.3393968"``; ``0E-8`` -> ``"0"``).

    Rounding is half-even (display only: booked amounts are never rounded here).
    ``grouping`` adds thousands separators (``1,234.5``). ``None`` is ``"-"``; a
    text ``value`` that is not a number, NaN or an infinity is returned as text;
    a negative zero is ``"0"``.
    """
    if value is None:
        return "-"
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except (ArithmeticError, ValueError, TypeError):
        return str(value)
    if not number.is_finite():
        return str(value)
    if step is not None:
        places = _places_of(Decimal(step))
    if places is not None:
        shown = number.quantize(Decimal(1).scaleb(-places))
    elif number.is_zero():
        shown = ZERO
    else:
        # keep `digits` significant digits, then drop trailing zeros
        adjusted = number.adjusted()
        exponent = min(0, adjusted - digits + 1)
        shown = number.quantize(Decimal(1).scaleb(exponent)).normalize()
    if shown.is_zero():
        shown = abs(shown)
        if places is None:
            shown = ZERO
    return f"{shown:,f}" if grouping else f"{shown:f}"


def format_price(value: Decimal | int | str | None, tick_size: Decimal | None = None) -> str:
    """A price with the market's precision (``tick_size``), or :func:`format_amount`'s
    significant digits when the market is unknown."""
    return format_amount(value, step=tick_size)


def format_qty(value: Decimal | int | str | None, step_size: Decimal | None = None) -> str:
    """A base-asset quantity with the market's precision (``step_size``), or
    :func:`format_amount`'s significant digits when the market is unknown."""
    return format_amount(value, step=step_size)


def format_positions(positions: Mapping[str, Decimal | str], step: Decimal | None = None) -> str:
    """Positions per asset or symbol as one readable list: ``BTC 0.0100, ETH 1.5``
    (:func:`format_amount`, in key order; ``-`` when empty)."""
    if not positions:
        return "-"
    return ", ".join(f"{k} {format_amount(v, step=step)}" for k, v in sorted(positions.items()))
