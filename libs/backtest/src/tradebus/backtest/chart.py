"""The demo's picture: each symbol's price with the fills on it, and each bot's P&L over time.

:func:`pnl_series` computes, from a bot's fills and the symbol's price
samples, its P&L at every sample: realized plus the open position's
unrealized P&L at that price (one :class:`~tradebus.common.positions.Position`:
the sum is the same whether realized P&L is booked per cycle or on average
cost, so the chart needs no intent ids). :func:`write_chart` draws
one price panel per symbol (buys ▲, sells ▼ at their fill price and time)
and one panel of every bot's P&L, and writes a PNG (matplotlib, Agg: no
screen needed). Money is Decimal until it is drawn.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradebus.common.positions import Position

PriceSample = tuple[int, Decimal]
"""``(ts_ns, price)``: a symbol's last trade price at a time."""


@dataclass(frozen=True)
class ChartFill:
    """A fill as the chart needs it (from the ledger): bot, symbol, side, price, qty, fee
    (quote), event time (ns)."""

    bot: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    ts_ns: int


def pnl_series(fills: Sequence[ChartFill], prices: Sequence[PriceSample]) -> list[PriceSample]:
    """A bot's P&L (quote) at each price sample of its symbol: realized + unrealized.

    ``fills`` and ``prices`` are in time order; a fill counts from its own
    time on. Returns ``(ts_ns, pnl)`` per sample (empty without samples).
    """
    position = Position()
    out: list[PriceSample] = []
    i = 0
    for ts, price in prices:
        while i < len(fills) and fills[i].ts_ns <= ts:
            f = fills[i]
            position.apply(f.side, f.qty, f.price, f.fee)  # type: ignore[arg-type]
            i += 1
        out.append((ts, position.realized_pnl + position.unrealized_pnl(price)))
    return out


def plot_price_and_fills(
    ax: Any, symbol: str, line: list[tuple[float, float]], fills: list[tuple[str, float, float]]
) -> None:
    """Draw a price line ``[(x, price)]`` and fills ``[(side, x, price)]`` (buys ▲, sells ▼)
    on a matplotlib axis: the demo's chart and the backtest's report share it."""
    ax.plot([x for x, _ in line], [y for _, y in line], lw=0.8, c="0.4")
    for side, marker, color in (("buy", "^", "tab:green"), ("sell", "v", "tab:red")):
        mine = [(x, y) for s, x, y in fills if s == side]
        ax.scatter(
            [x for x, _ in mine],
            [y for _, y in mine],
            marker=marker,
            c=color,
            s=18,
            label=f"{side}s ({len(mine)})",
            zorder=3,
        )
    ax.set_title(f"{symbol}: price and fills")
    ax.legend(loc="upper left", fontsize=8)


def write_chart(
    fills: Iterable[ChartFill], prices: dict[str, list[PriceSample]], path: Path
) -> Path | None:
    """Draw the chart of a run into ``path`` (PNG); None when there is nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_symbol: dict[str, list[ChartFill]] = defaultdict(list)
    by_bot: dict[tuple[str, str], list[ChartFill]] = defaultdict(list)
    for f in sorted(fills, key=lambda f: f.ts_ns):
        by_symbol[f.symbol].append(f)
        by_bot[(f.bot, f.symbol)].append(f)
    symbols = sorted(s for s in prices if prices[s])
    if not symbols:
        return None
    fig, axes = plt.subplots(len(symbols) + 1, 1, figsize=(12, 3.2 * (len(symbols) + 1)))
    t0 = min(prices[s][0][0] for s in symbols)

    def minutes(ts: int) -> float:
        return (ts - t0) / 60e9

    for ax, symbol in zip(axes, symbols, strict=False):
        series = prices[symbol]
        line = [(minutes(t), float(p)) for t, p in series]
        marks = [(f.side, minutes(f.ts_ns), float(f.price)) for f in by_symbol[symbol]]
        plot_price_and_fills(ax, symbol, line, marks)
    pnl_ax = axes[-1]
    pnl_ax.set_prop_cycle(color=matplotlib.color_sequences["tab20"])
    legs: defaultdict[str, int] = defaultdict(int)
    for bot, _ in by_bot:
        legs[bot] += 1
    for (bot, symbol), mine in sorted(by_bot.items()):
        series = pnl_series(mine, prices.get(symbol, []))
        label = f"{bot} ({symbol})" if legs[bot] > 1 else bot  # a spread bot has two legs
        if series:
            pnl_ax.plot([minutes(t) for t, _ in series], [float(v) for _, v in series], label=label)
    pnl_ax.axhline(0, c="0.7", lw=0.6)
    pnl_ax.set_title("P&L per bot (realized + unrealized, quote)")
    pnl_ax.set_xlabel("minutes since the first tick")
    pnl_ax.legend(loc="upper left", fontsize=7, ncol=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
