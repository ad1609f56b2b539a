"""What the CLI shows people: numbers (:func:`format_amount`), option values, tables."""

from __future__ import annotations

import argparse
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.cli.args import decimal_arg
from tradebus.cli.main import main
from tradebus.cli.tables import render_table
from tradebus.common.money import format_amount, format_price, format_qty


@pytest.mark.parametrize(
    ("value", "kwargs", "shown"),
    [
        (Decimal("0E-8"), {}, "0"),
        (Decimal("-2.339396771999999999999999980"), {}, "-2.3393968"),
        (Decimal("-0.00000001"), {"places": 4}, "0.0000"),
        (Decimal("98.125"), {"step": Decimal("0.01")}, "98.12"),
        (Decimal("98.135"), {"step": "0.01"}, "98.14"),
        (Decimal("0.01"), {"step": Decimal("0.00001")}, "0.01000"),
        (Decimal("12345.6"), {"places": 2, "grouping": True}, "12,345.60"),
        (Decimal("1E+3"), {}, "1000"),
        (Decimal("123456789.123"), {}, "123456789"),
        (None, {}, "-"),
        ("n/a", {}, "n/a"),
        ("1.50000000", {}, "1.5"),
        (7, {"places": 1}, "7.0"),
    ],
)
def test_format_amount(value: object, kwargs: dict[str, object], shown: str) -> None:
    assert format_amount(value, **kwargs) == shown  # type: ignore[arg-type]


def test_price_and_qty_use_the_market_increments() -> None:
    assert format_price(Decimal("64123.456789"), Decimal("0.01")) == "64123.46"
    assert format_qty(Decimal("0.0100000000"), Decimal("0.00001")) == "0.01000"
    assert format_price(Decimal("64123.456789")) == "64123.457"  # 8 significant digits


@given(st.decimals(allow_nan=False, allow_infinity=False, places=12, max_value=10**9, min_value=-(10**9)))
def test_format_amount_is_plain_and_close(value: Decimal) -> None:
    shown = format_amount(value)
    assert "E" not in shown and "e" not in shown and shown != "-0"
    assert len(shown.lstrip("-").replace(".", "").lstrip("0")) <= 10  # 8 digits, never 28
    if value:
        assert abs(Decimal(shown) - value) <= abs(value) * Decimal("1e-7")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "'abc' is not a number"),
        ("nan", "'nan' is not a finite number"),
        ("0", "'0' must be > 0"),
        ("-1.5", "'-1.5' must be > 0"),
    ],
)
def test_decimal_options_name_the_value(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        decimal_arg()(text)
    assert decimal_arg()(" 0.010 ") == Decimal("0.010")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--qty", "abc"], "argument --qty: 'abc' is not a number"),
        (["--qty", "1", "--price", "1e"], "argument --price: '1e' is not a number"),
        (["--qty", "-3"], "argument --qty: '-3' must be > 0"),
    ],
)
def test_intent_place_names_a_bad_number(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["intent", "place", "--user", "alice", "--account", "a", "--symbol", "BTCUSDT"]
    with pytest.raises(SystemExit) as exit_:
        main([*base, "--side", "buy", *argv, "--nats-url", "nats://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


def test_plain_table_is_deterministic_text() -> None:
    rows = [("alice-btc", "added", "1"), ("b", "changed", "-2.5"), ("c", "-", "-")]
    assert render_table(["BOT", "CHANGE", "N"], rows, terminal=False).splitlines() == [
        "BOT        CHANGE      N",
        "---------- -------- ----",
        "alice-btc  added       1",
        "b          changed  -2.5",
        "c          -           -",
    ]
    assert "\x1b" not in render_table(["A"], [("x",)], terminal=False)


def test_terminal_table_has_style_and_no_wrapping() -> None:
    shown = render_table(["BOT", "N"], [("x" * 300, "1")], terminal=True)
    assert "\x1b[1m" in shown and "x" * 300 in shown
