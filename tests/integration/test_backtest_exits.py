"""``tradebus backtest`` with the exits on the recorded Coinbase BTC-USD 4-hour candles.

The rows of docs/strategies.md's backtest table marked ``*`` (BTC columns) are
run through the command's own code and must give the documented realized
P&L, cycles and max drawdown; and the fills must show each exit at work:

* ladder, no exit setting: every closed cycle gains (take-profit only);
* ``stop_loss_pct`` without restart: the bot stops after its first losing cycle;
* with ``restart_after_stop_loss``: losing cycles, and the bot trades on;
* ``trailing_take_profit_pct``: other sales than the plain take-profit's;
* martingale: without trailing every sale is a resting take-profit (``tp``
  legs); with it none rests and every sale is a trailing one (``tt`` legs).
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from decimal import Decimal as D
from pathlib import Path

import pytest
import yaml

from tests.integration.test_backtest_all_data import backtest, write_params

ROOT = Path(__file__).resolve().parents[2]
DATA = "coinbase_BTC-USD_4h_2016-05-18_2025-10-28.json.gz"
MARTINGALE = {
    "symbol": "BTC-USD",
    "base": "BTC",
    "quote": "USD",
    "tick_size": "0.01",
    "step_size": "0.00001",
    "maker_fee_bps": "10",
    "taker_fee_bps": "20",
    "balances": {"USD": "20000"},
    "base_quote": "1000",
    "safety_quote": "1000",
    "max_safety_orders": 5,
    "price_deviation_pct": "3",
    "step_scale": "1.5",
    "volume_scale": "1.5",
    "take_profit_pct": "4",
}
CENT = D("0.01")


def documented_rows() -> list[tuple[str, dict, D, int, D]]:
    """``(strategy, added settings, realized P&L, cycles, max drawdown)`` of the BTC
    columns of the table's rows marked ``*``."""
    text = (ROOT / "docs" / "strategies.md").read_text()
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or not cells[1].endswith("*"):
            continue
        settings = yaml.safe_load("{" + ", ".join(re.findall(r"`([^`]+)`", cells[1])) + "}")
        rows.append((cells[0], settings, D(cells[2]), int(cells[3]), D(cells[4])))
    return rows


def run(strategy: str, settings: dict, data_dir: Path, out: Path) -> tuple[dict, list[dict]]:
    """One backtest on the BTC-USD candles: its summary and fills."""
    if strategy == "ladder":
        params = yaml.safe_load((ROOT / "docs" / "backtest-ladder.yaml").read_text())
    else:
        params = dict(MARTINGALE)
    params.update(settings)
    args = ["--strategy", strategy, "--params", str(write_params(out.with_suffix(".yaml"), params))]
    args += ["--data", str(data_dir / DATA), "--format", "coinbase-candles"]
    code, text = backtest([*args, "--out", str(out), "--no-chart"])
    assert code == 0, text
    with open(out / "fills.csv", newline="") as f:
        fills = list(csv.DictReader(f))
    return json.loads((out / "summary.json").read_text()), fills


def closed_cycles(fills: list[dict]) -> list[D]:
    """Realized P&L of every cycle whose buys were all sold (order ids ``bt:1.<cycle>:<leg>``):
    proceeds - cost - fees, in cycle order."""
    cycles: dict[int, list[D]] = defaultdict(lambda: [D(0), D(0)])
    for f in fills:
        qty, price, fee = D(f["qty"]), D(f["price"]), D(f["fee"])
        held = cycles[int(f["order_id"].split(":")[1].split(".")[1])]
        sign = 1 if f["side"] == "sell" else -1
        held[0] -= sign * qty
        held[1] += sign * qty * price - fee
    return [pnl for _, (qty, pnl) in sorted(cycles.items()) if qty == 0]


def legs(fills: list[dict], side: str) -> set[str]:
    """The legs of ``side`` fills without their numbers (``tp3`` -> ``tp``)."""
    return {
        f["order_id"].rsplit(":", 1)[1].rstrip("0123456789") for f in fills if f["side"] == side
    }


@pytest.mark.slow  # make test-all: nine years of 4 h candles, several exits (about 20 s)
@pytest.mark.timeout(600)
def test_the_exits_on_nine_years_of_btc_give_the_documented_figures(
    data_dir: Path, tmp_path: Path
) -> None:
    rows = documented_rows()
    assert len(rows) == 6, rows
    runs = {}
    for i, (strategy, settings, pnl, cycles, drawdown) in enumerate(rows):
        summary, fills = run(strategy, settings, data_dir, tmp_path / f"run{i}")
        got = (
            D(summary["realized_pnl"]).quantize(CENT),
            summary["cycles_completed"],
            D(summary["max_drawdown"]).quantize(CENT),
        )
        assert got == (pnl, cycles, drawdown), (strategy, settings)
        runs[(strategy, tuple(sorted(settings)))] = (summary, fills, closed_cycles(fills))

    _, plain_fills, plain = runs[("ladder", ())]
    assert plain and min(plain) > 0  # take-profits only

    summary, _, stopped = runs[("ladder", ("stop_loss_pct",))]
    assert summary["phase"] == "stopped" and D(summary["final_position"]) == 0
    assert stopped[-1] < 0 and min(stopped[:-1]) > 0  # the first stop-loss ended it

    summary, _, restarted = runs[("ladder", ("restart_after_stop_loss", "stop_loss_pct"))]
    assert summary["phase"] != "stopped" and len(restarted) > len(stopped)
    assert sum(pnl < 0 for pnl in restarted) > 1

    _, trailing_fills, trailing = runs[("ladder", ("trailing_take_profit_pct",))]
    sales = [(f["ts_ns"], f["price"]) for f in trailing_fills if f["side"] == "sell"]
    plain_sales = [(f["ts_ns"], f["price"]) for f in plain_fills if f["side"] == "sell"]
    assert sales[0] != plain_sales[0] and min(trailing) > 0

    _, mg_plain, _ = runs[("martingale", ())]
    _, mg_trailing, _ = runs[("martingale", ("trailing_take_profit_pct",))]
    assert legs(mg_plain, "sell") == {"tp"}
    assert legs(mg_trailing, "sell") == {"tt"}
    assert {f["liquidity"] for f in mg_trailing if f["side"] == "sell"} == {"taker"}
