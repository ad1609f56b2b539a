"""Argument converters shared by the CLI's subcommands.

argparse calls a converter with the option's text; a :class:`argparse.ArgumentTypeError`
becomes ``tradebus ...: error: argument --qty: 'abc' is not a number`` and exit
status 2, so every bad value names its option and the value, never a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from decimal import Decimal, InvalidOperation


def decimal_arg(positive: bool = True) -> Callable[[str], Decimal]:
    """A converter of an option's text to a finite :class:`Decimal` (money, prices,
    quantities: never through float); with ``positive``, one > 0.

    The converter raises :class:`argparse.ArgumentTypeError` naming the value:
    ``'abc' is not a number``, ``'nan' is not a finite number``, ``'-1' must be > 0``.
    """

    def convert(text: str) -> Decimal:
        try:
            value = Decimal(text.strip())
        except (InvalidOperation, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value.is_finite():
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if positive and value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value

    convert.__name__ = "decimal"  # argparse's fallback message says "invalid decimal value"
    return convert
