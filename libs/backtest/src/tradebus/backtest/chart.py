"""The demo's picture: each symbol's price with the fills on it, and each bot's P&L over time.

:func:`pnl_series` computes, from a bot's fills and the symbol's price
samples, its P&L at every sample: realized plus the open position's
unrealized P&L at that price (one :class:`~tradebus.common.positions.Position`:
the sum is the same whether realized P&L is booked per cycle or on average
cost, so the chart needs no intent ids). :func:`write_chart` draws
one price panel per symbol (buys ▲, sells ▼ at their fill price and time)
and one panel of every bot's P&L, and writes a PNG (matplotlib, Agg: no
screen needed). Every panel has clock time (UTC) on x; a price axis turns
logarithmic when its range is wide (:data:`LOG_SCALE_RATIO`); fills are
markers by side, offset from the price so none hides another, coloured per
bot. Money is Decimal until it is drawn.
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


LOG_SCALE_RATIO = 10.0
"""A price (or equity) axis is logarithmic when its largest value is more than this many
times its smallest (multi-year data: BTC went from 456 to 113,912 in the Coinbase file)."""
TIME_LABEL = "time (UTC)"
"""The x axis of every chart: clock time in UTC (matplotlib's date axis, concise labels)."""
SIDES = (("buy", "^", "tab:green", -1), ("sell", "v", "tab:red", 1))
"""``(side, marker, colour, offset direction)``: a buy ▲ is drawn just under its price,
a sell ▼ just over it, so a buy and a sell at the same time and price do not hide each
other."""
FILL_OFFSET_POINTS = 5.0
"""How far (typographic points) a fill marker sits from its price (:data:`SIDES`)."""


def times(ts_ns: Sequence[int]) -> Any:
    """Timestamps (ns since the epoch, UTC) as a numpy ``datetime64[ns]`` array (the x axis)."""
    import numpy as np

    return np.asarray(ts_ns, dtype="int64").astype("datetime64[ns]")


def wants_log(*series: Sequence[float]) -> bool:
    """True when the positive values of ``series`` span more than :data:`LOG_SCALE_RATIO`
    (and none is <= 0: a log axis cannot show them)."""
    values = [v for s in series for v in s]
    if not values or min(values) <= 0:
        return False
    return max(values) / min(values) > LOG_SCALE_RATIO


def time_axis(ax: Any) -> None:
    """Label ``ax``'s x axis as clock time (:data:`TIME_LABEL`, concise date ticks)."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel(TIME_LABEL)


def plot_price_and_fills(
    ax: Any,
    symbol: str,
    line: tuple[Sequence[int], Sequence[float]],
    fills: Sequence[tuple[str, str, int, float]],
    log: bool | None = None,
) -> None:
    """Draw a price line ``(ts_ns, prices)`` and fills ``[(bot, side, ts_ns, price)]`` on a
    matplotlib axis: the demo's chart and the backtest's report share it.

    Time on x (:func:`time_axis`); a log price axis when ``log`` (None:
    :func:`wants_log` of the prices). Each fill is a marker by side (buys ▲
    under the price, sells ▼ over it, :data:`SIDES`), half transparent and
    smaller when there are many; with several bots each bot has its own colour
    (the side's colour edges it), one legend entry per bot and side.
    """
    from matplotlib.transforms import offset_copy

    xs, ys = line
    ax.plot(times(xs), list(ys), lw=0.8, c="0.4", label=symbol)
    bots = sorted({b for b, _, _, _ in fills})
    colours = {b: f"C{i % 10}" for i, b in enumerate(bots)}
    many = len(fills) > 200
    for side, marker, side_colour, direction in SIDES:
        shift = offset_copy(
            ax.transData, fig=ax.figure, y=direction * FILL_OFFSET_POINTS, units="points"
        )
        for bot in bots:
            mine = [(t, y) for b, sd, t, y in fills if sd == side and b == bot]
            if not mine:
                continue
            several = len(bots) > 1
            ax.scatter(
                times([t for t, _ in mine]),
                [y for _, y in mine],
                marker=marker,
                c=colours[bot] if several else side_colour,
                edgecolors=side_colour if several else "none",
                linewidths=0.8,
                s=14 if many else 30,
                alpha=0.55 if many else 0.85,
                label=f"{bot} {side}s ({len(mine)})" if several else f"{side}s ({len(mine)})",
                transform=shift,
                zorder=3,
            )
    if log if log is not None else wants_log(ys):
        ax.set_yscale("log")
    ax.set_title(
        f"{symbol}: price and fills" + (" (log scale)" if ax.get_yscale() == "log" else "")
    )
    ax.legend(loc="upper left", fontsize=7, ncol=2)
    time_axis(ax)


def write_chart(
    fills: Iterable[ChartFill], prices: dict[str, list[PriceSample]], path: Path
) -> Path | None:
    """Draw the chart of a run (:func:`chart_figure`) into ``path`` (PNG); None when there
    is nothing to draw."""
    import matplotlib.pyplot as plt

    fig = chart_figure(fills, prices)
    if fig is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def chart_figure(fills: Iterable[ChartFill], prices: dict[str, list[PriceSample]]) -> Any:
    """The demo's chart as a matplotlib ``Figure``: one price panel per symbol with every
    bot's fills (:func:`plot_price_and_fills`), then each bot's P&L (:func:`pnl_series`),
    all on clock time; None when there is no price to draw."""
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
    fig, axes = plt.subplots(
        len(symbols) + 1, 1, figsize=(12, 3.2 * (len(symbols) + 1)), sharex=True
    )
    for ax, symbol in zip(axes, symbols, strict=False):
        series = prices[symbol]
        line = ([t for t, _ in series], [float(p) for _, p in series])
        marks = [(f.bot, f.side, f.ts_ns, float(f.price)) for f in by_symbol[symbol]]
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
            pnl_ax.plot(times([t for t, _ in series]), [float(v) for _, v in series], label=label)
    pnl_ax.axhline(0, c="0.7", lw=0.6)
    pnl_ax.set_title("P&L per bot (realized + unrealized, quote)")
    time_axis(pnl_ax)
    pnl_ax.legend(loc="upper left", fontsize=7, ncol=3)
    fig.tight_layout()
    return fig
