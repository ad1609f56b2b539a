"""A backtest's comparison figures: win rate, profit factor, Sharpe, Sortino, buy-and-hold.

Pure functions of what :class:`~tradebus.backtest.accounting.Books` records
(docs/backtest.md defines every figure; the summary keys are in brackets):

* **win rate** [``win_rate``]: the share of *closed cycles* whose realized
  P&L (fees included) is > 0. A cycle is the ``<bot>:<run>.<cycle>`` of its
  intent ids (a ladder or martingale cycle, a grid round, a spread round over
  both legs, a volume loop); it is closed once it holds nothing in any
  market. A cycle at exactly 0 counts as not won. None without closed cycles.
* **profit factor** [``profit_factor``]: gross profit / gross loss of the
  closed cycles (the sum of the winning cycles' P&L over the absolute sum of
  the losing ones). None when no cycle lost (the ratio has no finite value).
* **daily returns**: the equity (quote) at the close of each UTC day the run
  touches (the last day's close is the final equity), each divided by the
  close before it (the starting equity for the first day), minus 1. The first
  and last day may be partial.
* **Sharpe** [``sharpe``]: ``mean(r) / std(r) * sqrt(365)`` over the daily
  returns ``r`` (sample standard deviation, ``ddof=1``; risk-free rate 0;
  365 because crypto trades every day). **Sortino** [``sortino``]:
  ``mean(r) / dd * sqrt(365)``, ``dd = sqrt(mean(min(r, 0)^2))`` the
  downside deviation under a target of 0 over every day. Both are None
  ("n/a") when the run spans less than :data:`MIN_DAYS` days of market time
  (a few minutes of ticks say nothing about a daily ratio), or when the
  denominator is 0 (no variation; no losing day).
* **exposure** [``exposure_pct``]: the percentage of the run's market time
  (first to last event) during which some market held a position.
* **buy-and-hold** [``buy_and_hold_return_pct``, ``buy_and_hold_equity``]:
  the starting quote balance put in the primary market (``symbol``, or a
  spread's ``symbol_a``) at its first price and valued at its last price
  (trade price, or the quote mid before any trade), no fees:
  ``initial * last / first``.

The money figures of a cycle stay :class:`~decimal.Decimal` (booked P&L);
the ratios are floats computed with numpy, rounded for the summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

DAY_NS = 86_400_000_000_000
"""One day in nanoseconds (daily returns are cut at 00:00 UTC)."""
CENTS_OF_A_CENT = Decimal("0.00000001")
"""Buy-and-hold equity is shown to 8 decimals (it is a figure, not booked money)."""
MIN_DAYS = 2
"""Sharpe and Sortino need a run of at least this many days of market time."""
PERIODS_PER_YEAR = 365
"""Annualisation of the daily ratios (crypto trades every day): ``sqrt(365)``."""
NA_DAYS = f"n/a (needs ≥ {MIN_DAYS} days)"
"""What the summary shows for a ratio of a run shorter than :data:`MIN_DAYS`."""


@dataclass(frozen=True)
class CycleStats:
    """The closed cycles' figures (quote-asset Decimal money)."""

    closed: int
    won: int
    gross_profit: Decimal
    gross_loss: Decimal
    """The absolute sum of the losing cycles' P&L (>= 0)."""

    @property
    def win_rate(self) -> float | None:
        """Won / closed (0..1), None without closed cycles."""
        return self.won / self.closed if self.closed else None

    @property
    def profit_factor(self) -> float | None:
        """Gross profit / gross loss, None when nothing was lost."""
        return float(self.gross_profit / self.gross_loss) if self.gross_loss else None


def cycle_stats(pnls: Sequence[Decimal]) -> CycleStats:
    """Win rate and profit factor of closed cycles' realized P&L (quote, fees included)."""
    won = [p for p in pnls if p > 0]
    lost = [p for p in pnls if p < 0]
    return CycleStats(
        closed=len(pnls),
        won=len(won),
        gross_profit=sum(won, Decimal(0)),
        gross_loss=-sum(lost, Decimal(0)),
    )


def daily_returns(initial: float, closes: Sequence[float]) -> np.ndarray:
    """The daily returns of equity ``closes`` (one per UTC day, in order) from ``initial``.

    A day starting from an equity of 0 or less has no defined return: it is left out.
    """
    equity = np.asarray([initial, *closes], dtype=float)
    before, after = equity[:-1], equity[1:]
    ok = before > 0
    returns: np.ndarray = after[ok] / before[ok] - 1.0
    return returns


def span_days(first_ts: int | None, last_ts: int | None) -> float:
    """The market time between two ns timestamps, in days (0 if either is missing)."""
    if first_ts is None or last_ts is None:
        return 0.0
    return max(last_ts - first_ts, 0) / DAY_NS


def sharpe(returns: np.ndarray) -> float | None:
    """Annualised Sharpe ratio of daily ``returns`` (ddof=1, risk-free 0); None if undefined."""
    if len(returns) < 2:
        return None
    sd = float(np.std(returns, ddof=1))
    if not sd > 1e-15:
        return None
    return float(np.mean(returns)) / sd * float(np.sqrt(PERIODS_PER_YEAR))


def sortino(returns: np.ndarray) -> float | None:
    """Annualised Sortino ratio of daily ``returns`` (target 0); None without a losing day."""
    if len(returns) < 2:
        return None
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
    if not downside > 1e-15:
        return None
    return float(np.mean(returns)) / downside * float(np.sqrt(PERIODS_PER_YEAR))


def exposure_pct(held_ns: int, first_ts: int | None, last_ts: int | None) -> float | None:
    """``held_ns`` as a percentage of the run's market time; None for a run of no time."""
    if first_ts is None or last_ts is None or last_ts <= first_ts:
        return None
    return 100.0 * held_ns / (last_ts - first_ts)


def buy_and_hold(
    initial: Decimal, first: Decimal | None, last: Decimal | None
) -> tuple[Decimal, Decimal] | tuple[None, None]:
    """``(equity, return %)`` of ``initial`` quote bought at ``first`` and valued at ``last``.

    No fees; ``(None, None)`` without both prices (or a first price of 0).
    """
    if first is None or last is None or not first:
        return None, None
    return (initial * last / first).quantize(CENTS_OF_A_CENT), (last / first - 1) * 100


def ratio_text(value: float | None, days: float, why: str = "n/a") -> str:
    """A ratio for people: 2 decimals, :data:`NA_DAYS` for a short run, else ``why``."""
    if days < MIN_DAYS:
        return NA_DAYS
    return why if value is None else f"{value:.2f}"
