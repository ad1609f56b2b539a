"""A backtest's outputs for people: the sweep's directory names and ranking, and the charts'
axes (time, log scale, fills, buy-and-hold, spread), read from the matplotlib objects."""

from __future__ import annotations

import argparse
import csv
import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt

from tests.unit.test_backtest_engine import PARAMS, PRICES, S, _tardis, run
from tradebus.backtest.accounting import Result, Sample
from tradebus.backtest.chart import TIME_LABEL, ChartFill, chart_figure
from tradebus.backtest.report import report_figure
from tradebus.backtest.sweep import (
    combo_dir,
    objective_value,
    parse_sweeps,
    rank,
    run_sweep,
)
from tradebus.cli import backtest as command

T0 = 1_723_161_254 * S  # 2024-08-08 23:54:14 UTC


def test_directory_names_have_no_equals_or_commas() -> None:
    assert combo_dir({"levels": "5", "step": "0.5"}, 1, 4) == "001-levels_5-step_0.5"
    assert combo_dir({"path": "a/b=c,d"}, 12, 40) == "012-path_a_b_c_d"
    assert combo_dir({"n": "-1"}, 7, 1200) == "0007-n_-1"


def _summary(pnl: str, **figures: Any) -> dict[str, Any]:
    return {"realized_pnl": pnl, "unrealized_pnl": "0", **figures}


def test_ranking_by_each_objective() -> None:
    rows = [
        ({"k": "1"}, _summary("5", sharpe=None, max_drawdown_pct=3.0, profit_factor=2.0)),
        ({"k": "2"}, _summary("9", sharpe=0.5, max_drawdown_pct=None, profit_factor=None)),
        (
            {"k": "3"},
            _summary("-1", sharpe=1.5, max_drawdown_pct=1.0, profit_factor=None, gross_profit="4"),
        ),
    ]

    def order(objective: str) -> list[str]:
        return [c["k"] for _, c, _ in rank(rows, objective)]

    assert order("pnl") == ["2", "1", "3"]
    assert order("sharpe") == ["3", "2", "1"]  # n/a last
    assert order("drawdown") == ["2", "3", "1"]  # no drawdown (None) is 0 %: first
    # won without a loss is the best profit factor; no closed cycle is n/a (last)
    assert order("profit_factor") == ["3", "1", "2"]
    assert objective_value(rows[2][1], "profit_factor") == float("inf")
    with pytest.raises(ValueError, match="--objective bogus"):
        objective_value(rows[0][1], "bogus")


def test_a_sweep_writes_named_directories_an_index_and_a_ranking(tmp_path: Path) -> None:
    data = _tardis(tmp_path / "trades.csv", PRICES)
    axes = parse_sweeps(["take_profit_pct=5,50", "order_count=1,2"])
    out = tmp_path / "out"
    rows = run_sweep("ladder", PARAMS, axes, [data], "tardis-trades", out, chart=False)
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == [
        "001-take_profit_pct_5-order_count_1",
        "002-take_profit_pct_5-order_count_2",
        "003-take_profit_pct_50-order_count_1",
        "004-take_profit_pct_50-order_count_2",
    ]
    index = json.loads((out / "index.json").read_text())
    assert index["002-take_profit_pct_5-order_count_2"] == {
        "take_profit_pct": "5",
        "order_count": "2",
    }
    with (out / "ranking.csv").open() as f:
        ranking = list(csv.DictReader(f))
    totals = [D(s["realized_pnl"]) + D(s["unrealized_pnl"]) for _, s in rows]
    assert [D(r["objective"]) for r in ranking] == sorted(totals, reverse=True)
    assert [r["rank"] for r in ranking] == ["1", "2", "3", "4"]
    assert all(json.loads((out / r["dir"] / "summary.json").read_text()) for r in ranking)
    best = max(range(4), key=lambda i: totals[i])
    assert ranking[0]["dir"] == names[best]
    assert ranking[0]["take_profit_pct"] == rows[best][0]["take_profit_pct"]


def test_the_command_prints_the_ranking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps(PARAMS))
    data = _tardis(tmp_path / "trades.csv", PRICES)
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    args = ["--strategy", "ladder", "--params", str(params), "--data", str(data)]
    args += ["--format", "tardis-trades", "--out", str(tmp_path / "out"), "--no-chart"]
    args += ["--sweep", "take_profit_pct=5,50", "--objective", "drawdown", "--workers", "1"]
    assert command.run(parser.parse_args(["backtest", *args])) == 0
    text = capsys.readouterr().out
    assert "sweep ranked by drawdown" in text
    assert "ranking.csv" in text and "index.json" in text
    with (tmp_path / "out" / "ranking.csv").open() as f:
        ranking = list(csv.DictReader(f))
    assert [float(r["objective"]) for r in ranking] == sorted(
        float(r["objective"]) for r in ranking
    )


def _is_time_axis(ax: Any) -> bool:
    return ax.get_xlabel() == TIME_LABEL and isinstance(
        ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter
    )


def test_the_report_has_clock_time_fills_by_side_and_buy_and_hold() -> None:
    result = run()
    fig = report_figure(result)
    try:
        price_ax, eq_ax, pos_ax, text_ax = fig.axes
        for ax in (price_ax, eq_ax, pos_ax):
            assert _is_time_axis(ax)
        line = price_ax.get_lines()[0]
        assert np.asarray(line.get_xdata()).dtype == np.dtype("datetime64[ns]")
        assert np.asarray(line.get_xdata())[0] == np.datetime64(1, "s")  # trade 1, 1 s
        assert price_ax.get_yscale() == "linear"  # 89..100: no log scale
        labels = [c.get_label() for c in price_ax.collections]
        assert labels == ["buys (3)", "sells (1)"]
        eq_labels = [ln.get_label() for ln in eq_ax.get_lines()]
        assert eq_labels == ["equity (strategy)", "buy and hold BTCUSDT"]
        hold = eq_ax.get_lines()[1].get_ydata()
        assert hold[0] == pytest.approx(10000) and hold[-1] == pytest.approx(9400)
        shown = text_ax.texts[0].get_text()
        assert "win rate" in shown and "buy and hold" in shown and "Sharpe" in shown
    finally:
        plt.close(fig)


def test_a_wide_price_range_is_drawn_on_a_log_scale() -> None:
    result = run(["100", "95", "94.99", "89", "500", "2000", "5000"])
    fig = report_figure(result)
    try:
        assert fig.axes[0].get_yscale() == "log"
        assert "(log scale)" in fig.axes[0].get_title()
    finally:
        plt.close(fig)


def test_the_spread_report_plots_both_legs_and_the_spread() -> None:
    one = run()
    ts = [T0 + i * S for i in range(4)]
    samples = Sample(
        ts=ts,
        prices=[(D(100), D(50)), (D(101), D(50)), (D(102), D(49)), (D(100), D(51))],
        equity=[D(10000)] * 4,
        position=[D(0)] * 4,
    )
    fig = report_figure(Result([], samples, one.summary, ("AAA", "BBB")))
    try:
        spread_ax = fig.axes[2]
        lines = {ln.get_label(): ln for ln in spread_ax.get_lines()}
        assert set(lines) >= {"AAA (chg_a)", "BBB (chg_b)", "spread chg_a - chg_b"}
        # chg_a - chg_b at the third sample: (102/100 - 1) - (49/50 - 1) = 2 % + 2 %
        assert lines["spread chg_a - chg_b"].get_ydata()[2] == pytest.approx(4.0)
        assert _is_time_axis(spread_ax)
        assert fig.axes[0].get_title().startswith("AAA") and fig.axes[1].get_title()[:3] == "BBB"
    finally:
        plt.close(fig)


def test_the_demo_chart_ties_fills_to_their_bot_and_keeps_them_apart() -> None:
    prices = {"BTCUSDT": [(T0 + t * S, D(100 + t)) for t in range(60)]}
    fills = [
        ChartFill("bot-a", "BTCUSDT", "buy", D(110), D(1), D(0), T0 + 10 * S),
        ChartFill("bot-b", "BTCUSDT", "sell", D(110), D(1), D(0), T0 + 10 * S),
    ]
    fig = chart_figure(fills, prices)
    try:
        price_ax, pnl_ax = fig.axes
        assert _is_time_axis(price_ax) and _is_time_axis(pnl_ax)
        by_label = {c.get_label(): c for c in price_ax.collections}
        assert set(by_label) == {"bot-a buys (1)", "bot-b sells (1)"}
        buy, sell = by_label["bot-a buys (1)"], by_label["bot-b sells (1)"]
        assert tuple(buy.get_facecolor()[0]) != tuple(sell.get_facecolor()[0])  # per bot
        # same time, same price: the buy is drawn under it, the sell over it
        fig.canvas.draw()
        y_buy = buy.get_offset_transform().transform(buy.get_offsets())[0][1]
        y_sell = sell.get_offset_transform().transform(sell.get_offsets())[0][1]
        assert y_sell - y_buy > 5
        assert [ln.get_label() for ln in pnl_ax.get_lines()][:2] == ["bot-a", "bot-b"]
    finally:
        plt.close(fig)
