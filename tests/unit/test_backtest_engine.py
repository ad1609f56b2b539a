"""``tradebus backtest``'s engine: the paper fill model around the live ladder core.

The scenario below is computed by hand from shared/STRATEGIES.md §1 and the
paper fill model (a ladder of 2 x 100 USDT from 100 down 10 %, take-profit 5 %,
maker 10 bps, taker 20 bps).
"""

from __future__ import annotations

import csv
import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from tradebus.backtest.engine import Backtest, run_backtest
from tradebus.backtest.report import FILLS_HEADER, write_outputs
from tradebus.backtest.setup import SetupError, make_setup
from tradebus.backtest.sweep import combinations, parse_sweeps, run_sweep
from tradebus.cli import backtest as command
from tradebus.common.messages import Intent, OrderEvent, OrderRejected, QuoteTick, TradeTick

S = 1_000_000_000
PARAMS = {
    "symbol": "BTCUSDT",
    "tick_size": "0.01",
    "step_size": "0.001",
    "maker_fee_bps": "10",
    "taker_fee_bps": "20",
    "balances": {"USDT": "10000"},
    "total_quote": "200",
    "order_count": 2,
    "max_drop_pct": "10",
    "take_profit_pct": "5",
}
PRICES = ["100", "95", "94.99", "89", "97", "98", "99", "94"]


def trade(i: int, price: str, symbol: str = "BTCUSDT") -> TradeTick:
    return TradeTick(
        venue="backtest",
        symbol=symbol,
        unified_symbol=symbol,
        price=D(price),
        size=D(1),
        aggressor=None,
        trade_id=str(i),
        ts_event=i * S,
        ts_recv=i * S,
        ts_init=i * S,
    )


def events(prices: list[str] = PRICES) -> list[TradeTick]:
    return [trade(i, p) for i, p in enumerate(prices, 1)]


def run(prices: list[str] = PRICES, **overrides: object):
    return run_backtest(make_setup("ladder", {**PARAMS, **overrides}), events(prices))


def test_hand_computed_ladder_cycle() -> None:
    result = run()
    got = [
        (f.ts_ns // S, f.order_id, f.side, f.price, f.qty, f.fee, f.liquidity) for f in result.fills
    ]
    assert got == [
        # event 1 (100) places b0 95.00 x 1.052 and b1 90.00 x 1.111; 95 is not strictly below
        (3, "bt:1.1:b0", "buy", D("95.00"), D("1.052"), D("0.09994"), "maker"),
        (4, "bt:1.1:b1", "buy", D("90.00"), D("1.111"), D("0.09999"), "maker"),
        # avg 199.93 / 2.163 = 92.43; 97 is 4.94 % above it, 98 is 6.02 %: on event 6 the
        # bot sells at floor_tick(98 * 0.995) = 97.51, marketable: it fills at the NEXT
        # trade's price (99 on event 7), not at 98 (event 6 placed it)
        (7, "bt:1.1:s1", "sell", D("99"), D("2.163"), D("0.428274"), "taker"),
        # event 7 starts cycle 2 at 99: b0 = floor_tick(99 - 4.95) = 94.05 x 1.063
        (8, "bt:1.2:b0", "buy", D("94.05"), D("1.063"), D("0.09997515"), "maker"),
    ]
    s = result.summary
    assert s["events"] == 8 and s["fills"] == 4
    assert s["buy_qty"] == "3.226" and s["sell_qty"] == "2.163"
    assert D(s["fees"]) == D("0.72817915")
    # rule 6: 214.137 - 199.93 - (0.09994 + 0.09999 + 0.428274); cycle 2's fee is not realized
    assert D(s["realized_pnl"]) == D("13.578796")
    assert s["final_position"] == "1.063"
    assert s["cycles_completed"] == 1
    # equity trough on event 4: 2.163 x 89 - 199.93 - 0.19993 = -7.62293 below the start
    assert D(s["max_drawdown"]) == D("7.62293")
    assert D(s["unrealized_pnl"]) == D("1.063") * (D(94) - D("94.05")) - D("0.09997515")


def test_an_order_is_not_filled_by_the_event_that_placed_it() -> None:
    # the first trade at 100 places b0 at 95; the next one, at 94, fills it at its limit
    # (the take-profit sell of the scenario above shows the same for a marketable order)
    result = run(["100", "94"])
    assert [(f.ts_ns // S, f.price) for f in result.fills] == [(2, D("95.00"))]
    assert run(["100"]).fills == []


def test_quotes_fill_nothing_but_move_time() -> None:
    quote = QuoteTick(
        venue="backtest",
        symbol="BTCUSDT",
        unified_symbol="BTCUSDT",
        bid=D("80"),
        bid_size=D(1),
        ask=D("80.02"),
        ask_size=D(1),
        ts_event=2 * S,
        ts_recv=2 * S,
        ts_init=2 * S,
    )
    setup = make_setup("ladder", PARAMS)
    result = run_backtest(setup, [trade(1, "100"), quote, trade(3, "94.50")])
    assert [(f.ts_ns // S, f.order_id) for f in result.fills] == [(3, "bt:1.1:b0")]
    assert result.summary["quotes"] == 1


def test_a_refused_order_is_rejected_to_the_bot() -> None:
    bt = Backtest(make_setup("ladder", {**PARAMS, "balances": {"USDT": "150"}}))
    heard: list[object] = []
    core_event = bt.bot.on_order_event

    def spy(event: OrderEvent) -> list[Intent]:
        heard.append(event)
        return core_event(event)

    bt.bot.on_order_event = spy  # type: ignore[method-assign]
    bt.feed([trade(1, "100")])
    rejected = [e for e in heard if isinstance(e, OrderRejected)]
    assert [(e.intent_id, e.reason) for e in rejected] == [("bt:1.1:b1", "insufficient_balance")]
    assert bt.summary(1.0)["orders_rejected"] == 1


def test_setup_errors_name_the_field() -> None:
    with pytest.raises(SetupError) as info:
        make_setup("ladder", {**PARAMS, "total_quote": "-1", "tick_size": "0"})
    assert ("total_quote", "must be > 0") in info.value.problems
    assert ("tick_size", "must be > 0") in info.value.problems
    with pytest.raises(SetupError, match="bogus: unknown parameter of ladder"):
        make_setup("ladder", {**PARAMS, "bogus": 1})
    with pytest.raises(SetupError, match="balances"):
        make_setup("ladder", {k: v for k, v in PARAMS.items() if k != "balances"})


def test_outputs_are_written_and_deterministic(tmp_path: Path) -> None:
    write_outputs(run(), tmp_path / "a")
    write_outputs(run(), tmp_path / "b", chart=False)
    fills = (tmp_path / "a" / "fills.csv").read_text()
    assert fills.startswith(FILLS_HEADER)
    assert fills.splitlines()[1] == "3000000000,bt:1.1:b0,buy,95.00,1.052,0.09994,maker"
    assert fills == (tmp_path / "b" / "fills.csv").read_text()
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    for key in (
        "events",
        "fills",
        "buy_qty",
        "sell_qty",
        "fees",
        "realized_pnl",
        "final_position",
        "cycles_completed",
        "max_drawdown",
        "events_per_second",
    ):
        assert key in summary
    assert (tmp_path / "a" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _tardis(path: Path, prices: list[str]) -> Path:
    rows = ["exchange,symbol,timestamp,local_timestamp,id,side,price,amount"]
    rows += [
        f"binance,BTCUSDT,{i * 10**6},{i * 10**6},{i},buy,{p},1" for i, p in enumerate(prices, 1)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_sweep_writes_one_row_per_combination(tmp_path: Path) -> None:
    data = _tardis(tmp_path / "trades.csv", PRICES)
    axes = parse_sweeps(["take_profit_pct=5,50", "order_count=1,2"])
    assert len(combinations(axes)) == 4
    rows = run_sweep("ladder", PARAMS, axes, [data], "tardis-trades", tmp_path / "out", chart=False)
    with (tmp_path / "out" / "sweep.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [(r["take_profit_pct"], r["order_count"]) for r in table] == [
        ("5", "1"),
        ("5", "2"),
        ("50", "1"),
        ("50", "2"),
    ]
    assert len(rows) == 4
    by = {(r["take_profit_pct"], r["order_count"]): r for r in table}
    assert by[("5", "2")]["cycles_completed"] == "1"  # the hand-computed run above
    assert D(by[("5", "2")]["realized_pnl"]) == D("13.578796")
    assert by[("50", "2")]["cycles_completed"] == "0"
    assert (tmp_path / "out" / "002-take_profit_pct_5-order_count_2" / "fills.csv").is_file()


def test_command_reports_a_malformed_data_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps(PARAMS))  # JSON is YAML
    data = _tardis(tmp_path / "trades.csv", PRICES)
    data.write_text(data.read_text() + "binance,BTCUSDT,99,99,9,buy,not-a-price,1\n")
    args = [
        "--strategy",
        "ladder",
        "--params",
        str(params),
        "--data",
        str(data),
        "--format",
        "tardis-trades",
        "--out",
        str(tmp_path / "out"),
    ]
    import argparse

    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    assert command.run(parser.parse_args(["backtest", *args])) == 2
    assert f"{data}:10:" in capsys.readouterr().err
    params.write_text(json.dumps({**PARAMS, "take_profit_pct": "0"}))
    assert command.run(parser.parse_args(["backtest", *args])) == 2
    assert "take_profit_pct: must be > 0" in capsys.readouterr().err
