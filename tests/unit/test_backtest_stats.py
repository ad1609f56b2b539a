"""The backtest's comparison figures (docs/backtest.md): hand-computed on small curves.

The engine case is the hand-computed ladder of ``test_backtest_engine`` (a
ladder of 2 x 100 USDT from 100 down 10 %, take-profit 5 %), its eight trades
one second apart across a UTC midnight, then one more trade two days later at
the last price; its equity after each trade is computed by hand below.
"""

from __future__ import annotations

import math
import statistics
from decimal import Decimal as D

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_backtest_engine import PARAMS, PRICES, S, trade
from tradebus.backtest import stats
from tradebus.backtest.engine import run_backtest
from tradebus.backtest.report import summary_rows
from tradebus.backtest.setup import make_setup
from tradebus.backtest.stats import DAY_NS

SQRT365 = math.sqrt(365)


def test_sharpe_and_sortino_of_a_three_day_curve() -> None:
    returns = stats.daily_returns(100.0, [110.0, 99.0, 108.9])  # +10 %, -10 %, +10 %
    assert np.allclose(returns, [0.1, -0.1, 0.1])
    # mean 1/30; deviations 2/30, -4/30, 2/30 -> sample variance 24/900 / 2, sd sqrt(12)/30
    assert stats.sharpe(returns) == pytest.approx(math.sqrt(365 / 12))
    # downside deviation sqrt((0 + 0.01 + 0) / 3) = 0.1 / sqrt(3)
    assert stats.sortino(returns) == pytest.approx(math.sqrt(365 / 3))
    assert stats.sortino(np.array([0.01, 0.02])) is None  # no losing day
    assert stats.sharpe(np.array([0.01, 0.01])) is None  # no variation
    assert stats.sharpe(np.array([0.01])) is None


def test_a_day_from_no_equity_has_no_return() -> None:
    assert list(stats.daily_returns(0.0, [10.0, 11.0])) == [pytest.approx(0.1)]


def test_cycle_figures() -> None:
    c = stats.cycle_stats([D(10), D(-5), D(3), D(0), D(-1)])
    assert (c.closed, c.won, c.gross_profit, c.gross_loss) == (5, 2, D(13), D(6))
    assert c.win_rate == 0.4  # a cycle at exactly 0 is not a win
    assert c.profit_factor == pytest.approx(13 / 6)
    assert stats.cycle_stats([D(1)]).profit_factor is None  # nothing lost
    assert stats.cycle_stats([]).win_rate is None


@given(
    st.lists(st.decimals(min_value=-1000, max_value=1000, allow_nan=False, places=4), max_size=40)
)
def test_profit_factor_is_gross_profit_over_gross_loss(pnls: list[D]) -> None:
    c = stats.cycle_stats(pnls)
    assert c.gross_profit - c.gross_loss == sum(pnls, D(0))
    assert c.gross_profit >= 0 and c.gross_loss >= 0
    assert c.won == sum(1 for p in pnls if p > 0)
    if c.gross_loss:
        assert c.profit_factor is not None
        assert (c.profit_factor > 1) == (sum(pnls, D(0)) > 0) or c.profit_factor == 1
    else:
        assert c.profit_factor is None


def test_buy_and_hold_and_exposure() -> None:
    assert stats.buy_and_hold(D(1000), D(100), D(150)) == (D("1500.00000000"), D(50))
    assert stats.buy_and_hold(D(1000), None, D(150)) == (None, None)
    assert stats.exposure_pct(3, 10, 16) == 50.0
    assert stats.exposure_pct(0, 10, 10) is None


def _at(event, ts: int):
    return msgspec.structs.replace(event, ts_event=ts, ts_recv=ts, ts_init=ts)


def test_the_hand_computed_ladder_over_three_utc_days() -> None:
    # trades 1-3 on day 1 (the last seconds before midnight), 4-8 on day 2, 9 on day 4
    t = [DAY_NS - 4 * S + i * S for i in range(1, 9)] + [3 * DAY_NS + S]
    events = [
        _at(trade(i, p), ts) for i, (p, ts) in enumerate(zip([*PRICES, "94"], t, strict=True), 1)
    ]
    s = run_backtest(make_setup("ladder", PARAMS), events).summary
    # the fills of test_hand_computed_ladder_cycle: b0 95 x 1.052 on trade 3, b1 90 x 1.111
    # on 4, s1 99 x 2.163 on 7 (cycle 1 closes: +13.578796), cycle 2's b0 94.05 x 1.063 on 8
    assert [s["fills"], s["realized_pnl"], s["final_position"]] == [4, "13.578796", "1.063"]
    assert (s["cycles_closed"], s["cycles_won"], s["win_rate_pct"]) == (1, 1, 100.0)
    assert D(s["gross_profit"]) == D("13.578796") and D(s["gross_loss"]) == 0
    assert s["profit_factor"] is None  # no losing cycle
    # equity (start 10000): trade 3: 10000 + 1.052 x (94.99 - 95) - 0.09994 = 9999.88954
    # (day 1's close); trade 4: 2.163 x 89 - 199.93 - 0.19993 -> 9992.37707 (the trough);
    # trade 5: 2.163 x 97 ... -> 10009.68107 (recovered); trade 7 sells: 10013.578796;
    # trade 8: + 1.063 x (94 - 94.05) - 0.09997515 = 10013.42567085 (day 2's close and,
    # the price unchanged, day 4's)
    closes = [9999.88954, 10013.42567085, 10013.42567085]
    returns = [b / a - 1 for a, b in zip([10000.0, *closes], closes, strict=False)]
    assert s["daily_returns"] == 3
    assert s["sharpe"] == round(statistics.mean(returns) / statistics.stdev(returns) * SQRT365, 4)
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in returns) / 3)
    assert s["sortino"] == round(statistics.mean(returns) / downside * SQRT365, 4)
    assert D(s["max_drawdown"]) == D("7.62293")
    assert s["max_drawdown_pct"] == round(7.62293 / 10000 * 100, 4)
    assert s["max_drawdown_peak_ts"] == t[0]  # the start
    assert s["max_drawdown_trough_ts"] == t[3]
    assert s["max_drawdown_recovery_ts"] == t[4]
    # held from trade 3 to 7 and from 8 to the end
    held = (t[6] - t[2]) + (t[8] - t[7])
    assert s["exposure_pct"] == round(100 * held / (t[8] - t[0]), 4)
    assert s["buy_and_hold_first_price"] == "100" and s["buy_and_hold_last_price"] == "94"
    assert D(s["buy_and_hold_equity"]) == D(9400) and s["buy_and_hold_return_pct"] == -6.0
    assert s["return_pct"] == round((10013.42567085 / 10000 - 1) * 100, 4)
    rows = dict(summary_rows(s))
    assert rows["win rate"] == "100.00 % (1 of 1 cycles)"
    assert rows["profit factor"].startswith("n/a: no losing cycle")
    assert rows["Sharpe (daily, √365)"] == f"{s['sharpe']:.2f}"
    assert "recovered" in rows["max drawdown"] and "UTC" in rows["max drawdown"]


def test_a_run_of_seconds_has_no_daily_ratios() -> None:
    events = [trade(i, p) for i, p in enumerate(PRICES, 1)]
    s = run_backtest(make_setup("ladder", PARAMS), events).summary
    assert s["sharpe"] is None and s["sortino"] is None
    rows = dict(summary_rows(s))
    assert rows["Sharpe (daily, √365)"] == "n/a (needs ≥ 2 days)"
    assert rows["Sortino (daily, √365)"] == "n/a (needs ≥ 2 days)"
    assert s["max_drawdown_recovery_ts"] == 5 * S  # trade 5 at 97 is back above the start
