"""Exchange accounts through the API: add, list, read, delete, kill switch; never a key out.

The real gateway, the real execution service (with its seal key) and the local
Backpack server, on real NATS and PostgreSQL, driven over HTTP as a user would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from tests.gateway.conftest import ADMIN, Gateway, gateway_settings
from tests.support.backpack.auth import generate_credentials
from tests.support.backpack.server import BackpackServer
from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually, service
from tests.support.ticks import trade
from tradebus.common import subjects
from tradebus.common.codec import decode_audit_event, decode_bots_reply, encode
from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.messages import (
    AuditEvent,
    BotsReply,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
)
from tradebus.common.sealed import write_key_pair
from tradebus.control.botstore import create_spec, get_spec, open_bots
from tradebus.gateway.bootstrap import run as run_gateway
from tradebus.strategies.registry import BotSpec
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

FILE_ACCOUNTS = """
accounts:
  - {id: alice-file, user: alice, balances: {USDT: "500"}}
"""

PLACE = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"%s","symbol":"BTCUSDT",'
    '"side":"buy","qty":"0.001","price":"50000"}'
)


class World:
    """The running gateway and execution of a test, and a bus to watch them."""

    def __init__(self, gateway: Gateway, bus: Bus, server: BackpackServer) -> None:
        self.gateway = gateway
        self.bus = bus
        self.server = server

    async def audit(self, source: str = "gateway") -> list[AuditEvent]:
        js = self.bus.js
        info = await js.stream_info(subjects.STREAM_AUDIT)
        events = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(subjects.STREAM_AUDIT, seq)
            event = decode_audit_event(msg.data or b"")
            if event.source == source:
                events.append(event)
        return events


@pytest.fixture
async def world(nats_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    private, public, _ = write_key_pair(tmp_path / "seal")
    exec_settings = msgspec.structs.replace(
        execution_settings(nats_url, database_url, tmp_path, FILE_ACCOUNTS),
        seal_key_file=str(private),
    )
    settings = gateway_settings(nats_url, database_url, seal_public_key_file=str(public))
    gw = Gateway(url=settings.url, settings=settings, database_url=database_url)
    probe = httpx.AsyncClient(base_url=gw.url, timeout=2.0)

    async def ready() -> bool:
        try:
            return (await probe.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        async with (
            BackpackServer() as server,
            collecting(nats_url, Bus) as bus,
            execution_service(bus.nc, exec_settings),
            service(run_gateway, settings, ready),
        ):
            gw.admin = await gw.person(ADMIN, role="admin")
            yield World(gw, bus, server)
            for client in gw.clients:
                await client.aclose()
    finally:
        await probe.aclose()


def paper(account: str, **extra: Any) -> dict[str, Any]:
    return {"id": account, "balances": {"USDT": "10000"}, "risk": {"max_open_orders": 5}, **extra}


async def test_a_user_adds_reads_stops_and_deletes_their_paper_account(world: World) -> None:
    gw, bus = world.gateway, world.bus
    alice, bob = await gw.person("alice"), await gw.person("bob")

    created = await alice.post("/api/v1/accounts", json=paper("alice-paper"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["sync"] == {"state": "loaded", "message": None}
    account = body["account"]
    assert (account["id"], account["user"], account["venue"]) == ("alice-paper", "alice", "paper")
    assert account["managed_by"] == "api" and account["balances"] == {"USDT": "10000"}
    # execution took it at once: alice's intents on it are accepted
    await bus.pub("intent.alice.manual", PLACE % ("p-1", "alice-paper"))
    await eventually(lambda: bus.of(OrderAccepted, "p-1"), what="an order on the new account")

    listed = (await alice.get("/api/v1/accounts")).json()["accounts"]
    assert [(a["id"], a["managed_by"]) for a in listed] == [
        ("alice-file", "file"),
        ("alice-paper", "api"),
    ]
    detail = (await alice.get("/api/v1/accounts/alice-paper")).json()
    held = {b["asset"]: b for b in detail["balances"]}
    assert held["USDT"]["total"] == "10000" and held["USDT"]["locked"] != "0"
    assert detail["balances_error"] is None and detail["reconciliation"] is None
    file_detail = await alice.get("/api/v1/accounts/alice-file")
    assert file_detail.status_code == 200 and file_detail.json()["account"]["managed_by"] == "file"

    # bob sees none of it, and cannot touch it
    assert (await bob.get("/api/v1/accounts")).json() == {"accounts": []}
    for answer in (
        await bob.get("/api/v1/accounts/alice-paper"),
        await bob.get("/api/v1/accounts/alice-file"),
        await bob.delete("/api/v1/accounts/alice-paper"),
        await bob.post("/api/v1/accounts/alice-paper/killswitch", json={"action": "engage"}),
        await bob.get("/api/v1/accounts/nobody-at-all"),
    ):
        assert answer.status_code == 404, answer.text
        assert "10000" not in answer.text and answer.json()["error"] == "not_found"
    assert (await bob.get("/api/v1/accounts", params={"user": "alice"})).json()["accounts"] == []
    # an admin sees everyone's, or one user's
    admin = gw.admin
    assert admin is not None
    everyone = (await admin.get("/api/v1/accounts")).json()["accounts"]
    assert {a["id"] for a in everyone} == {"alice-file", "alice-paper"}
    only = (await admin.get("/api/v1/accounts", params={"user": "bob"})).json()["accounts"]
    assert only == []

    # the kill switch: engaged, new orders refused, released
    engaged = await alice.post(
        "/api/v1/accounts/alice-paper/killswitch", json={"action": "engage", "reason": "stop"}
    )
    assert engaged.status_code == 200, engaged.text
    assert engaged.json()["engaged"] is True and engaged.json()["canceled"] == 1
    await bus.pub("intent.alice.manual", PLACE % ("p-2", "alice-paper"))
    await eventually(lambda: bus.of(OrderRejected, "p-2"), what="refused while engaged")
    assert bus.of(OrderRejected, "p-2")[0].reason == "kill_switch"
    released = await alice.post(
        "/api/v1/accounts/alice-paper/killswitch", json={"action": "release"}
    )
    assert released.json()["engaged"] is False

    # a bot made through the API on the account goes with it; a file account stays
    kv = await open_bots(bus.js)
    bot = BotSpec(
        id=BotId("alice-bot"),
        user=UserId("alice"),
        account=AccountId("alice-paper"),
        strategy="ladder",
        venue="binance",
        symbol="BTCUSDT",
        managed_by="api",
    )
    await create_spec(kv, bot)
    refused = await alice.delete("/api/v1/accounts/alice-file")
    assert refused.status_code == 409 and refused.json()["field"] == "id"
    gone = await alice.delete("/api/v1/accounts/alice-paper")
    assert gone.status_code == 200, gone.text
    assert (gone.json()["bots_deleted"], gone.json()["bots_disabled"]) == (["alice-bot"], [])
    assert gone.json()["sync"]["state"] == "unloaded"
    assert await get_spec(kv, "alice-bot") is None
    assert (await alice.get("/api/v1/accounts/alice-paper")).status_code == 404
    await bus.pub("intent.alice.manual", PLACE % ("p-3", "alice-paper"))
    await eventually(lambda: bus.of(OrderRejected, "p-3"), what="refused once deleted")
    assert bus.of(OrderRejected, "p-3")[0].reason == "unknown_account"

    actions = [(e.action, e.target, e.actor) for e in await world.audit()]
    for expected in (
        ("account.create", "account:alice-paper", "alice"),
        ("killswitch.engage", "account:alice-paper", "alice"),
        ("killswitch.release", "account:alice-paper", "alice"),
        ("bot.delete", "bot:alice-bot", "alice"),
        ("account.delete", "account:alice-paper", "alice"),
    ):
        assert expected in actions
    deleted = next(e for e in await world.audit() if e.action == "account.delete")
    assert deleted.before is not None and deleted.before["deleted_ns"] is None
    assert deleted.after is not None and deleted.after["deleted_ns"] is not None


async def test_bad_accounts_are_refused_naming_the_field(world: World) -> None:
    alice = await world.gateway.person("alice")
    key = {"apiKey": "k", "secret": "s"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        (paper("x1", venue="nosuchexchange", credentials=key), 400, "venue"),
        (paper("x2", leverage="0"), 400, "leverage"),
        (paper("x3", risk={"max_open_orders": 0}), 400, "risk.max_open_orders"),
        (paper("x4", market_data="nowhere"), 400, "market_data"),
        (paper("x5", credentials=key), 400, "credentials"),
        (paper("x6", colour="red"), 400, "colour"),
        (paper("bad id!"), 400, "id"),
        (paper("x7", balances={"USDT": "-1"}), 400, "balances.USDT"),
        ({"id": "x8", "venue": "backpack", "market_data": "backpack"}, 400, "credentials"),
        (
            {"id": "x9", "venue": "okx", "market_data": "backpack", "credentials": key},
            400,
            "credentials.password",
        ),
        (
            {
                "id": "x10",
                "venue": "backpack",
                "market_data": "backpack",
                "credentials": {**key, "pin": "1"},
            },
            400,
            "credentials.pin",
        ),
        (paper("x11", api_url="http://127.0.0.1:1"), 400, "api_url"),
        (paper("x12", user="bob"), 400, "user"),
        (paper("alice-file"), 409, "id"),
    ]
    for body, status, field in cases:
        answer = await alice.post("/api/v1/accounts", json=body)
        assert answer.status_code == status, (body, answer.text)
        error = answer.json()
        named = [error.get("field"), *(d["field"] for d in error.get("details", []))]
        assert field in named, (body, error)
    assert (await alice.post("/api/v1/accounts", json=paper("dup"))).status_code == 201
    again = await alice.post("/api/v1/accounts", json=paper("dup"))
    assert again.status_code == 409 and again.json()["field"] == "id"
    assert "exists already" in again.json()["message"]
    assert (await alice.post("/api/v1/accounts", content=b"{not json")).status_code == 400


async def test_a_live_account_is_sealed_and_its_keys_never_come_back(
    world: World, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw, server = world.gateway, world.server
    admin = gw.admin
    assert admin is not None
    alice = await gw.person("alice")
    creds = server.add_account({"USDC": "10000"})
    live = {
        "id": "alice-bp",
        "user": "alice",
        "venue": "backpack",
        "market_data": "backpack",
        "api_url": server.url,
        "ws_url": server.ws_url,
        "credentials": {"apiKey": creds.api_key, "secret": creds.secret},
        "rate_per_second": 50,
        "burst": 20,
        "poll_seconds": 0.1,
        "timeout_seconds": 1,
    }
    created = await admin.post("/api/v1/accounts", json=live)  # urls elsewhere: admins only
    assert created.status_code == 201, created.text
    assert created.json()["sync"]["state"] == "loaded"
    assert created.json()["account"]["sealed_credentials"] is True
    detail = await alice.get("/api/v1/accounts/alice-bp")
    held = {b["asset"]: Decimal(b["total"]) for b in detail.json()["balances"]}
    assert held == {"USDC": Decimal(10000)}

    wrong = generate_credentials()
    bad = {
        **live,
        "id": "alice-bad",
        "credentials": {"apiKey": creds.api_key, "secret": wrong.secret},
    }
    halted = await admin.post("/api/v1/accounts", json=bad)
    assert halted.status_code == 201, halted.text
    sync = halted.json()["sync"]
    assert sync["state"] == "failed" and "authentication_error" in sync["message"]

    texts = [created.text, detail.text, halted.text]
    texts += [(await alice.get("/api/v1/accounts")).text]
    texts += [(await admin.get("/api/v1/accounts/alice-bad")).text]
    texts += [msgspec.json.encode(e).decode() for e in await world.audit()]
    texts += [msgspec.json.encode(e).decode() for e in await world.audit("execution")]
    # nor in any log line of the gateway or execution (both run in this process)
    logged = [f"{r.getMessage()} {r.__dict__!r} {r.exc_text or ''}" for r in caplog.records]
    assert any("account loaded" in line for line in logged), "no logs captured"
    texts += logged
    for text in texts:
        for secret in (creds.api_key, creds.secret, wrong.secret):
            assert secret not in text
    # the keys are stored only sealed
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT spec::text AS spec, sealed_credentials FROM account_configs"
        )
    finally:
        await conn.close()
    assert len(rows) == 2
    for row in rows:
        assert row["sealed_credentials"] is not None
        for secret in (creds.api_key, creds.secret, wrong.secret):
            assert secret not in row["spec"] and secret.encode() not in row["sealed_credentials"]


async def test_a_deleted_accounts_bots_stop(world: World, nats_url: str) -> None:
    """A real strategy host runs two ladder bots on an account added through the API, one
    made through the API and one of a bot file; deleting the account stops both (the first
    deleted, the second disabled), cancels their resting orders and refuses what they send."""
    gw, bus = world.gateway, world.bus
    alice = await gw.person("alice")
    body = paper("alice-run", risk={"max_open_orders": 20})
    created = await alice.post("/api/v1/accounts", json=body)
    assert created.status_code == 201 and created.json()["sync"]["state"] == "loaded"
    kv = await open_bots(bus.js)
    params = {
        "total_quote": "1000",
        "order_count": 3,
        "max_drop_pct": "1",
        "take_profit_pct": "0.5",
    }
    for bot, managed_by in (("alice-api-btc", "api"), ("alice-file-btc", "file")):
        spec = BotSpec(
            id=BotId(bot),
            user=UserId("alice"),
            account=AccountId("alice-run"),
            strategy="ladder",
            venue="binance",
            symbol="BTCUSDT",
            params=params,
            managed_by=managed_by,  # type: ignore[arg-type]
        )
        await create_spec(kv, spec)
    host = StrategySettings(
        nats_url=nats_url,
        metrics_port=0,
        stop_timeout_seconds=0.2,
        heartbeat_seconds=0.2,
        lease_seconds=2,
        replica_id="accounts-host",
    )
    bots = {"alice-api-btc", "alice-file-btc"}

    def of_bots(kind: type[Any]) -> list[Any]:
        return [e for e in bus.of(kind) if e.source in bots]

    async def both_run() -> bool:
        listed = await host_bots(bus)
        return listed is not None and set(listed) == bots

    async with service(run_strategy, host, both_run):
        await bus.nc.publish(
            subjects.md_trade("binance", "BTCUSDT"), encode(trade("60000", 1, "BTCUSDT"))
        )
        await eventually(lambda: len(of_bots(OrderAccepted)) == 6, what="the bots' 6 orders")
        assert not of_bots(OrderRejected)
        gone = await alice.delete("/api/v1/accounts/alice-run")
        assert gone.status_code == 200, gone.text
        answer = gone.json()
        assert (answer["bots_deleted"], answer["bots_disabled"]) == (
            ["alice-api-btc"],
            ["alice-file-btc"],
        )
        assert answer["sync"]["state"] == "unloaded"

        async def none_run() -> bool:
            listed = await host_bots(bus)  # the host still answers, without them
            return listed is not None and not bots & set(listed)

        await eventually(none_run, what="the host to stop both bots")
        accepted = {e.intent_id for e in of_bots(OrderAccepted)}
        await eventually(
            lambda: {e.intent_id for e in of_bots(OrderCanceled)} >= accepted - filled(bus),
            what="every resting order of the bots canceled",
        )
        # the file's bot stays in KV, disabled; the API's is gone
        assert await get_spec(kv, "alice-api-btc") is None
        kept = await get_spec(kv, "alice-file-btc")
        assert kept is not None and kept[0].enabled is False and kept[0].managed_by == "file"
        # a tick more: a stopped bot sends nothing; anything still sent is refused by name
        placed = len(of_bots(OrderAccepted))
        await bus.nc.publish(
            subjects.md_trade("binance", "BTCUSDT"), encode(trade("58000", 2, "BTCUSDT"))
        )
        await asyncio.sleep(1.0)
        assert len(of_bots(OrderAccepted)) == placed
        assert {e.reason for e in of_bots(OrderRejected)} <= {"unknown_account"}
    actions = {(e.action, e.target) for e in await world.audit()}
    assert {("bot.delete", "bot:alice-api-btc"), ("bot.disable", "bot:alice-file-btc")} <= actions


def filled(bus: Bus) -> set[str]:
    """Intent ids with a fill that left nothing open."""
    return {e.intent_id for e in bus.of(OrderFilled) if e.leaves_qty == 0}


async def host_bots(bus: Bus) -> dict[str, str] | None:
    """Bot id -> state, as the strategy hosts report them (``ctl.bots.list``); None when
    no host answers."""
    try:
        raw = await bus.nc.request(subjects.ctl("bots", "list"), b"{}", timeout=0.5)
    except Exception:
        return None
    reply = decode_bots_reply(raw.data)
    return {s.bot: s.state for s in reply.bots} if isinstance(reply, BotsReply) else None
