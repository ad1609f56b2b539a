"""``tradebus backtest`` on every recorded file: ladder, martingale and volume on each one,
spread on the BTC/ETH pairs (tick level and 4-hour bars).

Each run goes through the command's own code (``tradebus.cli.backtest.run``)
with a params file, writes ``fills.csv``, ``summary.json`` and ``report.png``,
and must read every event of its files (the readers' count), trade where the
data lets it (every run on trades or bars fills at least one order), and
balance: the final position is what its fills add up to.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from tradebus.cli.backtest import add_parser, run
from tradebus.feeds.readers import estimate_events

BINANCE = [
    "binance-spot_{s}_rawfeed_2024-08-08_2354-2400Z.txt.gz",
    "binance-spot_{s}_rawfeed_2024-08-09_0000-0005Z.txt.gz",
]
# name, files, format, symbol, base, quote, a fill is expected
SETS = {
    "binance-btc": (
        [f.format(s="BTCUSDT") for f in BINANCE],
        "binance-raw",
        "BTCUSDT",
        "BTC",
        "USDT",
        True,
    ),
    "binance-eth": (
        [f.format(s="ETHUSDT") for f in BINANCE],
        "binance-raw",
        "ETHUSDT",
        "ETH",
        "USDT",
        True,
    ),
    "tardis-quotes": (
        ["binance-futures_BTCUSDT_quotes_2020-02-22_0000-0004Z.csv.gz"],
        "tardis-quotes",
        "BTCUSDT",
        "BTC",
        "USDT",
        False,  # quotes only: the trades-only fill model fills nothing
    ),
    "ftx-1m": (
        ["ftx_BTC-PERP_1m_2021-12-31_2022-02-01.csv.gz"],
        "ohlcv-csv",
        "BTC-PERP",
        "BTC",
        "USD",
        True,
    ),
    "coinbase-btc-4h": (
        ["coinbase_BTC-USD_4h_2016-05-18_2025-10-28.json.gz"],
        "coinbase-candles",
        "BTC-USD",
        "BTC",
        "USD",
        True,
    ),
    "coinbase-eth-4h": (
        ["coinbase_ETH-USD_4h_2016-05-18_2025-10-28.json.gz"],
        "coinbase-candles",
        "ETH-USD",
        "ETH",
        "USD",
        True,
    ),
}
STRATEGIES = {
    "ladder": {
        "total_quote": "2000",
        "order_count": 5,
        "max_drop_pct": "0.3",
        "take_profit_pct": "0.1",
    },
    "martingale": {
        "base_quote": "300",
        "safety_quote": "200",
        "max_safety_orders": 4,
        "price_deviation_pct": "0.5",
        "step_scale": "1.5",
        "volume_scale": "1.5",
        "take_profit_pct": "0.5",
        "stop_loss_pct": "10",
        "cooldown_seconds": "20",
    },
    "volume": {
        "single_trade_quote": "100",
        "trade_interval_seconds": "5",
        "buy_offset_pct": "0.01",
        "sell_profit_pct": "0.02",
        "target_volume": "5000",
        "max_open_sells": 5,
    },
}
SPREAD = {
    "leg_quote": "1000",
    "entry_spread_pct": "0.03",
    "adds": [{"spread_pct": "0.06", "multiplier": "1"}, {"spread_pct": "0.1", "multiplier": "2"}],
    "take_profit": {"mode": "reversion", "exit_spread_pct": "0.015"},
    "stop_loss_pct": "5",
}


def write_params(path: Path, params: dict) -> Path:
    path.write_text(json.dumps(params))  # JSON is YAML
    return path


def single_market(strategy: str, symbol: str, base: str, quote: str) -> dict:
    """The test parameters of ``strategy`` on one market (0.01 tick, 0.00001 step, fees of
    1 and 2 bps, 100,000 of ``quote`` to start with)."""
    return {
        **STRATEGIES[strategy],
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "tick_size": "0.01",
        "step_size": "0.00001",
        "maker_fee_bps": "1",
        "taker_fee_bps": "2",
        "balances": {quote: "100000"},
    }


def run_backtest(
    tmp_path: Path, strategy: str, params: dict, paths: list[Path], fmt: str, *extra: str
) -> tuple[int, str, Path]:
    """``tradebus backtest`` of ``strategy`` with ``params`` (written under ``tmp_path``)
    on the ``paths`` of format ``fmt``: exit status, output, and its ``--out`` folder."""
    out = tmp_path / "out"
    args = ["--strategy", strategy, "--params", str(write_params(tmp_path / "p.yaml", params))]
    for p in paths:
        args += ["--data", str(p)]
    code, text = backtest([*args, "--format", fmt, "--out", str(out), *extra])
    return code, text, out


def backtest(args: list[str]) -> tuple[int, str]:
    """``tradebus backtest ARGS`` in this process: exit status and output."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = run(parser.parse_args(["backtest", *args]))
    return code, out.getvalue()


def check_outputs(out: Path, expected_events: int, fills_expected: bool) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] == expected_events
    with open(out / "fills.csv", newline="") as f:
        fills = list(csv.DictReader(f))
    assert len(fills) == summary["fills"]
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    if fills_expected:
        assert fills, summary
    for key in COMPARISON:
        assert key in summary, key
    if summary["days"] < 2:
        assert summary["sharpe"] is None and summary["sortino"] is None
    return summary


COMPARISON = (
    "win_rate_pct",
    "profit_factor",
    "sharpe",
    "sortino",
    "max_drawdown_pct",
    "max_drawdown_peak_ts",
    "max_drawdown_trough_ts",
    "max_drawdown_recovery_ts",
    "exposure_pct",
    "buy_and_hold_return_pct",
    "buy_and_hold_equity",
)
"""The figures runs are compared by (docs/backtest.md), in every summary."""


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("dataset", sorted(SETS))
def test_every_single_market_strategy_on_every_file(
    strategy: str, dataset: str, data_dir: Path, tmp_path: Path
) -> None:
    files, fmt, symbol, base, quote, trades = SETS[dataset]
    paths = [data_dir / f for f in files]
    params = single_market(strategy, symbol, base, quote)
    code, text, out = run_backtest(tmp_path, strategy, params, paths, fmt)
    assert code == 0, text
    summary = check_outputs(out, estimate_events(paths, fmt, symbol), trades)
    assert D(summary["final_position"]) == D(summary["buy_qty"]) - D(summary["sell_qty"])


@pytest.mark.parametrize("pair", ["binance-tick", "coinbase-4h"])
def test_spread_on_the_btc_eth_pair(pair: str, data_dir: Path, tmp_path: Path) -> None:
    if pair == "binance-tick":
        symbols, fmt = ("BTCUSDT", "ETHUSDT"), "binance-raw"
        paths = [data_dir / f.format(s=s) for s in symbols for f in BINANCE]
        quote = "USDT"
    else:
        symbols, fmt = ("BTC-USD", "ETH-USD"), "coinbase-candles"
        paths = [data_dir / SETS["coinbase-btc-4h"][0][0], data_dir / SETS["coinbase-eth-4h"][0][0]]
        quote = "USD"
    market = {"tick_size": "0.01", "step_size": "0.00001", "quote": quote}
    params = {
        **SPREAD,
        "symbol_a": symbols[0],
        "symbol_b": symbols[1],
        "markets": {
            symbols[0]: {**market, "base": "BTC"},
            symbols[1]: {**market, "base": "ETH"},
        },
        "maker_fee_bps": "1",
        "taker_fee_bps": "2",
        "balances": {quote: "100000"},
    }
    code, text, out = run_backtest(tmp_path, "spread", params, paths, fmt)
    assert code == 0, text
    expected = (
        sum(estimate_events(paths, fmt, s) for s in symbols)
        if fmt == "binance-raw"
        else sum(estimate_events([p], fmt) for p in paths)
    )
    check_outputs(out, expected, fills_expected=True)


def test_nine_years_of_bars_give_every_figure(data_dir: Path, tmp_path: Path) -> None:
    files, fmt, symbol, base, quote, _ = SETS["coinbase-btc-4h"]
    params = single_market("ladder", symbol, base, quote)
    code, text, out = run_backtest(
        tmp_path, "ladder", params, [data_dir / files[0]], fmt, "--no-chart"
    )
    assert code == 0, text
    s = json.loads((out / "summary.json").read_text())
    assert s["days"] > 3400 and s["daily_returns"] > 3000
    assert s["sharpe"] is not None and s["sortino"] is not None
    assert s["cycles_closed"] > 0 and 0 <= s["win_rate_pct"] <= 100
    assert D(s["gross_profit"]) - D(s["gross_loss"]) <= D(s["realized_pnl"]) + D("1e-9")
    assert s["first_ts"] <= s["max_drawdown_peak_ts"] <= s["max_drawdown_trough_ts"]
    assert 0 < s["exposure_pct"] <= 100
    # 2016-05-18 04:00 opens at 456.16; 2025-10-28 00:00's bar closes at 113,912.05
    assert (s["buy_and_hold_first_price"], s["buy_and_hold_last_price"]) == ("456.16", "113912.05")
    assert s["buy_and_hold_return_pct"] == round((113912.05 / 456.16 - 1) * 100, 4)
    for label in ("win rate", "profit factor", "Sharpe", "Sortino", "max drawdown", "exposure"):
        assert label in text
    assert "buy and hold" in text and "+24,871.95 %" in text
    assert "UTC" in text and "Traceback" not in text


def test_a_symbol_the_data_does_not_hold_is_refused_before_the_run(
    data_dir: Path, tmp_path: Path
) -> None:
    files, fmt, _, base, quote, _ = SETS["binance-btc"]
    params = single_market("ladder", "DOGEUSDT", base, quote)
    paths = [data_dir / f for f in files]
    code, text, out = run_backtest(tmp_path, "ladder", params, paths, fmt)
    assert code == 2, text
    assert "no events of DOGEUSDT" in text
    btc = estimate_events(paths, fmt, "BTCUSDT")
    assert f"symbols in the data: BTCUSDT ({btc:,} events)" in text
    assert "0 events" not in text and "Traceback" not in text
    assert not out.exists()  # nothing ran
