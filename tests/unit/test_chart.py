"""The demo's chart: a bot's P&L over time from its fills and the price, and the PNG."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from tradebus.backtest.chart import ChartFill, pnl_series, write_chart

S = 1_000_000_000


def fill(side: str, price: str, qty: str, ts: int, fee: str = "0") -> ChartFill:
    return ChartFill("bot-a", "BTCUSDT", side, D(price), D(qty), D(fee), ts * S)


def test_pnl_is_realized_plus_unrealized_at_each_price() -> None:
    fills = [fill("buy", "100", "2", 1, fee="0.2"), fill("sell", "110", "1", 3, fee="0.1")]
    prices = [(0, D(100)), (2, D(105)), (3, D(110)), (4, D(90))]
    prices = [(t * S, p) for t, p in prices]
    assert pnl_series(fills, prices) == [
        (0, D(0)),  # nothing yet
        (2 * S, D("9.8")),  # 2 x (105 - 100) - 0.2 open fees
        (3 * S, D("19.7")),  # realized 10 - 0.1 - 0.1 = 9.8, unrealized 1 x 10 - 0.1 = 9.9
        (4 * S, D("-0.3")),  # realized 9.8, unrealized 1 x -10 - 0.1 (the other half-fee)
    ]


def test_the_png_is_written(tmp_path: Path) -> None:
    prices = {"BTCUSDT": [(t * S, D(100 + t)) for t in range(60)]}
    fills = [fill("buy", "105", "1", 5), fill("sell", "130", "1", 30)]
    out = write_chart(fills, prices, tmp_path / "demo.png")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000
    assert write_chart([], {}, tmp_path / "none.png") is None
