"""Postgres restarted mid-run: execution stops taking intents, says it is unhealthy, catches up.

A PostgreSQL of the test's own (so it can be stopped) on a fixed port; the
execution service in-process with a paper account; intents and the trades
that fill them flow before, during and after the outage. While the
database is down no intent is acked (they wait in JetStream), fills the
paper venue made are held, and ``tradebus_execution_healthy`` is 0. Once
it is back, every intent has exactly one order, every fill is in the ledger
once, and the ledger equals the venue.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.execution import Bus, collecting, execution_service
from tests.support.services import eventually
from tradebus.cli.localstack import LocalPostgres, create_database, free_port, with_database
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_balances_reply
from tradebus.common.ids import AccountId
from tradebus.common.messages import BalancesQuery, OrderAccepted, OrderFilled
from tradebus.execution.settings import ExecutionSettings
from tradebus.ledger.history import LedgerHistory
from tradebus.ledger.pool import create_pool

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "100000"}}
"""
PHASE = 15


@pytest.fixture
def postgres() -> Iterator[LocalPostgres]:
    root = Path(tempfile.mkdtemp(prefix="tradebus-pg-restart-"))
    server = LocalPostgres(root, fast=True)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def place(intent_id: str) -> str:
    return (
        f'{{"type":"PlaceOrder","intent_id":"{intent_id}","account":"alice-paper",'
        '"symbol":"BTCUSDT","side":"buy","qty":"0.001","price":"60000"}'
    )


def healthy(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tradebus_execution_healthy":
                return sample.value
    raise AssertionError("no tradebus_execution_healthy")


@pytest.mark.timeout(180)
async def test_postgres_restart_loses_and_doubles_nothing(
    nats_url: str, postgres: LocalPostgres, tmp_path: Path
) -> None:
    await create_database(postgres.url(), "tradebus")
    database_url = with_database(postgres.url(), "tradebus")
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text(ACCOUNTS)
    port = free_port()
    settings = ExecutionSettings(
        nats_url=nats_url,
        database_url=database_url,
        accounts_file=str(accounts),
        metrics_port=port,
    )
    ts = 0

    async def trade() -> None:
        nonlocal ts
        ts += 1
        await bus.tick("59999.99", ts)  # strictly below the limits: fills them

    async with collecting(nats_url, Bus) as bus, execution_service(bus.nc, settings):
        for i in range(PHASE):
            await bus.pub("intent.alice.m", place(f"before-{i}"), msg_id=f"before-{i}")
        await eventually(lambda: len(bus.of(OrderAccepted)) == PHASE, what="phase 1 accepted")

        postgres.stop()
        await trade()  # the paper venue fills the resting orders; the ledger is down
        for i in range(PHASE):
            await bus.pub("intent.alice.m", place(f"during-{i}"), msg_id=f"during-{i}")
            await trade()
        await eventually(lambda: healthy(port) == 0, timeout=15, what="unhealthy")
        await asyncio.sleep(2)
        assert len(bus.of(OrderAccepted)) == PHASE  # nothing taken while the ledger is down
        assert bus.of(OrderFilled) == []  # the fills are held, not lost

        postgres.start(port=postgres.port)
        await eventually(
            lambda: len(bus.of(OrderAccepted)) == 2 * PHASE, timeout=60, what="caught up"
        )
        await trade()
        await eventually(
            lambda: len(bus.of(OrderFilled)) == 2 * PHASE,
            timeout=30,  # the held fills are flushed after the catch-up; slow under CI load
            what="all filled",
            detail=lambda: (
                f"{len(bus.of(OrderFilled))} fills of {2 * PHASE}"
                f" ({len({e.trade_id for e in bus.of(OrderFilled)})} distinct trades)"
            ),
        )
        await eventually(lambda: healthy(port) == 1, what="healthy again")
        raw = await request(bus.nc, subjects.exec_query("balances"), BalancesQuery())
        (venue,) = decode_balances_reply(raw).accounts  # type: ignore[union-attr]

    pool = await create_pool(database_url)
    try:
        ledger = await LedgerHistory(pool).balances(AccountId("alice-paper"))
        async with pool.acquire() as conn:
            orders = await conn.fetchval("SELECT count(*) FROM orders")
            fills = await conn.fetch("SELECT trade_id FROM fills")
    finally:
        await pool.close()
    trade_ids = [e.trade_id for e in bus.of(OrderFilled)]
    assert orders == 2 * PHASE and len(fills) == 2 * PHASE
    assert sorted(f["trade_id"] for f in fills) == sorted(trade_ids)
    assert len(set(trade_ids)) == 2 * PHASE  # each fill once
    assert {b.asset: b.total for b in venue.balances} == {a: v for a, v in ledger.items() if v}
    assert ledger["BTC"] == D("0.001") * 2 * PHASE
