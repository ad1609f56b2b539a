"""A backtest's outputs: ``fills.csv``, ``summary.json`` and ``report.png``.

``fills.csv``: ``ts_ns,order_id,side,price,qty,fee,liquidity``, one row per
fill in the order they happened (``order_id`` is the intent id, ``fee`` in
the quote asset, ``ts_ns`` the ``ts_recv`` of the trade that filled it).
``summary.json``: :meth:`tradebus.backtest.engine.Backtest.summary`.
``report.png``: each symbol's price with the buy (▲) and sell (▼) fills, for
a spread both legs and their spread, the equity curve (quote: starting quote
balance + realized + unrealized P&L) beside buy-and-hold, the position over
time, against clock time (UTC), and the summary's figures
(:func:`report_figure`; matplotlib, Agg; the style of
:mod:`tradebus.backtest.chart`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tradebus.backtest import stats
from tradebus.backtest.accounting import Fill, Result, encode_summary
from tradebus.backtest.chart import plot_price_and_fills

FILLS_HEADER = "ts_ns,order_id,side,price,qty,fee,liquidity\n"
FILLS_CSV = "fills.csv"
SUMMARY_JSON = "summary.json"
REPORT_PNG = "report.png"


def write_fills(fills: list[Fill], path: Path) -> None:
    """Write ``fills.csv`` (plain decimals, no exponent tricks: ``str(Decimal)``)."""
    rows = [FILLS_HEADER]
    rows += [
        f"{f.ts_ns},{f.order_id},{f.side},{f.price},{f.qty},{f.fee},{f.liquidity}\n" for f in fills
    ]
    path.write_text("".join(rows), encoding="utf-8")


def utc(ts_ns: int | None) -> str:
    """``2024-08-08 23:54:14 UTC`` for a ns timestamp ("-" for None)."""
    if ts_ns is None:
        return "-"
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def money(value: Any, places: int = 2) -> str:
    """A decimal string for people: ``places`` decimals with thousands separators, more
    (up to 8 significant) for amounts under 1; as it is if it is no number."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {money(v, places)}" for k, v in value.items())
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if number and abs(number) < 1:
        return f"{number.quantize(Decimal('1e-8')).normalize():f}"
    return f"{number.quantize(Decimal(1).scaleb(-places)):,f}"


def _pct(value: float | None, signed: bool = False) -> str:
    """A percentage, 2 decimals (4 for a small one that 2 would show as 0)."""
    if value is None:
        return "-"
    places = 4 if value and abs(value) < 0.005 else 2
    return f"{value:+,.{places}f} %" if signed else f"{value:,.{places}f} %"


def duration(days: float) -> str:
    """``3,449.96 days``, or hours/minutes/seconds under a day."""
    seconds = days * 86_400
    if days >= 1:
        return f"{days:,.2f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{seconds:.1f} s"


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """``summary.json``'s figures as ``(label, text)`` rows, for people (the CLI's table and
    the report's panel): money to 2 decimals, times in UTC, n/a with its reason."""
    s = summary
    days = float(s.get("days") or 0)
    rate = s.get("events_per_second") or 0
    rows = [
        ("period", f"{utc(s.get('first_ts'))} → {utc(s.get('last_ts'))} ({duration(days)})"),
        ("events", f"{s['events']:,} ({s['trades']:,} trades, {rate:,} ev/s)"),
        (
            "orders",
            f"{s['orders_placed']:,} placed, {s['orders_rejected']:,} rejected, "
            f"{s['open_orders']:,} open at the end; {s['fills']:,} fills",
        ),
        ("realized P&L", money(s["realized_pnl"])),
        ("unrealized P&L", money(s["unrealized_pnl"])),
        ("fees", money(s["fees"])),
        ("final equity", f"{money(s['final_equity'])} ({_pct(s.get('return_pct'), True)})"),
        ("final position", money(s["final_position"], 8)),
    ]
    closed, won = s.get("cycles_closed", 0), s.get("cycles_won", 0)
    rows.append(("cycles", f"{s['cycles_completed']:,} completed, {closed:,} closed, {won:,} won"))
    win = s.get("win_rate_pct")
    rows.append(
        (
            "win rate",
            "n/a (no closed cycle)" if win is None else f"{_pct(win)} ({won} of {closed} cycles)",
        )
    )
    pf = s.get("profit_factor")
    gross = f"gross profit {money(s.get('gross_profit'))} / gross loss {money(s.get('gross_loss'))}"
    rows.append(
        (
            "profit factor",
            (f"{pf:,.2f} ({gross})" if pf is not None else f"n/a: no losing cycle ({gross})")
            if closed
            else "n/a (no closed cycle)",
        )
    )
    rows.append(
        ("Sharpe (daily, √365)", stats.ratio_text(s.get("sharpe"), days, "n/a (no variation)"))
    )
    rows.append(
        ("Sortino (daily, √365)", stats.ratio_text(s.get("sortino"), days, "n/a (no losing day)"))
    )
    dd = f"{money(s['max_drawdown'])}"
    if s.get("max_drawdown_pct") is not None:
        dd += f" ({_pct(s['max_drawdown_pct'])} of the peak)"
    if s.get("max_drawdown_trough_ts") is not None:
        recovery = s.get("max_drawdown_recovery_ts")
        dd += (
            f", peak {utc(s.get('max_drawdown_peak_ts'))}, "
            f"trough {utc(s['max_drawdown_trough_ts'])}, "
            + (f"recovered {utc(recovery)}" if recovery is not None else "not recovered")
        )
    rows.append(("max drawdown", dd))
    rows.append(("exposure", f"{_pct(s.get('exposure_pct'))} of the time in a position"))
    bh = s.get("buy_and_hold_return_pct")
    rows.append(
        (
            "buy and hold",
            "n/a (no price)"
            if bh is None
            else f"{s['buy_and_hold_symbol']} {money(s['buy_and_hold_first_price'])} → "
            f"{money(s['buy_and_hold_last_price'])}: {_pct(bh, True)}, "
            f"equity {money(s['buy_and_hold_equity'])}",
        )
    )
    return rows


def write_outputs(result: Result, out: Path, chart: bool = True) -> None:
    """Write the three outputs of ``result`` into ``out`` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    write_fills(result.fills, out / FILLS_CSV)
    (out / SUMMARY_JSON).write_bytes(encode_summary(result.summary))
    if chart:
        write_chart(result, out / REPORT_PNG)


def report_figure(result: Result) -> Any:
    """The figure of ``report.png`` (a matplotlib ``Figure``, not yet saved).

    Panels, top to bottom, sharing a clock-time x axis (UTC,
    :func:`tradebus.backtest.chart.time_axis`): each symbol's price with its
    fills (:func:`~tradebus.backtest.chart.plot_price_and_fills`; log scale
    for a wide range); for two symbols (a spread) both legs' % change since
    their first price and the spread ``chg_a - chg_b`` (STRATEGIES.md §3, on
    the first prices: the bot itself re-references each round); the equity
    with the buy-and-hold equity of the primary symbol
    (:mod:`tradebus.backtest.stats`; log scale for a wide range); the primary
    symbol's position; then the summary's figures as text
    (:func:`summary_rows`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tradebus.backtest.chart import time_axis, times, wants_log

    sm, symbols, s = result.samples, result.symbols, result.summary
    spread = len(symbols) == 2
    rows = s_rows = summary_rows(s)
    panels = len(symbols) + (1 if spread else 0) + 2
    heights = [2.8] * panels + [0.22 * len(rows) + 0.4]
    fig, axes = plt.subplots(
        panels + 1, 1, figsize=(12, sum(heights)), gridspec_kw={"height_ratios": heights}
    )
    plots, text_ax = list(axes[:-1]), axes[-1]
    for ax in plots[1:]:
        ax.sharex(plots[0])
    xs = list(sm.ts)
    t = times(xs)

    def leg(i: int) -> tuple[list[int], list[float]]:
        pairs = [
            (x, float(v)) for x, p in zip(xs, sm.prices, strict=True) if (v := p[i]) is not None
        ]
        return [x for x, _ in pairs], [y for _, y in pairs]

    for i, (ax, symbol) in enumerate(zip(plots, symbols, strict=False)):
        marks = [
            (s["strategy"], f.side, f.ts_ns, float(f.price))
            for f in result.fills
            if f.symbol == symbol
        ]
        plot_price_and_fills(ax, symbol, leg(i), marks)
    k = len(symbols)
    if spread:
        ax = plots[k]
        both = [
            (x, float(a), float(b))
            for x, (a, b) in zip(xs, sm.prices, strict=True)
            if a is not None and b is not None
        ]
        if both:
            _, a0, b0 = both[0]
            bt = times([x for x, _, _ in both])
            chg_a = [(a / a0 - 1) * 100 for _, a, _ in both]
            chg_b = [(b / b0 - 1) * 100 for _, _, b in both]
            ax.plot(bt, chg_a, lw=0.8, c="tab:blue", label=f"{symbols[0]} (chg_a)")
            ax.plot(bt, chg_b, lw=0.8, c="tab:orange", label=f"{symbols[1]} (chg_b)")
            ax.plot(
                bt,
                [a - b for a, b in zip(chg_a, chg_b, strict=True)],
                lw=1.0,
                c="k",
                label="spread chg_a - chg_b",
            )
        ax.axhline(0, c="0.7", lw=0.6)
        ax.set_title("spread: both legs' % change since their first price, and their difference")
        ax.set_ylabel("%")
        ax.legend(loc="upper left", fontsize=7)
        time_axis(ax)
        k += 1
    eq_ax, pos_ax = plots[k], plots[k + 1]
    equity = [float(v) for v in sm.equity]
    eq_ax.plot(t, equity, c="tab:blue", lw=0.9, label="equity (strategy)")
    hold: list[float] = []
    first, initial = s.get("buy_and_hold_first_price"), s.get("initial_equity")
    if first is not None and initial is not None and float(first) > 0:
        px, py = leg(0)
        scale = float(initial) / float(first)
        hold = [p * scale for p in py]
        eq_ax.plot(times(px), hold, c="0.55", lw=0.9, ls="--", label=f"buy and hold {symbols[0]}")
    if wants_log(equity, hold):
        eq_ax.set_yscale("log")
    eq_ax.set_title(
        f"equity (quote): realized {money(s['realized_pnl'])}, "
        f"max drawdown {money(s['max_drawdown'])}, buy and hold "
        + (
            "n/a"
            if s.get("buy_and_hold_return_pct") is None
            else f"{s['buy_and_hold_return_pct']:+,.2f} %"
        )
    )
    eq_ax.legend(loc="upper left", fontsize=7)
    time_axis(eq_ax)
    pos_ax.step(t, [float(v) for v in sm.position], where="post", c="tab:purple", lw=0.9)
    pos_ax.set_title(f"{symbols[0]} position (base)")
    time_axis(pos_ax)
    text_ax.axis("off")
    width = max(len(label) for label, _ in s_rows)
    text_ax.text(
        0.0,
        1.0,
        "\n".join(f"{label:<{width}}  {value}" for label, value in s_rows),
        family="monospace",
        fontsize=8,
        va="top",
        transform=text_ax.transAxes,
    )
    fig.tight_layout()
    return fig


def write_chart(result: Result, path: Path) -> Path:
    """Draw ``report.png`` (:func:`report_figure`) into ``path``."""
    import matplotlib.pyplot as plt

    fig = report_figure(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
