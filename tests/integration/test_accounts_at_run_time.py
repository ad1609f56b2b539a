"""Accounts added and deleted while execution runs (``account_configs`` + ``ctl.accounts.sync``).

Real NATS, real PostgreSQL, the real execution service; the live venue is the
local Backpack server. A new user's paper account is loaded without a restart
(their ``INTENTS_<user>`` stream appears, their intents fill against replayed
trades), deleted (its open orders canceled, its intents refused
``unknown_account``) while another user's intents keep flowing; a live account
whose keys are sealed to execution trades on Backpack; wrong keys halt it with
a clean message; neither the keys nor the sealed box show in logs, on the bus
or in any other column; a restarted execution loads the table again.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from tests.support.backpack.auth import Credentials, generate_credentials
from tests.support.backpack.server import BackpackServer
from tests.support.execution import (
    Bus,
    audit_events,
    collecting,
    execution_service,
    execution_settings,
)
from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import (
    decode_accounts_sync_reply,
    decode_balances_reply,
    encode,
)
from tradebus.common.config import ConfigError
from tradebus.common.ids import AccountId, UserId
from tradebus.common.messages import (
    AccountsSync,
    AccountsSyncReply,
    BalancesQuery,
    BalancesReply,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    TradeTick,
)
from tradebus.common.sealed import load_public_key, seal, write_key_pair
from tradebus.execution.bootstrap import run as run_execution
from tradebus.execution.settings import ExecutionSettings
from tradebus.ledger.account_configs import AccountConfigs, AccountIdTaken
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.pool import create_pool

FILE_ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000"}}
"""

PLACE = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"%s","symbol":"%s",'
    '"side":"buy","qty":"%s","price":"%s"}'
)


def paper_spec(account: str, user: str) -> dict[str, Any]:
    """A paper account's settings as the gateway stores them."""
    return {
        "id": account,
        "user": user,
        "venue": "paper",
        "market_data": "binance",
        "balances": {"USDT": "10000"},
        "risk": {"max_open_orders": 10},
    }


def live_spec(account: str, user: str, server: BackpackServer) -> dict[str, Any]:
    """A live Backpack account's settings (no key: they are sealed beside it)."""
    return {
        "id": account,
        "user": user,
        "venue": "backpack",
        "market_data": "backpack",
        "api_url": server.url,
        "ws_url": server.ws_url,
        "sealed": True,
        "rate_per_second": 50,
        "burst": 20,
        "poll_seconds": 0.1,
        "timeout_seconds": 1,
    }


class Keys:
    """Execution's seal key pair in a test's directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.private, public, _ = write_key_pair(tmp_path / "seal")
        self.public = load_public_key(public)

    def seal(self, credentials: dict[str, str]) -> bytes:
        return seal(self.public, credentials)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path)


def settings_for(nats_url: str, database_url: str, tmp_path: Path, keys: Keys) -> ExecutionSettings:
    base = execution_settings(nats_url, database_url, tmp_path, FILE_ACCOUNTS)
    return msgspec.structs.replace(base, seal_key_file=str(keys.private))


@pytest.fixture
async def configs(database_url: str) -> AsyncIterator[AccountConfigs]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    yield AccountConfigs(pool)
    await pool.close()


@pytest.fixture
async def server() -> AsyncIterator[BackpackServer]:
    async with BackpackServer() as s:
        yield s


@pytest.fixture
async def bus(
    nats_url: str, database_url: str, tmp_path: Path, keys: Keys, configs: AccountConfigs
) -> AsyncIterator[Bus]:
    settings = settings_for(nats_url, database_url, tmp_path, keys)
    async with collecting(nats_url, Bus) as b, execution_service(b.nc, settings):
        yield b


async def sync(bus: Bus, account: str | None = None, actor: str = "admin") -> AccountsSyncReply:
    message = AccountsSync(account=AccountId(account) if account else None, actor=actor)
    raw = await request(bus.nc, subjects.CTL_ACCOUNTS_SYNC, message, timeout=20)
    reply = decode_accounts_sync_reply(raw)
    assert isinstance(reply, AccountsSyncReply), reply
    return reply


async def balances(bus: Bus, account: str) -> dict[str, D]:
    raw = await request(
        bus.nc, subjects.exec_query("balances"), BalancesQuery(account=AccountId(account))
    )
    reply = decode_balances_reply(raw)
    assert isinstance(reply, BalancesReply), reply
    (one,) = reply.accounts
    return {b.asset: b.total for b in one.balances}


async def replay(bus: Bus, ticks: list[Any], count: int = 200) -> None:
    """Publish the first ``count`` recorded trades as marketdata would."""
    trades = [t for t in ticks if isinstance(t, TradeTick)][:count]
    for tick in trades:
        await bus.nc.publish(subjects.md_trade(tick.venue, tick.symbol), encode(tick))
    await bus.nc.flush()


async def test_a_paper_account_comes_and_goes_while_others_trade(
    bus: Bus, configs: AccountConfigs, btc_ticks: list[Any], database_url: str
) -> None:
    first = next(t for t in btc_ticks if isinstance(t, TradeTick))
    streams_before = {i.config.name for i in await bus.js.streams_info()}
    assert subjects.intents_stream("carol") not in streams_before

    # a new user's account is inserted and synced: their stream appears, intents flow
    for account in ("carol-paper", "carol-spare"):
        spec = paper_spec(account, "carol")
        await configs.create(AccountId(account), UserId("carol"), spec, None, 1)
    reply = await sync(bus)
    assert (reply.loaded, reply.unloaded, reply.failed) == (["carol-paper", "carol-spare"], [], {})
    await bus.js.stream_info(subjects.intents_stream("carol"))  # raises if it is not there
    above = first.price + 500  # marketable: fills on the next trades
    await bus.pub("intent.carol.manual", PLACE % ("c-1", "carol-paper", "BTCUSDT", "0.01", above))
    await eventually(lambda: bus.of(OrderAccepted, "c-1"), what="carol's order accepted")
    await replay(bus, btc_ticks)
    await eventually(lambda: bus.of(OrderFilled, "c-1"), what="carol's order filled")
    held = await balances(bus, "carol-paper")
    assert held["BTC"] == D("0.01") and held["USDT"] < D("10000")

    # a resting order, then the account is deleted while alice keeps trading
    below = first.price - 5000
    await bus.pub("intent.carol.manual", PLACE % ("c-2", "carol-paper", "BTCUSDT", "0.01", below))
    await eventually(lambda: bus.of(OrderAccepted, "c-2"), what="carol's resting order")
    sent: list[str] = []

    async def alice_trades() -> None:
        for i in range(40):
            intent_id = f"a-{i}"
            sent.append(intent_id)
            await bus.pub(
                "intent.alice.manual", PLACE % (intent_id, "alice-paper", "BTCUSDT", "0.001", below)
            )
            await asyncio.sleep(0.01)

    flow = asyncio.create_task(alice_trades())
    await asyncio.sleep(0.1)
    assert await configs.mark_deleted(AccountId("carol-paper"), 2) is not None
    reply = await sync(bus, "carol-paper", actor="carol")
    await flow
    assert (reply.loaded, reply.unloaded, reply.failed) == ([], ["carol-paper"], {})
    await eventually(lambda: bus.of(OrderCanceled, "c-2"), what="carol's order canceled")
    await bus.pub("intent.carol.manual", PLACE % ("c-3", "carol-paper", "BTCUSDT", "0.01", below))
    await eventually(lambda: bus.of(OrderRejected, "c-3"), what="carol's intent refused")
    (refused,) = bus.of(OrderRejected, "c-3")
    assert (refused.reason, refused.account) == ("unknown_account", "carol-paper")
    assert "carol-paper" in refused.message
    await eventually(
        lambda: all(bus.of(OrderAccepted, i) for i in sent), what="every alice intent accepted"
    )
    assert not [e for e in bus.of(OrderRejected) if e.user == "alice"]
    # the ledger keeps everything carol's account did
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT intent_id, status FROM orders WHERE account_id = 'carol-paper'"
        )
        statuses = {r["intent_id"]: r["status"] for r in rows}
        deleted = await conn.fetchval(
            "SELECT deleted_ns FROM account_configs WHERE account_id = 'carol-paper'"
        )
    finally:
        await conn.close()
    assert statuses == {"c-1": "filled", "c-2": "canceled"} and deleted == 2

    # both changes are in the audit stream, with who asked and the settings (no key)
    events = [e for e in await audit_events(bus) if e.target == "account:carol-paper"]
    assert [(e.action, e.actor, e.source, e.user) for e in events] == [
        ("account.load", "admin", "execution", "carol"),
        ("account.unload", "carol", "execution", "carol"),
    ]
    assert events[0].after is not None and events[0].after["market_data"] == "binance"
    assert events[1].before == events[0].after and events[1].details == {"canceled": 1}

    # ids are global: neither a deleted id nor a file account's id can be taken again
    with pytest.raises(AccountIdTaken, match="id: account 'carol-paper' exists already"):
        await configs.create(AccountId("carol-paper"), UserId("x"), {}, None, 3)
    with pytest.raises(AccountIdTaken, match="id: account 'alice-paper' exists already"):
        await configs.create(AccountId("alice-paper"), UserId("x"), {}, None, 3)
    # a file account is not the table's to unload
    reply = await sync(bus, "alice-paper")
    assert "accounts file" in reply.failed[AccountId("alice-paper")] and reply.unloaded == []

    # carol's last account goes: her stream is no longer fetched (what she sends waits there)
    await configs.mark_deleted(AccountId("carol-spare"), 3)
    assert (await sync(bus)).unloaded == ["carol-spare"]
    await bus.pub("intent.carol.manual", PLACE % ("c-4", "carol-spare", "BTCUSDT", "0.01", below))
    await asyncio.sleep(0.5)
    assert not [e for e in bus.events if e.intent_id == "c-4"]
    info = await bus.js.consumer_info(subjects.intents_stream("carol"), "execution")
    assert (info.num_pending, info.num_ack_pending) == (1, 0)


async def test_a_live_account_with_sealed_keys_trades_and_its_keys_show_nowhere(
    bus: Bus,
    configs: AccountConfigs,
    server: BackpackServer,
    keys: Keys,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = server.add_account({"USDC": "10000"})
    box = keys.seal({"apiKey": creds.api_key, "secret": creds.secret})
    await configs.create(
        AccountId("bob-bp"), UserId("bob"), live_spec("bob-bp", "bob", server), box, 1
    )
    reply = await sync(bus)  # every row
    assert (reply.loaded, reply.failed) == (["bob-bp"], {})
    await bus.pub("intent.bob.manual", PLACE % ("b-1", "bob-bp", "BTC_USDC", "0.01", "60000"))
    await eventually(lambda: bus.of(OrderAccepted, "b-1"), what="bob's order accepted")
    (accepted,) = bus.of(OrderAccepted, "b-1")
    placed = server.order(client_id=int(accepted.client_order_id))
    assert placed is not None and placed.symbol == "BTC_USDC"
    (fill,) = await server.feed_trade("BTC_USDC", "59990", "1")
    await eventually(lambda: bus.of(OrderFilled, "b-1"), what="bob's fill")
    assert bus.of(OrderFilled, "b-1")[0].trade_id == f"BTC_USDC:{fill.trade_id}"
    # Backpack takes the buy's fee (2 bps maker) from the BTC bought
    assert (await balances(bus, "bob-bp"))["BTC"] == D("0.01") - D("0.01") * 2 / 10_000

    # deleting it cancels what rests at the venue
    await bus.pub("intent.bob.manual", PLACE % ("b-2", "bob-bp", "BTC_USDC", "0.01", "50000"))
    await eventually(lambda: bus.of(OrderAccepted, "b-2"), what="bob's resting order")
    await configs.mark_deleted(AccountId("bob-bp"), 2)
    assert (await sync(bus)).unloaded == ["bob-bp"]
    await eventually(lambda: bus.of(OrderCanceled, "b-2"), what="bob's order canceled")
    resting = server.order(client_id=int(bus.of(OrderAccepted, "b-2")[0].client_order_id))
    assert resting is not None and resting.status == "Cancelled"
    await assert_nowhere(bus, database_url, caplog, [creds.api_key, creds.secret], box)


async def test_wrong_keys_halt_the_account_with_a_clean_message(
    bus: Bus,
    configs: AccountConfigs,
    server: BackpackServer,
    keys: Keys,
    tmp_path: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    real = server.add_account({"USDC": "10000"})
    wrong = Credentials(api_key=real.api_key, secret=generate_credentials().secret)
    cases = {
        # the venue refuses the signature
        "bob-bad": keys.seal({"apiKey": wrong.api_key, "secret": wrong.secret}),
        # sealed to another key pair: execution cannot open it
        "bob-other": Keys(tmp_path / "other").seal({"apiKey": real.api_key, "secret": "x"}),
        # a credential Backpack requires is missing
        "bob-short": keys.seal({"apiKey": real.api_key}),
    }
    for account, box in cases.items():
        spec = live_spec(account, "bob", server)
        await configs.create(AccountId(account), UserId("bob"), spec, box, 1)
    reply = await sync(bus)
    assert sorted(reply.loaded) == sorted(cases)
    assert "refuses the account's keys (authentication_error)" in reply.failed[AccountId("bob-bad")]
    assert "sealed to another key" in reply.failed[AccountId("bob-other")]
    assert "credentials.secret: required by backpack" in reply.failed[AccountId("bob-short")]
    for i, account in enumerate(cases):
        await bus.pub("intent.bob.manual", PLACE % (f"h-{i}", account, "BTC_USDC", "0.01", "1"))
    await eventually(lambda: len(bus.of(OrderRejected)) == 3, what="three refusals")
    assert {e.reason for e in bus.of(OrderRejected)} == {"account_halted"}
    assert server.orders() == []
    secrets = [real.api_key, real.secret, wrong.secret]
    text = msgspec.json.encode(reply).decode()
    assert all(s not in text for s in secrets)
    await assert_nowhere(bus, database_url, caplog, secrets, cases["bob-bad"])


async def test_a_restart_loads_the_table_and_refuses_an_id_in_both(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    keys: Keys,
    configs: AccountConfigs,
    btc_ticks: list[Any],
) -> None:
    first = next(t for t in btc_ticks if isinstance(t, TradeTick))
    await configs.create(
        AccountId("dave-paper"), UserId("dave"), paper_spec("dave-paper", "dave"), None, 1
    )
    await configs.create(
        AccountId("erin-paper"), UserId("erin"), paper_spec("erin-paper", "erin"), None, 1
    )
    await configs.mark_deleted(AccountId("erin-paper"), 2)
    settings = settings_for(nats_url, database_url, tmp_path, keys)
    price = first.price + 500
    for run in range(2):  # the first start, and a restart: the table is loaded each time
        async with collecting(nats_url, Bus) as bus, execution_service(bus.nc, settings):
            intent_id = f"d-{run}"
            await bus.pub(
                "intent.dave.manual", PLACE % (intent_id, "dave-paper", "BTCUSDT", "0.01", price)
            )
            accepted = lambda b=bus, i=intent_id: b.of(OrderAccepted, i)  # noqa: E731
            await eventually(accepted, what="dave's order")
            await replay(bus, btc_ticks)
            filled = lambda b=bus, i=intent_id: b.of(OrderFilled, i)  # noqa: E731
            await eventually(filled, what="dave's fill")
            # the deleted account is not loaded, and its user has no stream
            names = {i.config.name for i in await bus.js.streams_info()}
            assert subjects.intents_stream("erin") not in names
            assert subjects.intents_stream("dave") in names
        # restored from the ledger: the second run sees the first run's fill
    conn = await asyncpg.connect(database_url)
    try:
        filled = await conn.fetchval(
            "SELECT count(*) FROM orders WHERE account_id = 'dave-paper' AND status = 'filled'"
        )
    finally:
        await conn.close()
    assert filled == 2

    # an id both in the file and in the table stops execution at start, named
    both = FILE_ACCOUNTS + '  - {id: dave-paper, user: dave, balances: {USDT: "1"}}\n'
    bad = msgspec.structs.replace(
        execution_settings(nats_url, database_url, tmp_path, both),
        seal_key_file=str(keys.private),
    )
    with pytest.raises(ConfigError, match=r"account dave-paper: both in .* and added at run time"):
        await run_execution(bad, asyncio.Event())


async def assert_nowhere(
    bus: Bus,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    secrets: list[str],
    box: bytes,
) -> None:
    """Neither a key nor the sealed box is in the logs, on the bus, or in a column other
    than ``account_configs.sealed_credentials``."""
    shown = [box.hex(), base64.b64encode(box).decode(), base64.b64encode(box[:24]).decode()]
    needles = [*secrets, *shown]
    logged = [f"{r.getMessage()} {r.__dict__!r} {r.exc_text or ''}" for r in caplog.records]
    assert logged, "no logs captured"
    for text in logged:
        for needle in needles:
            assert needle not in text
    infos = await bus.js.streams_info()
    assert {subjects.STREAM_EXEC, subjects.STREAM_AUDIT} <= {i.config.name for i in infos}
    for info in infos:
        name = info.config.name
        assert name is not None
        if not info.state.messages:
            continue
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await bus.js.get_msg(name, seq)
            except Exception:
                continue  # deleted (acked intents of a work queue)
            body = (msg.data or b"") + repr(msg.headers).encode()
            for needle in needles:
                assert needle.encode() not in body, name
            assert box not in body and box[:24] not in body, name
    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
        for c in columns:
            where = (c["table_name"], c["column_name"])
            column = f'"{c["column_name"]}"'
            if c["data_type"] == "bytea":
                values = await conn.fetch(f'SELECT {column} AS v FROM "{c["table_name"]}"')
                for v in values:
                    if v["v"] is None:
                        continue
                    if where == ("account_configs", "sealed_credentials"):
                        assert all(s.encode() not in v["v"] for s in secrets)
                    else:
                        assert box[:24] not in v["v"], where
                continue
            values = await conn.fetch(f'SELECT {column}::text AS v FROM "{c["table_name"]}"')
            for v in values:
                for needle in needles:
                    assert v["v"] is None or needle not in v["v"], where
    finally:
        await conn.close()
