"""Checks shared by the strategies' ``problems()`` (parameter validation).

Source: shared/STRATEGIES.md §1-§4, whose parameter tables give each field's
range. A decimal is valid only if finite; ``None`` (an optional field left
out) is never valid. Each test checks ``is_finite()`` first, so NaN and
infinities never reach a comparison.
"""

from __future__ import annotations

from decimal import Decimal


class Problems:
    """Collects invalid fields as ``(field, message)`` in the order they are checked."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def check(self, field: str, ok: bool, message: str) -> None:
        """Record ``(field, message)`` unless ``ok``."""
        if not ok:
            self.found.append((field, message))


def at_least(value: Decimal | None, low: Decimal | int) -> bool:
    """``value`` is finite and ``>= low``."""
    return value is not None and value.is_finite() and value >= low


def non_negative(value: Decimal | None) -> bool:
    """``value`` is finite and ``>= 0``."""
    return at_least(value, 0)


def positive(value: Decimal | None) -> bool:
    """``value`` is finite and ``> 0``."""
    return value is not None and value.is_finite() and value > 0
