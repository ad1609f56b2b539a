"""An account's ``at_start`` options on the local Backpack server (issue 19; seed 000's
``cancelAllOrders`` and ``sellNonUsdcAssets`` / ``sellNonUsdcMinValue``).

Real NATS and PostgreSQL, the real execution service and ccxt client against
:class:`~tests.support.backpack.server.BackpackServer`, execution restarted as a user
would:

* ``cancel_open_orders: unknown`` cancels the order placed outside tradebus and leaves
  the bot's; ``all`` cancels both (the bot hears ``OrderCanceled``); ``none`` neither;
* ``sweep_assets`` sells SOL into USDC at market, leaves the ETH dust worth less than
  ``sweep_min_value`` and the BTC a bot bought, and logs each.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import pytest

from tests.support.backpack.auth import Credentials
from tests.support.backpack.market import BTC_USDC, ETH_USDC, SOL_USDC
from tests.support.backpack.server import BackpackServer
from tests.support.execution import (
    Bus,
    audit_events,
    collecting,
    execution_service,
    execution_settings,
)
from tests.support.services import eventually
from tradebus.common.messages import AuditEvent, OrderAccepted, OrderCanceled, OrderFilled

KEY_ENV = "TRADEBUS_TEST_AT_START_KEY"
SECRET_ENV = "TRADEBUS_TEST_AT_START_SECRET"

ACCOUNTS = """
accounts:
  - id: bob-bp
    user: bob
    venue: backpack
    market_data: backpack
    api_url: {url}
    ws_url: {ws_url}
    api_key_env: {key}
    secret_env: {secret}
    rate_per_second: 50
    burst: 20
    poll_seconds: 0.1
    timeout_seconds: 2
    at_start: {at_start}
"""

BOT_BUY = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"bob-bp","symbol":"BTC_USDC",'
    '"side":"buy","qty":"0.001","price":"%s"}'
)


@asynccontextmanager
async def execution(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    server: BackpackServer,
    at_start: str,
) -> AsyncIterator[Bus]:
    """Execution (started now) with bob's Backpack account and its ``at_start`` options."""
    accounts = ACCOUNTS.format(
        url=server.url, ws_url=server.ws_url, key=KEY_ENV, secret=SECRET_ENV, at_start=at_start
    )
    settings = execution_settings(nats_url, database_url, tmp_path, accounts)
    async with collecting(nats_url, Bus) as bus, execution_service(bus.nc, settings):
        yield bus


async def place_outside(server: BackpackServer, creds: Credentials, price: str) -> str:
    """An order placed at the venue without tradebus (the venue's web page): its id."""
    client = server.ccxt_client(creds)
    try:
        order = await client.create_order("BTC/USDC", "limit", "buy", 0.001, float(price))
    finally:
        await client.close()
    return str(order["id"])


async def at_start_done(caplog: pytest.LogCaptureFixture, runs: int) -> bool:
    """True once execution has logged ``runs`` rounds of cancels at start. (A restarted
    execution's readiness cannot tell: its consumers exist from the run before.)"""
    done = [r for r in caplog.records if r.getMessage() == "at start: open orders canceled"]
    return len(done) >= runs


@pytest.fixture
async def server() -> AsyncIterator[BackpackServer]:
    async with BackpackServer((BTC_USDC, ETH_USDC, SOL_USDC)) as s:
        for symbol, price in (("BTC_USDC", "60000"), ("ETH_USDC", "3000"), ("SOL_USDC", "150")):
            await s.feed_trade(symbol, price, "0.01")
        yield s


async def test_cancel_open_orders_at_start_unknown_then_all(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    server: BackpackServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tradebus.execution.account_start")
    creds = server.add_account({"USDC": "10000"})
    monkeypatch.setenv(KEY_ENV, creds.api_key)
    monkeypatch.setenv(SECRET_ENV, creds.secret)
    run = (nats_url, database_url, tmp_path, server)

    async with execution(*run, "{}") as bus:  # default: none
        await bus.pub("intent.bob.bob-ladder", BOT_BUY % ("bob-ladder:1:0", "50000"))
        await eventually(lambda: bus.of(OrderAccepted, "bob-ladder:1:0"), what="accepted")
        (accepted,) = bus.of(OrderAccepted, "bob-ladder:1:0")
    bot_order = accepted.venue_order_id
    outside = await place_outside(server, creds, "49000")

    async with execution(*run, "{cancel_open_orders: none}"):
        pass
    assert {o.id for o in server.open_orders(creds.api_key)} == {bot_order, outside}

    async with execution(*run, "{cancel_open_orders: unknown}") as bus:
        await eventually(lambda: at_start_done(caplog, 1), what="the cancels at start")
        assert [o.id for o in server.open_orders(creds.api_key)] == [bot_order]
        assert not bus.of(OrderCanceled, "bob-ladder:1:0")
    logged = [r for r in caplog.records if "placed outside tradebus" in r.getMessage()]
    assert [r.venue_order_id for r in logged] == [outside]  # type: ignore[attr-defined]

    first_outside, outside = outside, await place_outside(server, creds, "48000")
    async with execution(*run, "{cancel_open_orders: all}") as bus:
        await eventually(lambda: at_start_done(caplog, 2), what="the cancels at start")
        assert server.open_orders(creds.api_key) == []
        await eventually(lambda: bus.of(OrderCanceled, "bob-ladder:1:0"), what="bot hears it")
        audit = [e.after for e in await audit_events(bus) if e.action == "account.cancel_at_start"]
    conn = await asyncpg.connect(database_url)
    try:
        status = await conn.fetchval("SELECT status FROM orders WHERE intent_id = 'bob-ladder:1:0'")
    finally:
        await conn.close()
    assert status == "canceled"
    done = [r for r in caplog.records if r.getMessage() == "at start: open orders canceled"]
    assert [(r.scope, r.outside, r.ledger) for r in done] == [  # type: ignore[attr-defined]
        ("unknown", 1, 0),
        ("all", 1, 1),
    ]
    assert audit == [
        {"scope": "unknown", "outside": [first_outside], "ledger": []},
        {"scope": "all", "outside": [outside], "ledger": ["bob-ladder:bob-ladder:1:0"]},
    ]


async def test_sweep_at_start_sells_sol_leaves_dust_and_what_a_bot_holds(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    server: BackpackServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tradebus.execution.account_start")
    creds = server.add_account({"USDC": "1000", "SOL": "5", "ETH": "0.0015"})
    monkeypatch.setenv(KEY_ENV, creds.api_key)
    monkeypatch.setenv(SECRET_ENV, creds.secret)
    run = (nats_url, database_url, tmp_path, server)

    async with execution(*run, "{}") as bus:  # a bot buys 0.001 BTC (60 USDC)
        await bus.pub("intent.bob.bob-ladder", BOT_BUY % ("bob-ladder:1:0", "60000"))
        await eventually(lambda: bus.of(OrderAccepted, "bob-ladder:1:0"), what="accepted")
        await server.feed_trade("BTC_USDC", "59990", "1")
        await eventually(lambda: bus.of(OrderFilled, "bob-ladder:1:0"), what="the bot's fill")
    btc = server.balances(creds.api_key)["BTC"].available
    assert D(0) < btc <= D("0.001")  # Backpack took the fee in BTC

    options = '{sweep_assets: true, sweep_min_value: "10", sweep_quote: USDC}'
    async with execution(*run, options) as bus:

        def sweep_fills() -> list[OrderFilled]:
            return [e for e in bus.of(OrderFilled) if e.symbol == "SOL_USDC"]

        await eventually(sweep_fills, what="the sweep's fill booked")
        held = server.balances(creds.api_key)
        assert held["SOL"].available == 0 and held["SOL"].locked == 0
        assert held["ETH"].available == D("0.0015")  # 4.50 USDC: under the minimum
        assert held["BTC"].available == btc  # the bot's
        (sold,) = sweep_fills()
        assert (sold.symbol, sold.side, sold.qty, sold.price) == ("SOL_USDC", "sell", D(5), D(150))
        assert sold.intent_id.startswith("sweep:bob-bp:SOL:")

        async def swept() -> list[AuditEvent]:
            return [e for e in await audit_events(bus) if e.action == "account.sweep"]

        await eventually(swept, what="the sweep's audit event")
        audit = await swept()
        assert [
            (e.target, e.after and e.after["symbol"], e.after and D(e.after["qty"])) for e in audit
        ] == [("account:bob-bp", "SOL_USDC", D(5))]
    lines = {r.asset: r.getMessage() for r in caplog.records if hasattr(r, "asset")}
    sold_line = lines.pop("SOL")  # the order's status then: its fill may be booked already
    assert sold_line in (
        "sweep: SOL sold into USDC (accepted)",
        "sweep: SOL sold into USDC (filled)",
    )
    assert lines == {
        "BTC": "sweep: BTC left (held_by_bots)",
        "ETH": "sweep: ETH left (below_minimum)",
    }
    conn = await asyncpg.connect(database_url)
    try:
        journal = await conn.fetch(
            "SELECT asset, amount FROM journal WHERE account_id = 'bob-bp' AND kind = 'fill'"
            " AND ref LIKE '%SOL_USDC%'"
        )
    finally:
        await conn.close()
    assert sorted((r["asset"], r["amount"]) for r in journal) == [("SOL", D(-5)), ("USDC", D(750))]
