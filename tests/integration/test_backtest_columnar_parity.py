"""The columnar path of the backtest gives the per-event path's run, byte for byte.

For every recorded data set in the data directory and every strategy kind (ladder,
martingale, volume on each one-market set; spread on the BTC/ETH pairs), the run fed
:class:`~tradebus.backtest.columns.EventColumns` (:meth:`Backtest.feed_columns`: the
bulk screens, marks and samples) and the run fed the reader's ticks one by one
(:meth:`Backtest.feed`) give the same fills, chart samples and summary: the
``fills.csv`` and ``summary.json`` they write are the same bytes (the two wall-clock
figures of the summary aside). The columns come from the reader the command uses
(:func:`~tradebus.backtest.engine.market_events`: the fast ``binance-raw`` reader or
the parser) and, where one can be made, must give the reader's very ticks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_backtest_all_data import SETS, SPREAD, STRATEGIES, single_market
from tradebus.backtest.accounting import Result, encode_summary
from tradebus.backtest.columns import EventColumns
from tradebus.backtest.engine import market_events, open_events, run_backtest
from tradebus.backtest.report import write_fills
from tradebus.backtest.setup import make_setup

WALL_CLOCK = ("elapsed_seconds", "events_per_second")
ACTIVE_LADDER = {"max_drop_pct": "0.1", "take_profit_pct": "0.02", "no_fill_restart_minutes": "1"}
"""A ladder that fills and cycles on the tick data (and parks between its fills)."""


def outputs(result: Result, tmp: Path) -> tuple[bytes, bytes]:
    """``fills.csv`` and ``summary.json`` of a run, the wall-clock figures taken out."""
    summary = {k: v for k, v in result.summary.items() if k not in WALL_CLOCK}
    write_fills(result.fills, tmp / "fills.csv")
    return (tmp / "fills.csv").read_bytes(), encode_summary(summary)


def check_same(setup: Any, paths: list[Path], fmt: str, tmp: Path) -> Result:
    events = market_events(setup, paths, fmt)
    ticks = list(open_events(setup, paths, fmt))
    if isinstance(events, EventColumns):
        assert list(events.ticks()) == ticks  # the columns hold the reader's very ticks
    columnar = run_backtest(setup, events)
    plain = run_backtest(setup, ticks)
    (tmp / "a").mkdir(exist_ok=True)
    (tmp / "b").mkdir(exist_ok=True)
    assert columnar.fills == plain.fills
    assert columnar.samples == plain.samples
    assert outputs(columnar, tmp / "a") == outputs(plain, tmp / "b")
    return columnar


SLOW_SETS = {"ftx-1m", "coinbase-btc-4h", "coinbase-eth-4h"}
"""Sets whose per-event runs take over 20 s on a loaded 2-core machine (``make test-all``)."""


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SETS else n for n in sorted(SETS)],
)
def test_columnar_runs_match_per_event_runs_on_every_data_set(
    name: str, data_dir: Path, tmp_path: Path
) -> None:
    files, fmt, symbol, base, quote, fills_expected = SETS[name]
    paths = [data_dir / f for f in files]
    runs = [(s, single_market(s, symbol, base, quote)) for s in STRATEGIES]
    runs.append(("ladder", {**single_market("ladder", symbol, base, quote), **ACTIVE_LADDER}))
    filled = 0
    for n, (strategy, params) in enumerate(runs):
        out = tmp_path / str(n)
        out.mkdir()
        result = check_same(make_setup(strategy, params), paths, fmt, out)
        filled += len(result.fills)
    assert filled > 0 or not fills_expected


@pytest.mark.parametrize("pair", [pytest.param("binance", marks=pytest.mark.slow), "coinbase-4h"])
def test_spread_runs_match(pair: str, data_dir: Path, tmp_path: Path) -> None:
    """A two-market bot is fed the reader's ticks on both paths (no columns): the same."""
    if pair == "binance":
        paths = [data_dir / f.format(s=s) for s in ("BTCUSDT", "ETHUSDT") for f in SETS_RAW]
        fmt, a, b, quote = "binance-raw", "BTCUSDT", "ETHUSDT", "USDT"
    else:
        paths = [data_dir / SETS["coinbase-btc-4h"][0][0], data_dir / SETS["coinbase-eth-4h"][0][0]]
        fmt, a, b, quote = "coinbase-candles", "BTC-USD", "ETH-USD", "USD"
    market = {"tick_size": "0.01", "step_size": "0.00001", "quote": quote}
    params = {
        **SPREAD,
        "symbol_a": a,
        "symbol_b": b,
        "markets": {a: {**market, "base": "BTC"}, b: {**market, "base": "ETH"}},
        "maker_fee_bps": "1",
        "taker_fee_bps": "2",
        "balances": {quote: "100000"},
    }
    check_same(make_setup("spread", params), paths, fmt, tmp_path)


SETS_RAW = [
    "binance-spot_{s}_rawfeed_2024-08-08_2354-2400Z.txt.gz",
    "binance-spot_{s}_rawfeed_2024-08-09_0000-0005Z.txt.gz",
]
