"""What the CLI shows people: numbers (:func:`format_amount`), option values, tables."""

from __future__ import annotations

import argparse
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebus.cli.args import decimal_arg
from tradebus.cli.botctl import bots_table, status_block
from tradebus.cli.figures import RECON_DIGITS, format_figure
from tradebus.cli.main import main
from tradebus.cli.summary import BotSummary, render_bots
from tradebus.cli.tables import render_table
from tradebus.common.messages import BotStatus
from tradebus.common.money import format_amount, format_positions, format_price, format_qty


@pytest.mark.parametrize(
    ("value", "kwargs", "shown"),
    [
        (Decimal("0E-8"), {}, "0"),
        (Decimal("-2.339396771999999999999999980"), {}, "-2.3393968"),
        (Decimal("-0.00000001"), {"places": 4}, "0.0000"),
        (Decimal("98.125"), {"places": Decimal("0.01")}, "98.12"),
        (Decimal("98.135"), {"places": Decimal("0.01")}, "98.14"),
        (Decimal("0.01"), {"places": Decimal("0.00001")}, "0.01000"),
        (Decimal("123.45"), {"places": Decimal("0.5")}, "123.4"),
        (Decimal("1.23"), {"places": Decimal("10")}, "1"),
        (
            Decimal("12345678901234567890123456789.126"),
            {"places": 2},
            "12345678901234567890123456789.13",
        ),
        (Decimal("12345678901234567890123456789.126"), {}, "12345678901234567890123456789"),
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


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=12, max_value=10**9, min_value=-(10**9)
    )
)
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


def _status(**fields: object) -> BotStatus:
    base: dict[str, object] = {
        "bot": "alice-btc",
        "user": "alice",
        "account": "alice-paper",
        "strategy": "ladder",
        "venue": "binance",
        "symbol": "BTCUSDT",
        "phase": "waiting",
    }
    return BotStatus(**{**base, **fields})  # type: ignore[arg-type]


def test_bot_figures_use_the_market_precision_never_internals() -> None:
    status = _status(
        position=Decimal("0.0100000000"),
        avg_price=Decimal("64123.456789"),
        last_price=Decimal("64000.1"),
        unrealized_pnl=Decimal("-2.339396771999999999999999980"),
        realized_pnl=Decimal("0E-8"),
        take_profit_progress_pct=Decimal("33.333333333"),
        details={"worst_case_capital": "2000", "base_price": "64123.456789", "levels": 4},
    )
    # BTCUSDT on binance: tick 0.01, step 0.00001 (deploy/config/markets.yaml)
    row = bots_table([status]).splitlines()[2].split()
    assert row[9:14] == ["0.01000", "64123.46", "64000.10", "-2.3394", "0.0000"]
    block = dict(line.split(None, 1) for line in status_block(status).splitlines())
    assert block["position"] == "0.01000" and block["realized_pnl"] == "0.0000"
    assert block["unrealized_pnl"] == "-2.3394" and block["take_profit_progress_pct"] == "33.33"
    assert block["base_price"] == "64123.46" and block["worst_case_capital"] == "2000"
    assert block["levels"] == "4" and block["error"] == "-"
    text = status_block(status) + bots_table([status])
    assert "E-" not in text and "999999" not in text


def test_an_unknown_market_keeps_significant_digits() -> None:
    status = _status(symbol="NOPEUSDT", position=Decimal("1.234567891234"))
    assert format_figure("position", status.position, None) == "1.2345679"
    assert bots_table([status]).splitlines()[2].split()[9] == "1.2345679"


def test_positions_read_as_a_list() -> None:
    assert format_positions({"ETH": Decimal("1.50"), "BTC": Decimal("0.0100")}) == (
        "BTC 0.01, ETH 1.5"
    )
    assert format_positions({}) == "-"


def test_demo_summary_figures() -> None:
    row = BotSummary(
        user="alice",
        bot="alice-btc",
        symbol="BTCUSDT",
        orders=3,
        fills=2,
        avg_price=Decimal("64123.456789"),
        position=Decimal("0E-8"),
        realized_pnl=Decimal("-2.339396771999999999999999980"),
        unrealized_pnl=Decimal("0E-8"),
        fees=Decimal("0.0641234567"),
        state="stopped",
    )
    lines = render_bots([row]).splitlines()
    assert lines[2].split()[7:] == ["64123.46", "0.00000", "-2.3394", "0.0000", "0.0641"]
    assert lines[3].split() == ["total", "3", "2", "-2.3394", "0.0000", "0.0641"]


def test_a_spread_legs_details_use_their_own_markets() -> None:
    status = _status(
        strategy="spread",
        symbol="BTCUSDT/ETHUSDT",
        details={"BTCUSDT.avg_price": "61644.000000", "ETHUSDT.position": "0.37340000"},
    )
    block = dict(line.split(None, 1) for line in status_block(status).splitlines())
    assert block["BTCUSDT.avg_price"] == "61644.00"  # tick 0.01
    assert block["ETHUSDT.position"] == "0.3734"  # step 0.0001


def test_reconciliation_balances_keep_their_digits() -> None:
    assert format_amount(Decimal("17881.83704061730"), digits=RECON_DIGITS) == "17881.8370406173"
