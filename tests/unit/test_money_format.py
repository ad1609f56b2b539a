"""format_amount: numbers for people, in a market's precision, never an exponent."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tradebus.common.money import format_amount, places_of


@pytest.mark.parametrize(
    ("value", "places", "shown"),
    [
        (D("0E-8"), None, "0"),
        (D("0E-8"), 2, "0.00"),
        (D("-0.001"), 2, "0.00"),
        (D("-2.339396771999999999999999980"), D("0.01"), "-2.34"),
        (D("1.5"), 2, "1.50"),
        (D("1E+3"), None, "1000"),
        (D("0.00012"), None, "0.00012"),
        (D("123.45"), D("0.5"), "123.4"),  # one place; half-even
        (D("0.125"), 2, "0.12"),
        (D("0.135"), 2, "0.14"),
        (D("60000"), D("0.01"), "60000.00"),
        (D("0.000123456"), D("0.00001"), "0.00012"),
        (D("12345678901234567890123456789.126"), 2, "12345678901234567890123456789.13"),
        (D("1.23"), D("10"), "1"),
    ],
)
def test_format_amount(value: D, places: int | D | None, shown: str) -> None:
    assert format_amount(value, places) == shown


def test_places_of_an_increment() -> None:
    assert [places_of(D(s)) for s in ("0.01", "0.00001", "0.5", "1", "10", "0.010")] == [
        2, 5, 1, 0, 0, 2
    ]  # fmt: skip
