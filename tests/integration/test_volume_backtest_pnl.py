"""The volume loop's realized P&L per loop in ``tradebus backtest`` on recorded BTCUSDT data.

STRATEGIES.md §4 and fill-model rule 6: a loop (one buy and the sell of its
quantity) realizes that sell's proceeds minus that buy's cost minus both fees.
With 10 s intervals and sells 0.05 % above the buy, loops overlap on the 11
recorded minutes (a loop's buy fills while earlier loops' sells still rest):
the average cost of every open loop, which the volume bot used to book, gives
another figure, with inexact tails from its division.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from tests.support.data import BTC_RAW
from tradebus.backtest.engine import open_events, run_backtest
from tradebus.backtest.setup import make_setup
from tradebus.common.ids import cycle_of
from tradebus.common.positions import Position

PARAMS = {
    "symbol": "BTCUSDT",
    "base": "BTC",
    "quote": "USDT",
    "tick_size": "0.01",
    "step_size": "0.00001",
    "maker_fee_bps": "1",
    "taker_fee_bps": "2",
    "balances": {"USDT": "100000"},
    "single_trade_quote": "100",
    "trade_interval_seconds": "10",
    "buy_offset_pct": "0.01",
    "sell_profit_pct": "0.05",
    "target_volume": "1000000",
    "max_open_sells": 10,
}


def test_each_loop_realizes_its_own_sell_minus_its_own_buy(data_dir: Path) -> None:
    setup = make_setup("volume", PARAMS)
    result = run_backtest(setup, open_events(setup, [data_dir / f for f in BTC_RAW], "binance-raw"))
    loops: dict[str, dict[str, D]] = {}
    overlapped = False
    for f in result.fills:
        loop = loops.setdefault(cycle_of(f.order_id), {"buy": D(0), "sell": D(0), "fees": D(0)})
        loop[f.side] += f.qty * f.price
        loop["fees"] += f.fee
        if f.side == "buy":
            overlapped |= any(v["buy"] and not v["sell"] for k, v in loops.items() if v is not loop)
    closed = {k: v for k, v in loops.items() if v["sell"]}
    expected = sum((v["sell"] - v["buy"] - v["fees"] for v in closed.values()), D(0))
    assert overlapped and len(closed) >= 2 and len(closed) < len(loops)  # some stay open
    assert D(result.summary["realized_pnl"]) == expected
    assert result.summary["realized_pnl"] == str(expected)  # exact, no division tail
    average = Position()
    for f in result.fills:
        average.apply(f.side, f.qty, f.price, f.fee)  # type: ignore[arg-type]
    assert average.realized_pnl != expected  # the figure the bot used to book
    # the same money either way: only its split into realized and unrealized differs
    summary = result.summary
    pnl = expected + D(summary["unrealized_pnl"])
    assert D(summary["final_equity"]) == D(100_000) + pnl
    final = D(summary["final_price"])
    assert abs(average.realized_pnl + average.unrealized_pnl(final) - pnl) < D("1E-15")


def run_volume(data_dir: Path, **params: object) -> list[tuple[str, str, D, D]]:
    setup = make_setup("volume", {**PARAMS, **params})
    events = open_events(setup, [data_dir / f for f in BTC_RAW], "binance-raw")
    return [(f.order_id, f.side, f.price, f.qty) for f in run_backtest(setup, events).fills]


def test_a_backtest_is_a_group_of_one_and_pauses_on_market_time(data_dir: Path) -> None:
    """``max_concurrent_users``: the backtest's one bot always has its turn (the same
    fills); ``max_price_volatility_pct``: fewer buys, the same on every run."""
    plain = run_volume(data_dir, max_open_sells=100)
    assert run_volume(data_dir, max_open_sells=100, max_concurrent_users=2) == plain
    pause = {"max_price_volatility_pct": "0.05", "volatility_window_seconds": "30"}
    calm = run_volume(data_dir, max_open_sells=100, **pause)
    assert calm == run_volume(data_dir, max_open_sells=100, **pause)
    buys = [f for f in calm if f[1] == "buy"]
    assert 0 < len(buys) < len([f for f in plain if f[1] == "buy"])
