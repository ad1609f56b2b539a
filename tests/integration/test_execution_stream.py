"""Fills of a live account from its private order stream, with polling as the fallback.

Real NATS, real PostgreSQL, the execution service with a Backpack account
whose ccxt.pro client streams ``account.orderUpdate`` from the local
Backpack server. Polls are rare while the stream is up (``backstop_seconds``
is long), so a fill booked fast came from the stream. The server then drops
the stream in the middle of fills, resends frames, and answers 429: every
fill reaches the ledger and ``exec.evt`` exactly once, and the account
recovers by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import pytest

from tests.support.backpack.auth import Credentials
from tests.support.backpack.server import BackpackServer
from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually
from tradebus.common.messages import OrderAccepted, OrderFilled

KEY_ENV = "TRADEBUS_TEST_STREAM_KEY"
SECRET_ENV = "TRADEBUS_TEST_STREAM_SECRET"
BACKSTOP_SECONDS = 60

ACCOUNTS = """
accounts:
  - id: bob-bp
    user: bob
    venue: backpack
    market_data: backpack
    api_url: {url}
    ws_url: {ws_url}
    api_key_env: {key_env}
    secret_env: {secret_env}
    rate_per_second: 50
    burst: 20
    poll_seconds: 0.2
    backstop_seconds: {backstop}
    timeout_seconds: 2
"""

BUY = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"bob-bp","symbol":"BTC_USDC",'
    '"side":"buy","qty":"0.03","price":"60000"}'
)
FILLS_PATH = "/wapi/v1/history/fills"


@pytest.fixture
async def server() -> AsyncIterator[BackpackServer]:
    async with BackpackServer() as s:
        yield s


@pytest.fixture
def creds(server: BackpackServer) -> Credentials:
    return server.add_account({"USDC": "10000"})


@pytest.fixture
async def bus(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    server: BackpackServer,
    creds: Credentials,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Bus]:
    monkeypatch.setenv(KEY_ENV, creds.api_key)
    monkeypatch.setenv(SECRET_ENV, creds.secret)
    accounts = ACCOUNTS.format(
        url=server.url,
        ws_url=server.ws_url,
        key_env=KEY_ENV,
        secret_env=SECRET_ENV,
        backstop=BACKSTOP_SECONDS,
    )
    settings = execution_settings(nats_url, database_url, tmp_path, accounts)
    async with collecting(nats_url, Bus) as b, execution_service(b.nc, settings):
        await server.wait_subscribed("account.orderUpdate", creds.api_key, timeout=10)
        yield b


async def place(bus: Bus, server: BackpackServer, intent_id: str) -> str:
    """Place a 0.03 BTC buy; the server's order id."""
    await bus.pub("intent.bob.manual", BUY % intent_id)
    await eventually(lambda: bus.of(OrderAccepted, intent_id), what="OrderAccepted")
    (accepted,) = bus.of(OrderAccepted, intent_id)
    return accepted.venue_order_id


async def ledger_fills(database_url: str) -> list[tuple[str, D]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT trade_id, qty FROM fills ORDER BY ts_event, trade_id")
    finally:
        await conn.close()
    return [(r["trade_id"], r["qty"]) for r in rows]


async def test_fills_come_from_the_stream_while_it_is_up(
    bus: Bus, server: BackpackServer, database_url: str
) -> None:
    order_id = await place(bus, server, "s-1")
    polls_before = len(server.requests_for(FILLS_PATH))
    started = time.monotonic()
    fill = await server.fill_order(order_id, "0.01")
    await eventually(lambda: bus.of(OrderFilled, "s-1"), timeout=5, what="OrderFilled")
    assert time.monotonic() - started < 5 < BACKSTOP_SECONDS
    assert len(server.requests_for(FILLS_PATH)) == polls_before  # no poll: the stream
    (filled,) = bus.of(OrderFilled, "s-1")
    assert filled.trade_id == f"BTC_USDC:{fill.trade_id}"
    assert (filled.qty, filled.price, filled.cum_qty) == (D("0.01"), D("60000"), D("0.01"))
    assert filled.fee == fill.fee and filled.liquidity == "maker"
    assert await ledger_fills(database_url) == [(f"BTC_USDC:{fill.trade_id}", D("0.01"))]


async def test_a_stream_dropped_mid_fill_loses_and_doubles_nothing(
    bus: Bus, server: BackpackServer, creds: Credentials, database_url: str
) -> None:
    order_id = await place(bus, server, "s-2")

    # 1. the stream dies just before telling of a fill: the polls take over
    server.drop_ws_on_next_fill("before")
    await server.fill_order(order_id, "0.01")
    await eventually(lambda: bus.of(OrderFilled, "s-2"), timeout=10, what="fill 1 (polled)")

    # 2. the stream is back (ccxt.pro reconnects and resubscribes), and delivers
    await server.wait_subscribed("account.orderUpdate", creds.api_key, timeout=10)
    polls_before = len(server.requests_for(FILLS_PATH))
    await server.fill_order(order_id, "0.01")
    await eventually(lambda: len(bus.of(OrderFilled, "s-2")) == 2, timeout=5, what="fill 2")

    # 3. the server sends its frames again: nothing is booked twice
    assert await server.resend_ws_frames(10) > 0

    # 4. the stream dies right after telling of a fill: booked once, by one of the two
    server.drop_ws_on_next_fill("after")
    await server.fill_order(order_id, "0.01")
    await eventually(lambda: len(bus.of(OrderFilled, "s-2")) == 3, timeout=10, what="fill 3")
    await server.wait_subscribed("account.orderUpdate", creds.api_key, timeout=10)
    # the lost connection wakes the poller (the stream may have booked the fill first, from
    # ccxt.pro's order cache)
    await eventually(
        lambda: len(server.requests_for(FILLS_PATH)) > polls_before, what="a poll after the drop"
    )
    await asyncio.sleep(1.0)  # time for a duplicate to show, if one were coming

    venue = [(f"BTC_USDC:{f.trade_id}", f.quantity) for f in server.fills(creds.api_key)]
    assert await ledger_fills(database_url) == venue and len(venue) == 3
    events = bus.of(OrderFilled, "s-2")
    assert [e.trade_id for e in events] == [key for key, _ in venue]
    assert [e.cum_qty for e in events] == [D("0.01"), D("0.02"), D("0.03")]
    assert events[-1].leaves_qty == 0


async def test_a_429_storm_pauses_the_account_and_it_recovers(
    bus: Bus, server: BackpackServer, creds: Credentials, database_url: str
) -> None:
    # more 429s than one call's retries: the call gives up, the intent waits in JetStream
    # (nak with a delay) and is tried again, and the account pauses after each 429
    storm = server.rate_limit_next(count=8, match="orderExecute")
    await bus.pub("intent.bob.manual", BUY % "s-3")
    await eventually(lambda: bus.of(OrderAccepted, "s-3"), timeout=30, what="OrderAccepted")
    assert storm.count == 0
    executes = server.requests_for("orderExecute")
    assert [r.status for r in executes] == [429] * 8 + [200]
    assert len(server.orders(creds.api_key)) == 1  # placed once
    # and it trades on: a fill arrives as usual
    (accepted,) = bus.of(OrderAccepted, "s-3")
    await server.fill_order(accepted.venue_order_id)
    await eventually(lambda: bus.of(OrderFilled, "s-3"), timeout=10, what="OrderFilled")
    assert [q for _, q in await ledger_fills(database_url)] == [D("0.03")]
