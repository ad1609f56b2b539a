"""The only strategy host is SIGKILLed mid-cycle and started again: every bot resumes.

Real processes for the host (``tradebus-strategy``), real NATS and Postgres,
the execution service with the paper venue, and the recorded Binance
BTCUSDT/ETHUSDT feeds replayed through the marketdata service. 60 ladder
bots of 10 users trade; the host is killed with SIGKILL while they hold
open orders, and a new process with the same replica id is started. Each
bot must resume from its snapshot and its order events (same run, the
snapshot restored, the events since replayed): no intent produces two
orders, no bot is restarted under a new run, and every bot's position is
what the ledger's fills say (no fill forgotten). Ticks published while no
host runs are simply not seen by the bots (core NATS), as in production.
"""

from __future__ import annotations

import asyncio
import signal
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats
import pytest

from tests.integration.test_strategy_replicas import HEARTBEAT_SECONDS, replica, write_configs
from tests.support.data import raw_feed_files
from tests.support.execution import execution_ready
from tests.support.intents import intents_settled
from tests.support.services import eventually, service
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import BotStatus
from tradebus.control.bots import gather_statuses
from tradebus.control.botstore import apply_specs
from tradebus.execution.bootstrap import run as run_execution
from tradebus.execution.settings import ExecutionSettings
from tradebus.marketdata.bootstrap import run as run_marketdata
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.strategies.botfile import load_specs
from tradebus.strategy.kvstore import open_buckets

USERS = 10
BOTS = 6 * USERS
LEASE_SECONDS = 3.0


@pytest.mark.timeout(240)
async def test_a_killed_host_resumes_every_bot_without_doubling_or_forgetting(
    nats_url: str, database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    bots_file, accounts_file = write_configs(tmp_path, USERS, prefix="k")
    specs = load_specs(bots_file, MarketCatalog.load(default_markets_path()))
    files = [f for f in raw_feed_files(data_dir) if "2024-08-08" in f.name]
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await open_buckets(js, LEASE_SECONDS)
    await apply_specs(js, specs)
    execution = ExecutionSettings(
        nats_url=nats_url,
        database_url=database_url,
        accounts_file=str(accounts_file),
        metrics_port=0,
    )
    logs = tmp_path / "logs"
    host = replica("solo", nats_url, logs)
    try:
        async with service(run_execution, execution, lambda: execution_ready(nc)):

            async def running() -> dict[str, BotStatus]:
                return {s.bot: s for r in await gather_statuses(nc) for s in r.bots}

            async def all_running() -> bool:
                statuses = await running()
                return len(statuses) == BOTS and all(
                    s.state == "running" for s in statuses.values()
                )

            await eventually(all_running, 30, f"{BOTS} bots running")
            feed = MarketdataSettings(
                nats_url=nats_url,
                symbols=["BTCUSDT", "ETHUSDT"],
                replay_files=[str(f) for f in files],
                replay_speed="15",
                metrics_port=0,
            )
            md_stop = asyncio.Event()
            md = asyncio.create_task(run_marketdata(feed, md_stop))
            await asyncio.sleep(6)  # the bots trade for a while
            before = await running()
            open_before = sum(s.open_orders for s in before.values())
            assert open_before > 0, "the bots hold open orders when the host dies"
            host.signal(signal.SIGKILL)
            assert host.wait(10) is not None
            host = replica("solo", nats_url, logs)  # the same host, started again
            await eventually(all_running, 3 * LEASE_SECONDS + 15, "every bot resumed")
            await asyncio.wait_for(md, 120)
            md_stop.set()

            async def settled() -> bool:
                return await intents_settled(nc)

            await eventually(settled, 60, "execution to take every intent")
            await asyncio.sleep(2 * HEARTBEAT_SECONDS + 1)  # last events reach the bots
            statuses = await running()
            assert len(statuses) == BOTS
        db = await asyncpg.connect(database_url)
        try:
            orders = await db.fetch("SELECT user_id, source, intent_id FROM orders")
            fills = await db.fetch(
                "SELECT o.source, f.side, f.qty FROM fills f JOIN orders o USING (client_order_id)"
            )
        finally:
            await db.close()
    finally:
        host.stop(10)
        await nc.close()
    # no intent produced two orders; every bot kept its one run (resumed, not restarted)
    assert len({(o["user_id"], o["intent_id"]) for o in orders}) == len(orders)
    runs: dict[str, set[str]] = {}
    for o in orders:
        runs.setdefault(o["source"], set()).add(o["intent_id"].split(":")[1].split(".")[0])
    assert all(len(r) == 1 for r in runs.values()), {b: r for b, r in runs.items() if len(r) > 1}
    # nothing forgotten: each bot's position is what the ledger's fills add up to
    ledger: dict[str, Decimal] = {}
    for f in fills:
        signed = f["qty"] if f["side"] == "buy" else -f["qty"]
        ledger[f["source"]] = ledger.get(f["source"], Decimal(0)) + signed
    mismatched = {
        bot: (s.position, ledger.get(bot, Decimal(0)))
        for bot, s in statuses.items()
        if s.position != ledger.get(bot, Decimal(0))
    }
    assert not mismatched
    assert sum(len(r) for r in runs.values()) == len(runs) > BOTS // 2
