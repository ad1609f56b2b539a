"""A backtest's outputs: ``fills.csv``, ``summary.json`` and ``report.png``.

``fills.csv``: ``ts_ns,order_id,side,price,qty,fee,liquidity``, one row per
fill in the order they happened (``order_id`` is the intent id, ``fee`` in
the quote asset, ``ts_ns`` the ``ts_recv`` of the trade that filled it).
``summary.json``: :meth:`tradebus.backtest.engine.Backtest.summary`.
``report.png``: each symbol's price with the buy (▲) and sell (▼) fills, the
equity curve (quote: starting quote balance + realized + unrealized P&L),
and the position over time (matplotlib, Agg; the style of
:mod:`tradebus.backtest.chart`).
"""

from __future__ import annotations

from pathlib import Path

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


def write_outputs(result: Result, out: Path, chart: bool = True) -> None:
    """Write the three outputs of ``result`` into ``out`` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    write_fills(result.fills, out / FILLS_CSV)
    (out / SUMMARY_JSON).write_bytes(encode_summary(result.summary))
    if chart:
        write_chart(result, out / REPORT_PNG)


def write_chart(result: Result, path: Path) -> Path:
    """Draw ``report.png``: price + fills per symbol, equity, position."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sm, symbols = result.samples, result.symbols
    rows = len(symbols) + 2
    fig, axes = plt.subplots(rows, 1, figsize=(12, 2.8 * rows), sharex=True)
    t0 = sm.ts[0] if sm.ts else 0

    def minutes(ts: int) -> float:
        return (ts - t0) / 60e9

    xs = [minutes(t) for t in sm.ts]
    for i, (ax, symbol) in enumerate(zip(axes, symbols, strict=False)):
        points = [
            (x, float(v)) for x, p in zip(xs, sm.prices, strict=True) if (v := p[i]) is not None
        ]
        marks = [
            (f.side, minutes(f.ts_ns), float(f.price)) for f in result.fills if f.symbol == symbol
        ]
        plot_price_and_fills(ax, symbol, points, marks)
    eq_ax, pos_ax = axes[-2], axes[-1]
    eq_ax.plot(xs, [float(v) for v in sm.equity], c="tab:blue", lw=0.9)
    s = result.summary
    eq_ax.set_title(
        f"equity (quote): realized {s['realized_pnl']}, max drawdown {s['max_drawdown']}"
    )
    pos_ax.step(xs, [float(v) for v in sm.position], where="post", c="tab:purple", lw=0.9)
    pos_ax.set_title(f"{symbols[0]} position (base)")
    pos_ax.set_xlabel("minutes since the first event")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
