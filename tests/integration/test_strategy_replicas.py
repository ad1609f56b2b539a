"""Three strategy host replicas share 300 bots of 50 users; one is SIGKILLed mid-run.

Real processes for the replicas (``tradebus-strategy``), real NATS and
Postgres, the real execution service with the paper venue, and the real
recorded Binance BTCUSDT/ETHUSDT feeds replayed through the marketdata
service. After the kill, every bot must be owned by exactly one live
replica within the lease time, every bot must keep its single run (resumed,
not restarted), no intent may produce two orders, and each bot's position
must equal what the ledger's fills say (no fill lost).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats
import pytest

from tests.support.data import raw_feed_files
from tests.support.execution import execution_ready
from tests.support.intents import intents_settled
from tests.support.services import eventually, service
from tradebus.cli.localstack import free_port
from tradebus.cli.processes import ServiceProcess
from tradebus.common import subjects
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.control.bots import gather_statuses
from tradebus.control.botstore import apply_specs
from tradebus.execution.bootstrap import run as run_execution
from tradebus.execution.settings import ExecutionSettings
from tradebus.marketdata.bootstrap import run as run_marketdata
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.strategies.botfile import load_specs
from tradebus.strategy.kvstore import open_buckets
from tradebus.strategy.leases import Leases

USERS = 50
LEASE_SECONDS = 3.0
HEARTBEAT_SECONDS = 0.5
REPLAY_SPEED = "15"

BOT_GROUPS = """
defaults: {venue: binance, no_fill_restart_minutes: "1"}
strategies:
  btc-tight: {strategy: ladder, symbol: BTCUSDT, total_quote: "600", order_count: 4,
              max_drop_pct: "0.15", take_profit_pct: "0.03"}
  btc-wide:  {strategy: ladder, symbol: BTCUSDT, total_quote: "900", order_count: 6,
              max_drop_pct: "0.4", increment_pct: "20", take_profit_pct: "0.08"}
  btc-deep:  {strategy: ladder, symbol: BTCUSDT, total_quote: "500", order_count: 3,
              max_drop_pct: "1", take_profit_pct: "0.2"}
  eth-tight: {strategy: ladder, symbol: ETHUSDT, total_quote: "600", order_count: 4,
              max_drop_pct: "0.15", take_profit_pct: "0.03"}
  eth-wide:  {strategy: ladder, symbol: ETHUSDT, total_quote: "900", order_count: 5,
              max_drop_pct: "0.3", take_profit_pct: "0.06"}
  eth-deep:  {strategy: ladder, symbol: ETHUSDT, total_quote: "500", order_count: 3,
              max_drop_pct: "1", take_profit_pct: "0.2"}
"""


def write_configs(tmp: Path, users_count: int = USERS, prefix: str = "u") -> tuple[Path, Path]:
    """A bots file (every user runs the six groups) and their paper accounts."""
    users = [f"{prefix}{i:02d}" for i in range(users_count)]
    groups = ["btc-tight", "btc-wide", "btc-deep", "eth-tight", "eth-wide", "eth-deep"]
    bots = tmp / "bots.yaml"
    lines = [BOT_GROUPS, "users:"]
    for user in users:
        mine = ", ".join(f"{g}: {{}}" for g in groups)
        lines.append(f"  - {{user: {user}, account: {user}-paper, strategies: {{{mine}}}}}")
    bots.write_text("\n".join(lines) + "\n")
    accounts = tmp / "accounts.yaml"
    rows = ["accounts:"]
    for user in users:
        rows.append(
            f'  - {{id: {user}-paper, user: {user}, balances: {{USDT: "100000"}}, '
            f'maker_fee_bps: "1", taker_fee_bps: "2"}}'
        )
    accounts.write_text("\n".join(rows) + "\n")
    return bots, accounts


def replica(name: str, nats_url: str, logs: Path) -> ServiceProcess:
    env = {
        "TRADEBUS_NATS_URL": nats_url,
        "TRADEBUS_REPLICA_ID": name,
        "TRADEBUS_LEASE_SECONDS": str(LEASE_SECONDS),
        "TRADEBUS_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "TRADEBUS_STOP_TIMEOUT_SECONDS": "2",
    }
    proc = ServiceProcess(name, env, logs, free_port(), service="strategy")
    proc.start()
    return proc


@pytest.mark.timeout(240)
async def test_replicas_share_bots_and_survive_a_sigkill(
    nats_url: str, database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    bots_file, accounts_file = write_configs(tmp_path)
    specs = load_specs(bots_file, MarketCatalog.load(default_markets_path()))
    assert len(specs) == 300 and len({s.user for s in specs}) == USERS
    files = [f for f in raw_feed_files(data_dir) if "2024-08-08" in f.name]
    assert {f.name.split("_")[1] for f in files} == {"BTCUSDT", "ETHUSDT"}

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
    names = ["r1", "r2", "r3"]
    procs = {n: replica(n, nats_url, tmp_path / "logs") for n in names}
    try:
        async with service(run_execution, execution, lambda: execution_ready(nc)):

            async def placement() -> dict[str, str]:
                return {s.bot: s.host or "" for r in await gather_statuses(nc) for s in r.bots}

            async def spread_over(hosts: set[str]) -> bool:
                share = Counter((await placement()).values())
                # rendezvous hashing spreads them evenly once every replica is seen
                fair = 300 // len(hosts) * 3 // 4
                return (
                    sum(share.values()) == 300
                    and set(share) == hosts
                    and min(share.values()) >= fair
                )

            await eventually(lambda: spread_over(set(names)), 30, "300 bots on 3 replicas")

            feed = MarketdataSettings(
                nats_url=nats_url,
                symbols=["BTCUSDT", "ETHUSDT"],
                replay_files=[str(f) for f in files],
                replay_speed=REPLAY_SPEED,
                metrics_port=0,
            )
            md_stop = asyncio.Event()
            md = asyncio.create_task(run_marketdata(feed, md_stop))
            await asyncio.sleep(8)  # the bots trade for a while
            before = await placement()
            victim_bots = {b for b, h in before.items() if h == "r2"}
            procs["r2"].signal(signal.SIGKILL)
            killed_at = time.monotonic()
            await eventually(
                lambda: spread_over({"r1", "r3"}),
                3 * LEASE_SECONDS + 5,
                "the survivors to take over r2's bots",
            )
            takeover = time.monotonic() - killed_at
            assert takeover < LEASE_SECONDS + 6 * HEARTBEAT_SECONDS + 2, takeover
            await asyncio.wait_for(md, 120)  # the replay runs to its end
            md_stop.set()

            async def settled() -> bool:
                return await intents_settled(nc)

            await eventually(settled, 60, "execution to take every intent")
            await asyncio.sleep(2 * HEARTBEAT_SECONDS + 1)  # last events reach the bots

            # every bot owned by exactly one live replica, and the leases agree
            replies = await gather_statuses(nc)
            owners = Counter(s.bot for r in replies for s in r.bots)
            assert len(owners) == 300 and set(owners.values()) == {1}
            hosts = {s.bot: s.host for r in replies for s in r.bots}
            assert set(hosts.values()) == {"r1", "r3"}
            # the replicas' leases (one each: r2's expired) claim exactly those bots
            probe = Leases(await js.key_value(subjects.KV_LEASES), "probe")
            assert set(await probe.read()) == {"r1", "r3"}
            assert await probe.owners(hosts) == hosts
            statuses = {s.bot: s for r in replies for s in r.bots}
            assert all(s.state == "running" for s in statuses.values())
            assert sum(s.orders_placed for s in statuses.values()) > 300
        db = await asyncpg.connect(database_url)
        try:
            orders = await db.fetch("SELECT user_id, source, intent_id FROM orders")
            fills = await db.fetch(
                "SELECT o.source, f.side, f.qty FROM fills f JOIN orders o USING (client_order_id)"
            )
        finally:
            await db.close()
    finally:
        for proc in procs.values():
            proc.stop(10)
        await nc.close()
    # no intent id produced two orders, and no bot was restarted under a new run
    assert len({(o["user_id"], o["intent_id"]) for o in orders}) == len(orders)
    runs: dict[str, set[str]] = {}
    for o in orders:
        runs.setdefault(o["source"], set()).add(o["intent_id"].split(":")[1].split(".")[0])
    assert all(len(r) == 1 for r in runs.values()), {b: r for b, r in runs.items() if len(r) > 1}
    moved = victim_bots & set(runs)
    assert moved, "the killed replica's bots had traded before the kill"
    # no fill lost: each bot's position is what the ledger's fills add up to
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
