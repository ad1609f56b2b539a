"""Execution with a live (ccxt) account on the local Backpack server, beside a paper account.

Real NATS, real PostgreSQL, the real ccxt client against
:class:`~tests.support.backpack.server.BackpackServer`: an intent is placed on the
server with the ledger's client id, a fill there reaches the ledger and
``exec.evt`` once, a place executed but never answered leaves exactly one
order (resolved by client id, never re-sent), a bad key halts only its
account, and the keys never show in logs, streams or tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import ccxt
import msgspec
import pytest

from tests.support.backpack.auth import Credentials, generate_credentials
from tests.support.backpack.server import BackpackServer
from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.intents import intent_streams
from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_balances_reply, decode_exec_alert
from tradebus.common.config import ConfigError
from tradebus.common.ids import AccountId
from tradebus.common.messages import BalancesQuery, OrderAccepted, OrderFilled, OrderRejected
from tradebus.engine.accounts import load_accounts
from tradebus.execution.keys import Secret, load_keys, required_credentials
from tradebus.execution.live import ccxt_client

KEY_ENV = "TRADEBUS_TEST_BOB_BACKPACK_KEY"

ACCOUNTS = """
accounts:
  - {{id: alice-paper, user: alice, balances: {{USDT: "10000"}}}}
  - id: bob-bp
    user: bob
    venue: backpack
    market_data: backpack
    api_url: {url}
    ws_url: {ws_url}
    api_key_env: {env}
    secret_file: {secret_file}
    rate_per_second: 50
    burst: 20
    poll_seconds: 0.1
    timeout_seconds: 1
"""

BOB = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"bob-bp","symbol":"BTC_USDC",'
    '"side":"buy","qty":"0.01","price":"%s"}'
)
ALICE = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"alice-paper","symbol":"BTCUSDT",'
    '"side":"buy","qty":"0.01","price":"60000"}'
)


@pytest.fixture
async def server() -> AsyncIterator[BackpackServer]:
    async with BackpackServer() as s:
        yield s


def write_accounts(
    server: BackpackServer, creds: Credentials, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    secret_file = tmp_path / "bob_backpack_secret"
    secret_file.write_text(creds.secret + "\n")
    monkeypatch.setenv(KEY_ENV, creds.api_key)
    return ACCOUNTS.format(
        url=server.url, ws_url=server.ws_url, env=KEY_ENV, secret_file=secret_file
    )


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
    accounts = write_accounts(server, creds, tmp_path, monkeypatch)
    settings = execution_settings(nats_url, database_url, tmp_path, accounts)
    async with collecting(nats_url, Bus) as b, execution_service(b.nc, settings):
        yield b


async def fetch_row(database_url: str, sql: str, *args: object) -> asyncpg.Record | None:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow(sql, *args)
    finally:
        await conn.close()


async def test_live_order_is_placed_filled_once_and_balanced(
    bus: Bus,
    server: BackpackServer,
    creds: Credentials,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await bus.pub("intent.bob.manual", BOB % ("b-1", "60000"))
    await eventually(lambda: bus.of(OrderAccepted, "b-1"), what="OrderAccepted")
    (accepted,) = bus.of(OrderAccepted, "b-1")
    placed = server.order(client_id=int(accepted.client_order_id))
    assert placed is not None and placed.symbol == "BTC_USDC"
    assert accepted.venue_order_id == str(placed.id)
    row = await fetch_row(
        database_url,
        "SELECT status, client_order_id, venue_order_id FROM orders WHERE intent_id = 'b-1'",
    )
    assert row is not None and row["status"] == "accepted"
    assert str(row["client_order_id"]) == accepted.client_order_id
    assert row["venue_order_id"] == str(placed.id)

    (fill,) = await server.feed_trade("BTC_USDC", "59990", "1")
    await eventually(lambda: bus.of(OrderFilled, "b-1"), what="OrderFilled")
    await asyncio.sleep(0.5)  # several more polls see the same fill again
    (filled,) = bus.of(OrderFilled, "b-1")
    assert filled.trade_id == f"BTC_USDC:{fill.trade_id}"
    assert (filled.qty, filled.cum_qty, filled.leaves_qty) == (D("0.01"), D("0.01"), D(0))
    conn = await asyncpg.connect(database_url)
    try:
        fills = await conn.fetch("SELECT venue, trade_id, qty FROM fills")
        status = await conn.fetchval("SELECT status FROM orders WHERE intent_id = 'b-1'")
        ledger = {
            r["asset"]: r["total"]
            for r in await conn.fetch(
                "SELECT asset, sum(amount) AS total FROM journal WHERE account_id = 'bob-bp'"
                " GROUP BY asset"
            )
        }
    finally:
        await conn.close()
    assert [(f["venue"], f["trade_id"]) for f in fills] == [
        ("backpack", f"BTC_USDC:{fill.trade_id}")
    ]
    assert status == "filled"

    # balances of the live account come from the venue, and match the ledger
    raw = await request(
        bus.nc, subjects.exec_query("balances"), BalancesQuery(account=AccountId("bob-bp"))
    )
    (account,) = decode_balances_reply(raw).accounts  # type: ignore[union-attr]
    venue = {b.asset: b.total for b in account.balances}
    server_side = server.balances(creds.api_key)
    assert venue == {a: b.total for a, b in server_side.items() if b.total}
    assert {a: v for a, v in ledger.items() if v} == venue

    await assert_keys_nowhere(bus, database_url, caplog, creds)


async def test_an_unanswered_place_leaves_one_order_resolved_by_client_id(
    bus: Bus, server: BackpackServer, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server.stall_next("orderExecute")  # executed, never answered: the client times out
    await bus.pub("intent.bob.manual", BOB % ("b-2", "60000"))
    await eventually(lambda: bus.of(OrderAccepted, "b-2"), timeout=20, what="OrderAccepted")
    (accepted,) = bus.of(OrderAccepted, "b-2")
    assert len(server.orders()) == 1
    assert len(server.requests_for("orderExecute")) == 1  # never sent again
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("place outcome unknown") for m in messages)
    assert "unknown order found at the venue" in messages
    (order,) = server.orders()
    assert order.client_id == int(accepted.client_order_id)
    row = await fetch_row(
        database_url, "SELECT status, venue_order_id FROM orders WHERE intent_id = 'b-2'"
    )
    assert row is not None and (row["status"], row["venue_order_id"]) == ("accepted", order.id)

    # the account trades on: the next order goes out normally
    await bus.pub("intent.bob.manual", BOB % ("b-3", "59000"))
    await eventually(lambda: bus.of(OrderAccepted, "b-3"), what="OrderAccepted b-3")
    assert len(server.orders()) == 2


async def test_a_bad_key_halts_only_its_account(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    server: BackpackServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    # the account's real API key, signed with another secret: a bad signature
    real = server.add_account({"USDC": "10000"})
    stranger = Credentials(api_key=real.api_key, secret=generate_credentials().secret)
    accounts = write_accounts(server, stranger, tmp_path, monkeypatch)
    settings = execution_settings(nats_url, database_url, tmp_path, accounts)
    async with collecting(nats_url, Bus) as bus, execution_service(bus.nc, settings):
        await bus.pub("intent.bob.manual", BOB % ("b-4", "60000"))
        await bus.pub("intent.alice.manual", ALICE % "a-1")
        await eventually(lambda: bus.of(OrderRejected, "b-4"), what="OrderRejected")
        await eventually(lambda: bus.of(OrderAccepted, "a-1"), what="paper OrderAccepted")
        (rejected,) = bus.of(OrderRejected, "b-4")
        assert rejected.reason == "account_halted"
        await bus.pub("intent.bob.manual", BOB % ("b-5", "60000"))
        await eventually(lambda: bus.of(OrderRejected, "b-5"), what="second OrderRejected")
        assert server.orders() == []
        refused = [r for r in server.requests if r.outcome == "auth"]
        assert refused and all(r.error == "Invalid signature" for r in refused), refused
        await assert_keys_nowhere(bus, database_url, caplog, stranger)
        # the alert: on the bus for the owner (durable in EXEC), in the log, as a metric
        js = bus.nc.jetstream()
        raw = await js.get_last_msg(subjects.STREAM_EXEC, subjects.exec_alert("bob", "bob-bp"))
        assert raw.data is not None
        alert = decode_exec_alert(raw.data)
        assert (alert.account, alert.venue) == ("bob-bp", "backpack")
        assert alert.reason == "authentication_error"
        assert "Check its API key, secret and permissions" in alert.message
    alerts = [r for r in caplog.records if getattr(r, "alert", None) == "account_halted"]
    assert len(alerts) == 1 and alerts[0].levelno == logging.ERROR


async def test_a_key_revoked_while_running_halts_the_account(
    bus: Bus, server: BackpackServer, creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server.api_keys.discard(creds.api_key)
    await bus.pub("intent.bob.manual", BOB % ("b-6", "60000"))
    await eventually(lambda: bus.of(OrderRejected, "b-6"), what="OrderRejected")
    (rejected,) = bus.of(OrderRejected, "b-6")
    assert rejected.reason == "account_halted"
    await bus.pub("intent.alice.manual", ALICE % "a-2")
    await eventually(lambda: bus.of(OrderAccepted, "a-2"), what="paper OrderAccepted")
    assert server.orders() == []
    alerts = [r for r in caplog.records if getattr(r, "alert", None) == "account_halted"]
    assert len(alerts) == 1


async def assert_keys_nowhere(
    bus: Bus, database_url: str, caplog: pytest.LogCaptureFixture, creds: Credentials
) -> None:
    """Neither the API key nor the secret is in the logs, the streams or any table."""
    secrets = [creds.api_key, creds.secret]
    logged = [f"{r.getMessage()} {r.__dict__!r} {r.exc_text or ''}" for r in caplog.records]
    assert logged, "no logs captured"
    for text in logged:
        for secret in secrets:
            assert secret not in text
    streams = [subjects.STREAM_EXEC, *(await intent_streams(bus.js))]  # intents: if left
    for stream in streams:
        info = await bus.js.stream_info(stream)
        assert info.state.messages > 0 or stream != subjects.STREAM_EXEC
        if not info.state.messages:
            continue
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await bus.js.get_msg(stream, seq)
            body = (msg.data or b"") + repr(msg.headers).encode()
            for secret in secrets:
                assert secret.encode() not in body
    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        )
        assert columns
        for c in columns:
            column = f'"{c["column_name"]}"'
            if c["data_type"] == "bytea":
                column = f"encode({column}, 'escape')"
            values = await conn.fetch(f'SELECT {column}::text AS v FROM "{c["table_name"]}"')
            for v in values:
                for secret in secrets:
                    assert v["v"] is None or secret not in v["v"], (c["table_name"], c)
    finally:
        await conn.close()


def test_live_account_fields_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(
        "accounts:\n"
        "  - {id: a, user: u, venue: nosuchexchange, api_key_env: K, secret_env: S}\n"
        "  - {id: b, user: u, venue: backpack, api_key_env: K, api_key_file: /x, burst: 0}\n"
        "  - {id: c, user: u, api_key_env: K}\n"
        "  - {id: d, user: u, venue: backpack, market_kind: perpetual, leverage: '2.5',"
        " api_key_env: K, secret_env: S}\n"
    )
    with pytest.raises(ConfigError) as bad:
        load_accounts(path, live_venues=ccxt.exchanges)
    text = str(bad.value)
    assert "accounts[0].venue" in text
    assert "accounts[1]: give exactly one of api_key_env and api_key_file" in text
    assert "accounts[1]: give exactly one of secret_env and secret_file" in text
    assert "accounts[1].burst" in text
    assert "accounts[2].api_key_env: only for live accounts" in text
    assert "accounts[3].leverage: a live venue takes a whole number" in text

    path.write_text(
        "accounts:\n  - {id: b, user: u, venue: backpack, api_key_env: K, secret_file: /nope}\n"
    )
    (spec,) = load_accounts(path)
    with pytest.raises(ConfigError, match=r"K \(API key\) is not set"):
        load_keys(spec, {})
    with pytest.raises(ConfigError, match="cannot read secret file /nope"):
        load_keys(spec, {"K": "the-api-key"})
    (tmp_path / "s").write_text("the-secret\n")
    spec = msgspec.structs.replace(spec, secret_file=str(tmp_path / "s"))
    keys = load_keys(spec, {"K": "the-api-key"})
    assert keys.secret.reveal() == "the-secret" and keys.api_key.reveal() == "the-api-key"
    shown = f"{keys!r} {keys.api_key} {keys.secret!r}"
    assert "the-secret" not in shown and "the-api-key" not in shown
    assert repr(Secret("x")) == "Secret('***')"


def test_a_venue_that_needs_a_passphrase_gets_it_from_the_file_or_a_clear_refusal(
    tmp_path: Path,
) -> None:
    """OKX signs with a passphrase (ccxt's ``password``): an accounts-file entry names it
    as ``password_env``/``password_file``, and one that does not is refused at start,
    naming the missing credential, never a value (issue 18)."""
    path = tmp_path / "accounts.yaml"
    path.write_text(
        "accounts:\n"
        "  - {id: o, user: u, venue: okx, api_key_env: K, secret_env: S}\n"
        "  - {id: p, user: u, venue: okx, api_key_env: K, secret_env: S, password_env: P,"
        " password_file: /x}\n"
        "  - {id: q, user: u, password_env: P}\n"
    )
    with pytest.raises(ConfigError) as bad:
        load_accounts(path, live_venues=ccxt.exchanges)
    text = str(bad.value)
    assert "accounts[1]: give at most one of password_env and password_file" in text
    assert "accounts[2].password_env: only for live accounts" in text
    assert "accounts[0]" not in text  # what the venue requires is checked by execution

    path.write_text("accounts:\n  - {id: o, user: u, venue: okx, api_key_env: K, secret_env: S}\n")
    (spec,) = load_accounts(path, live_venues=ccxt.exchanges)
    env = {"K": "the-key", "S": "the-secret", "P": "the-passphrase"}
    okx = required_credentials("okx")
    assert okx["password"] and not required_credentials("backpack")["password"]
    with pytest.raises(
        ConfigError,
        match="account o: venue okx requires password: give password_env or password_file",
    ):
        load_keys(spec, env, required=okx)
    keys = load_keys(msgspec.structs.replace(spec, password_env="P"), env, required=okx)
    assert keys.ccxt_options() == {
        "apiKey": "the-key",
        "secret": "the-secret",
        "password": "the-passphrase",
    }
    assert "the-passphrase" not in repr(keys) and "password=***" in repr(keys)


async def test_a_venue_down_at_start_makes_its_intents_wait_not_fail(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    server: BackpackServer,
    creds: Credentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # more failures than one call's retries: execution starts with the venue unreachable
    outage = server.fail_next(503, "MAINTENANCE", "Exchange is under maintenance", count=7)
    accounts = write_accounts(server, creds, tmp_path, monkeypatch)
    settings = execution_settings(nats_url, database_url, tmp_path, accounts)
    async with collecting(nats_url, Bus) as bus, execution_service(bus.nc, settings):
        await bus.pub("intent.alice.manual", ALICE % "a-3")
        await bus.pub("intent.bob.manual", BOB % ("b-7", "60000"))
        await eventually(lambda: bus.of(OrderAccepted, "a-3"), what="paper OrderAccepted")
        await eventually(lambda: bus.of(OrderAccepted, "b-7"), timeout=30, what="OrderAccepted")
        assert outage.count == 0 and bus.of(OrderRejected) == []
        (order,) = server.orders()
        assert order.client_id == int(bus.of(OrderAccepted, "b-7")[0].client_order_id)
        # the account was created with what the venue holds, once it answered
        query = BalancesQuery(account=AccountId("bob-bp"))
        raw = await request(bus.nc, subjects.exec_query("balances"), query)
        (account,) = decode_balances_reply(raw).accounts  # type: ignore[union-attr]
        assert {b.asset for b in account.balances} == {"USDC"}


def test_an_account_on_a_testnet_talks_to_it_and_a_venue_without_one_is_refused(
    tmp_path: Path,
) -> None:
    """``sandbox: true`` puts the account on the venue's testnet (ccxt's ``urls['test']``:
    Binance's spot testnet here), for live accounts only; a venue ccxt knows no testnet
    of (Backpack) is refused naming the field (issue 18, "Testnets")."""
    path = tmp_path / "accounts.yaml"
    path.write_text(
        "accounts:\n"
        "  - {id: t, user: u, venue: binance, sandbox: true, api_key_env: K, secret_env: S}\n"
        "  - {id: b, user: u, venue: backpack, sandbox: true, api_key_env: K, secret_env: S}\n"
        "  - {id: p, user: u, sandbox: true}\n"
    )
    with pytest.raises(ConfigError, match=r"accounts\[2\].sandbox: only for live accounts"):
        load_accounts(path, live_venues=ccxt.exchanges)
    path.write_text("\n".join(path.read_text().splitlines()[:3]) + "\n")
    testnet, backpack = load_accounts(path, live_venues=ccxt.exchanges)
    keys = load_keys(testnet, {"K": "the-key", "S": "the-secret"})
    client = ccxt_client(testnet, keys)
    assert client.urls["api"]["public"] == "https://testnet.binance.vision/api/v3"
    with pytest.raises(ConfigError, match="sandbox: ccxt knows no testnet or sandbox of backpack"):
        ccxt_client(backpack, keys)
