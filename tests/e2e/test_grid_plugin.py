"""A strategy users write themselves: the grid bot of ``examples/grid-bot``, a package of
its own that declares the entry point ``grid``, runs where the built-ins run.

* ``tradebus backtest --strategy grid`` over the two recorded BTCUSDT captures
  (11 minutes): every sell is the sale of a buy one level below it, and the
  summary's figures are those of its fills;
* the full stack on replayed data (the marketdata replay of a recorded slice,
  NATS, a strategy host, execution with the paper venue, the Postgres ledger):
  the grid trades its round trips while a bot of a broken plug-in beside it is
  refused with a log line naming the package and entry point, a bot whose
  ``status()`` raises is shown failed, and the host runs on;
* a broken plug-in named by ``tradebus backtest`` gives exit status 2 and a
  message naming the package and entry point, no traceback.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import nats
import pytest

from tests.e2e.test_backtest_parity import write_slice
from tests.support.data import BTC_RAW
from tests.support.execution import execution_ready
from tests.support.intents import intents_settled
from tests.support.plugins import broken_plugins, fresh_catalog
from tests.support.services import eventually, service
from tradebus.common.bus import ensure_streams
from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.messages import BotStatus, Side
from tradebus.common.positions import Position
from tradebus.control.bots import gather_statuses
from tradebus.control.botstore import apply_specs
from tradebus.execution.bootstrap import run as run_execution
from tradebus.execution.settings import ExecutionSettings
from tradebus.marketdata.bootstrap import run as run_marketdata
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.strategies.registry import BotSpec
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.kvstore import open_buckets
from tradebus.strategy.settings import StrategySettings

REPO = Path(__file__).resolve().parents[2]
TRADEBUS = REPO / ".venv" / "bin" / "tradebus"
MARKET = {"symbol": "BTCUSDT", "tick_size": "0.01", "step_size": "0.00001", "min_notional": "5"}
FEES = {"maker_fee_bps": "1", "taker_fee_bps": "2"}


class Trip:
    """One round trip from fills: the buy order's and its sale's fills, summed."""

    def __init__(self, buys: list[dict[str, str]], sells: list[dict[str, str]]) -> None:
        self.buy_qty = sum((D(f["qty"]) for f in buys), D(0))
        self.sell_qty = sum((D(f["qty"]) for f in sells), D(0))
        self.buy_quote = sum((D(f["qty"]) * D(f["price"]) for f in buys), D(0))
        self.sell_quote = sum((D(f["qty"]) * D(f["price"]) for f in sells), D(0))
        self.fees = sum((D(f["fee"]) for f in buys + sells), D(0))
        self.buy_price, self.sell_price = D(buys[0]["price"]), D(sells[0]["price"])
        self.after = int(buys[-1]["ts_ns"]) <= int(sells[0]["ts_ns"])

    @property
    def profit(self) -> D:
        """Sell proceeds less buy cost, both fees included (README rule 5)."""
        return self.sell_quote - self.buy_quote - self.fees


def pairs(fills: list[dict[str, str]], step: D) -> list[Trip]:
    """Each sold sell order ``<bot>:<run>.<n>:s<i>`` (or ``s<i>r<k>``) with the buy
    ``<bot>:<run>.<n>:b<i>`` of its round (README rules 4 and 6), checking it sold what
    the buy bought, at least one level up, after the buy."""
    by_id: dict[str, list[dict[str, str]]] = {}
    for f in fills:
        by_id.setdefault(f["order_id"], []).append(f)
    trips = []
    for order_id, sells in by_id.items():
        if sells[0]["side"] != "sell":
            continue
        head, leg = order_id.rsplit(":", 1)
        bot_run, n = head.rsplit(".", 1)
        trip = Trip(by_id[f"{bot_run}.{n}:b{leg[1:].split('r', 1)[0]}"], sells)
        assert trip.sell_qty == trip.buy_qty and trip.after, order_id
        assert trip.sell_price >= trip.buy_price + step, order_id
        trips.append(trip)
    return trips


def replay(fills: list[dict[str, str]]) -> Position:
    """The position the fills make (average cost, fees in the quote asset)."""
    position = Position()
    for row in fills:
        side: Side = "buy" if row["side"] == "buy" else "sell"
        position.apply(side, D(row["qty"]), D(row["price"]), D(row["fee"]))
    return position


async def run_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(TRADEBUS),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    output, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, output.decode()


def write_params(path: Path, params: dict[str, object]) -> Path:
    lines = [f"{k}: {json.dumps(v)}" for k, v in {**MARKET, **FEES, **params}.items()]
    path.write_text("\n".join([*lines, 'balances: {USDT: "10000"}']) + "\n")
    return path


@pytest.mark.timeout(300)
async def test_the_grid_backtests_on_recorded_data(data_dir: Path, tmp_path: Path) -> None:
    grid = {"lower_price": "61550", "upper_price": "61850", "grid_levels": 13,
            "quote_per_level": "50"}  # fmt: skip
    params, out = write_params(tmp_path / "grid.yaml", grid), tmp_path / "bt"
    data = [arg for name in BTC_RAW for arg in ("--data", str(data_dir / name))]
    code, output = await run_cli(
        "backtest", "--strategy", "grid", "--params", str(params), *data,
        "--format", "binance-raw", "--out", str(out), "--no-chart",
    )  # fmt: skip
    assert code == 0, output
    with open(out / "fills.csv", newline="") as f:
        fills = list(csv.DictReader(f))
    summary = json.loads((out / "summary.json").read_text())
    trips = pairs(fills, D(25))
    assert len(trips) >= 5, "the 11 minutes go up and down through several levels"
    print(f"backtest: {len(fills)} fills, {len(trips)} round trips, {summary['events']} events")
    assert summary["strategy"] == "grid" and summary["cycles_completed"] == len(trips)
    assert summary["orders_rejected"] == 0 and summary["error"] is None
    levels = {D(61550) + 25 * i for i in range(13)}
    assert {D(f["price"]) for f in fills} <= levels
    for trip in trips:  # resting orders: a round trip earns one step less both fees
        assert trip.sell_quote - trip.buy_quote == trip.sell_qty * 25
    # the backtest books each round (one cycle: a buy and its sale) on its own (rule 6)
    assert D(summary["realized_pnl"]) == sum((trip.profit for trip in trips), D(0))
    assert D(summary["final_position"]) == replay(fills).qty


async def test_a_broken_plugin_named_by_the_backtest_is_a_clear_error(
    data_dir: Path, tmp_path: Path
) -> None:
    site = broken_plugins(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(site)}
    params = write_params(tmp_path / "p.yaml", {})
    code, output = await run_cli(
        "backtest", "--strategy", "raises", "--params", str(params),
        "--data", str(data_dir / BTC_RAW[0]), "--format", "binance-raw",
        "--out", str(tmp_path / "out"), env=env,
    )  # fmt: skip
    assert code == 2, output
    assert "Traceback" not in output
    assert (
        "strategy: strategy plug-in 'raises' (entry point raises = tradebus_raises:KIND of "
        "package tradebus-broken 0.1) failed to load: RuntimeError: no API key in the "
        "environment"
    ) in output


def spec(bot: str, strategy: str, params: dict[str, object]) -> BotSpec:
    return BotSpec(
        id=BotId(bot),
        user=UserId("alice"),
        account=AccountId("alice-paper"),
        strategy=strategy,
        venue="binance",
        symbol="BTCUSDT",
        params=params,
    )


@pytest.mark.timeout(300)
async def test_the_grid_trades_on_the_full_stack_beside_a_broken_plugin(
    nats_url: str,
    database_url: str,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.syspath_prepend(str(broken_plugins(tmp_path / "site")))
    data = write_slice(data_dir, tmp_path / "slice.gz")  # 61741 -> 61583 -> 61745
    grid = {"lower_price": "61550", "upper_price": "61800", "grid_levels": 11,
            "quote_per_level": "100"}  # fmt: skip
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(
        'accounts:\n  - {id: alice-paper, user: alice, balances: {USDT: "10000"}, '
        f'maker_fee_bps: "{FEES["maker_fee_bps"]}", taker_fee_bps: "{FEES["taker_fee_bps"]}"}}\n'
    )
    execution = ExecutionSettings(
        nats_url=nats_url, database_url=database_url, accounts_file=str(accounts), metrics_port=0
    )
    strategy = StrategySettings(nats_url=nats_url, metrics_port=0, replica_id="grid")
    nc = await nats.connect(nats_url)
    js = nc.jetstream()

    async def statuses() -> dict[str, BotStatus]:
        return {s.bot: s for r in await gather_statuses(nc) for s in r.bots}

    async def grid_running() -> bool:
        return "alice-grid" in await statuses()

    caplog.set_level(logging.INFO)
    try:
        with fresh_catalog():
            await ensure_streams(js)
            await open_buckets(js, strategy.lease_seconds)
            # specs written to KV bots as the API would: the host's catalogue decides
            await apply_specs(
                js,
                [
                    spec("alice-grid", "grid", grid),
                    spec("alice-x", "raises", {}),  # its plug-in fails to load
                    spec("alice-y", "badstatus", grid),  # loads; its status() raises
                ],
            )
            async with (
                service(run_execution, execution, lambda: execution_ready(nc)),
                service(run_strategy, strategy, grid_running),
            ):
                feed = MarketdataSettings(
                    nats_url=nats_url, replay_files=[str(data)], replay_speed="10", metrics_port=0
                )
                assert await run_marketdata(feed, asyncio.Event()) == 0
                await eventually(lambda: intents_settled(nc), 60, "execution to take every intent")
                await asyncio.sleep(1.5)  # the last events reach the bot
                bots = await statuses()
        db = await asyncpg.connect(database_url)
        try:
            rows = await db.fetch(
                "SELECT o.intent_id AS order_id, f.side, f.price, f.qty, f.fee, "
                "f.ts_event AS ts_ns FROM fills f "
                "JOIN orders o ON o.client_order_id = f.client_order_id "
                "WHERE o.intent_id LIKE 'alice-grid:%' "
                "ORDER BY f.ts_event, f.recorded_ns, f.trade_id"
            )
        finally:
            await db.close()
    finally:
        await nc.close()
    assert set(bots) == {"alice-grid", "alice-y"}  # the broken plug-in's bot does not run
    assert (bots["alice-y"].state, bots["alice-y"].phase, bots["alice-y"].error) == (
        "failed",
        "failed",
        "status() raised RuntimeError('status is broken')",
    )
    status = bots["alice-grid"]
    fills = [{k: str(v) for k, v in dict(r).items()} for r in rows]
    trips = pairs(fills, D(25))
    assert len(trips) >= 2, fills
    print(f"full stack: {len(fills)} fills, {len(trips)} round trips")
    assert status.cycles_completed == len(trips) and status.details["round_trips"] == len(trips)
    assert status.phase == "running" and status.error is None
    position = replay(fills)
    assert status.position == position.qty and status.realized_pnl == position.realized_pnl
    profit = sum((t.profit for t in trips), D(0))
    assert D(str(status.details["grid_profit"])) == profit > 0
    refused = [r for r in caplog.records if r.getMessage() == "bot cannot start"]
    assert [getattr(r, "bot", None) for r in refused] == ["alice-x"]
    assert "of package tradebus-broken 0.1) failed to load: RuntimeError" in refused[0].error  # type: ignore[attr-defined]
    loaded = [r for r in caplog.records if r.getMessage() == "strategy plug-in not loaded"]
    assert any("entry point raises = tradebus_raises:KIND" in r.error for r in loaded)  # type: ignore[attr-defined]
