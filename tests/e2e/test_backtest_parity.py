"""Parity: the full stack and ``tradebus backtest`` give the same fills on the same data.

The same ladder parameters run twice on the same real recorded slice (the
first BTCUSDT capture, seconds 160-300: a dip where the buys fill, then a
rebound to the take-profit):

* through the full stack: the marketdata replay, NATS, a strategy host,
  execution with the paper venue, and the Postgres ledger;
* through ``tradebus backtest --format binance-raw`` (one process, no NATS,
  no database).

Both must produce the same fills (side, price, quantity, fee, liquidity, in
order), the same realized P&L and the same final position. The bot runs one
cycle (``restart_after_take_profit: false``): a new cycle's reference price
is the first price after the bot heard its cycle close, which in the full
stack depends on how the services interleave.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import nats
import pytest

from tests.support.data import BTC_RAW
from tests.support.execution import execution_ready
from tests.support.intents import intents_settled
from tests.support.services import eventually, service
from tradebus.common.messages import BotStatus
from tradebus.common.positions import Position
from tradebus.control.bots import gather_statuses
from tradebus.execution.bootstrap import run as run_execution
from tradebus.execution.settings import ExecutionSettings
from tradebus.feeds.readers import read_frames
from tradebus.marketdata.bootstrap import run as run_marketdata
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

NS = 1_000_000_000
SLICE = (160, 300)  # seconds into the capture
LADDER = {
    "total_quote": "600",
    "order_count": 5,
    "max_drop_pct": "0.45",
    "take_profit_pct": "0.05",
    "restart_after_take_profit": False,
    "no_fill_restart_minutes": "0",
}
FEES = {"maker_fee_bps": "1", "taker_fee_bps": "2"}


def write_slice(data_dir: Path, out: Path) -> Path:
    """Seconds :data:`SLICE` of the first BTCUSDT capture, frames unchanged."""
    src = data_dir / BTC_RAW[0]
    first = next(read_frames(src))[0]
    start, end = (first + s * NS for s in SLICE)
    with gzip.open(out, "wb", compresslevel=1) as f:
        for ts, frame in read_frames(src):
            if start <= ts < end:
                f.write(b"%d %s\n" % (ts, frame))
    return out


def ladder_yaml(ladder: dict[str, object]) -> str:
    params = ", ".join(f"{k}: {json.dumps(v)}" for k, v in ladder.items())
    return (
        "defaults: {venue: binance}\n"
        f"strategies:\n  btc: {{strategy: ladder, symbol: BTCUSDT, {params}}}\n"
        "users:\n  - {user: alice, account: alice-paper, strategies: {btc: {}}}\n"
    )


async def full_stack(
    nats_url: str,
    database_url: str,
    data: Path,
    tmp: Path,
    ladder: dict[str, object] = LADDER,
) -> tuple[list[tuple], D, D]:
    """Fills ``(side, price, qty, fee, liquidity)``, realized P&L and position via the stack
    (one ladder bot with parameters ``ladder``)."""
    status = await full_stack_status(nats_url, database_url, data, tmp, ladder)
    fills = await ledger_fills(database_url)
    return fills, status.realized_pnl, status.position


async def ledger_fills(database_url: str) -> list[tuple]:
    """Every fill in the ledger as ``(side, price, qty, fee, liquidity)``, in order."""
    db = await asyncpg.connect(database_url)
    try:
        rows = await db.fetch(
            "SELECT side, price, qty, fee, liquidity FROM fills"
            " ORDER BY ts_event, recorded_ns, trade_id"
        )
    finally:
        await db.close()
    return [(r["side"], r["price"], r["qty"], r["fee"], r["liquidity"]) for r in rows]


async def full_stack_status(
    nats_url: str, database_url: str, data: Path, tmp: Path, ladder: dict[str, object]
) -> BotStatus:
    """Replay ``data`` through the stack with one ladder bot (``ladder``); its last status."""
    accounts = tmp / "accounts.yaml"
    accounts.write_text(
        'accounts:\n  - {id: alice-paper, user: alice, balances: {USDT: "10000"}, '
        f'maker_fee_bps: "{FEES["maker_fee_bps"]}", taker_fee_bps: "{FEES["taker_fee_bps"]}"}}\n'
    )
    bots = tmp / "bots.yaml"
    bots.write_text(ladder_yaml(ladder))
    nc = await nats.connect(nats_url)
    execution = ExecutionSettings(
        nats_url=nats_url, database_url=database_url, accounts_file=str(accounts), metrics_port=0
    )
    strategy = StrategySettings(
        nats_url=nats_url, bots_file=str(bots), metrics_port=0, replica_id="parity"
    )

    async def bot_running() -> bool:
        return any(s.state == "running" for r in await gather_statuses(nc) for s in r.bots)

    async def settled() -> bool:
        return await intents_settled(nc)

    try:
        async with (
            service(run_execution, execution, lambda: execution_ready(nc)),
            service(run_strategy, strategy, bot_running),
        ):
            feed = MarketdataSettings(
                nats_url=nats_url, replay_files=[str(data)], replay_speed="10", metrics_port=0
            )
            assert await run_marketdata(feed, asyncio.Event()) == 0
            await eventually(settled, 60, "execution to take every intent")
            await asyncio.sleep(1.5)  # the last events reach the bot
            (status,) = [s for r in await gather_statuses(nc) for s in r.bots]
    finally:
        await nc.close()
    return status


def backtest_params(path: Path, ladder: dict[str, object] = LADDER) -> Path:
    """The ladder's parameters plus BTCUSDT's market (markets.yaml) and the account's fees."""
    params = path
    lines = [f"{k}: {json.dumps(v)}" for k, v in {**ladder, **FEES}.items()]
    lines += [
        "symbol: BTCUSDT",
        'tick_size: "0.01"',
        'step_size: "0.00001"',
        'min_qty: "0.00001"',
        'min_notional: "5"',
        'balances: {USDT: "10000"}',
    ]
    params.write_text("\n".join(lines) + "\n")
    return params


async def backtest(params: Path, data: Path, out: Path) -> tuple[list[tuple], dict]:
    """``tradebus backtest --format binance-raw`` of a ladder: its fills and summary."""
    proc = await asyncio.create_subprocess_exec(
        str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "tradebus"),
        "backtest",
        "--strategy",
        "ladder",
        "--params",
        str(params),
        "--data",
        str(data),
        "--format",
        "binance-raw",
        "--out",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    assert proc.returncode == 0, output.decode()
    with open(out / "fills.csv", newline="") as f:
        fills = [
            (r["side"], D(r["price"]), D(r["qty"]), D(r["fee"]), r["liquidity"])
            for r in csv.DictReader(f)
        ]
    return fills, json.loads((out / "summary.json").read_text())


@pytest.mark.timeout(300)
async def test_the_full_stack_and_the_backtest_fill_the_same(
    nats_url: str, database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    data = write_slice(data_dir, tmp_path / "slice.gz")
    stack_fills, stack_pnl, stack_position = await full_stack(
        nats_url, database_url, data, tmp_path
    )
    bt_fills, summary = await backtest(
        backtest_params(tmp_path / "params.yaml"), data, tmp_path / "bt"
    )

    assert len(stack_fills) >= 3, "the slice must fill buys and the take-profit"
    assert {f[0] for f in stack_fills} == {"buy", "sell"}
    assert bt_fills == stack_fills
    position = Position()
    for side, price, qty, fee, _ in bt_fills:
        assert side in ("buy", "sell"), side
        position.apply("buy" if side == "buy" else "sell", qty, price, fee)
    assert D(summary["realized_pnl"]) == position.realized_pnl == stack_pnl
    assert D(summary["final_position"]) == stack_position == position.qty
