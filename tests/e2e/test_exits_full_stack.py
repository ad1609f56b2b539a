"""A ladder's stop-loss and trailing take-profit through the full stack on recorded data.

The recorded slice of :mod:`tests.e2e.test_backtest_parity` (the first BTCUSDT
capture, seconds 160-300: a dip where two buys fill at 61680.43 and 61624.87,
then a rebound) runs through the marketdata replay, NATS, a strategy host,
execution with the paper venue and the Postgres ledger, once with a stop-loss
and once with a trailing take-profit (docs/strategies.md, "Exits"). Each run
must give the fills ``tradebus backtest`` gives on the same slice, and show
its exit: the stop-loss sells at a loss once the price is 0.05 % under the
average (61649.16, 29 s after the first buy and 13 s before the dip reaches
the second level), cancels the other buys and stops the bot; the trailing
take-profit sells after the price fell back from its peak, higher than the
plain take-profit sold.

The stop-loss is set where it fires well apart from any fill: on a trade that
both fills a buy and crosses the stop-loss, the backtest applies the fill
first (fill model rule 5) while the stack's bot may see the trade first (its
fills come from execution over the bus), so the two could differ there.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.e2e.test_backtest_parity import (
    LADDER,
    backtest,
    backtest_params,
    full_stack_status,
    ledger_fills,
    write_slice,
)

STOP_LOSS = {**LADDER, "stop_loss_pct": "0.05"}
TRAILING = {**LADDER, "trailing_take_profit_pct": "0.02"}


def average(fills: list[tuple]) -> D:
    """The average price of the buy fills ``(side, price, qty, ...)``."""
    buys = [(f[1], f[2]) for f in fills if f[0] == "buy"]
    return sum((p * q for p, q in buys), D(0)) / sum((q for _, q in buys), D(0))


@pytest.mark.slow  # make test-all; the trailing take-profit below is the exits' full-stack run
@pytest.mark.timeout(300)
async def test_a_stop_loss_through_the_full_stack(
    nats_url: str, database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    data = write_slice(data_dir, tmp_path / "slice.gz")
    status = await full_stack_status(nats_url, database_url, data, tmp_path, STOP_LOSS)
    fills = await ledger_fills(database_url)
    bt_fills, summary = await backtest(
        backtest_params(tmp_path / "params.yaml", STOP_LOSS), data, tmp_path / "bt"
    )
    assert fills == bt_fills
    assert [f[0] for f in fills] == ["buy", "sell"]  # the deeper buys were canceled
    sell = fills[-1]
    # the sell filled at the first trade after p <= avg * (1 - 0.05/100), as taker
    assert sell[1] <= average(fills) * D("0.9995") and sell[4] == "taker"
    assert status.realized_pnl < 0
    assert status.realized_pnl == D(summary["realized_pnl"])
    assert (status.phase, status.position, status.cycles_completed) == ("stopped", 0, 1)
    assert status.details["stop_losses"] == 1 and status.error is None


@pytest.mark.timeout(300)
async def test_a_trailing_take_profit_through_the_full_stack(
    nats_url: str, database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    data = write_slice(data_dir, tmp_path / "slice.gz")
    status = await full_stack_status(nats_url, database_url, data, tmp_path, TRAILING)
    fills = await ledger_fills(database_url)
    bt_fills, _ = await backtest(
        backtest_params(tmp_path / "params.yaml", TRAILING), data, tmp_path / "bt"
    )
    plain_fills, plain = await backtest(
        backtest_params(tmp_path / "plain.yaml"), data, tmp_path / "plain"
    )
    assert fills == bt_fills
    assert [f[0] for f in fills] == ["buy", "buy", "sell"]
    assert fills[:2] == plain_fills[:2]  # the same buys; the sale waited for the fall-back
    assert fills[-1][1] > plain_fills[-1][1] > average(fills) * D("1.0005")
    assert status.realized_pnl > D(plain["realized_pnl"]) > 0
    assert (status.phase, status.position, status.cycles_completed) == ("stopped", 0, 1)
    assert status.details["stop_losses"] == 0 and status.details["trailing_peak"] is None
