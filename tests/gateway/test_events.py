"""``/api/v1/events``: live order events and bot status changes over a WebSocket.

The real gateway on real NATS and PostgreSQL; order events are published on
``EXEC`` as execution publishes them, status changes on ``bot.status.*`` as a
strategy host does (tests/integration/test_bot_status_events.py runs the
host itself). The client is the ``websockets`` library, as a program would use.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.gateway.conftest import Gateway
from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.ids import AccountId, BotId, IntentId, UserId
from tradebus.common.messages import BotStatus, BotStatusChanged, OrderAccepted, OrderFilled
from tradebus.control.botstore import create_spec, open_bots
from tradebus.gateway import events as hub_module
from tradebus.gateway.security import AccessTokens
from tradebus.strategies.registry import BotSpec

WAIT = 10.0


def ws_url(gateway: Gateway) -> str:
    return gateway.url.replace("http://", "ws://") + "/api/v1/events"


class Client:
    """One WebSocket client: every frame it read, in order."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    async def read_until(self, done: Any, timeout: float = WAIT) -> list[dict[str, Any]]:
        """Read frames until ``done(frames)`` is true; every frame read so far."""
        async with asyncio.timeout(timeout):
            while not done(self.frames):
                self.frames.append(json.loads(await self.ws.recv()))
        return self.frames

    async def read_for(self, seconds: float) -> list[dict[str, Any]]:
        """Read whatever comes for ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                while True:
                    self.frames.append(json.loads(await self.ws.recv()))
        except TimeoutError:
            pass
        return self.frames

    def orders(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "order"]

    def statuses(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "status"]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == kind]


async def open_client(gateway: Gateway, hello: dict[str, Any], **kw: Any) -> Client:
    """Connect and send ``hello`` (the auth message)."""
    ws = await connect(ws_url(gateway), open_timeout=WAIT, **kw)
    await ws.send(json.dumps(hello))
    return Client(ws)


async def sign_in(gateway: Gateway, user: str) -> tuple[str, str]:
    """Create ``user``; their password and an access token."""
    session = await gateway.person(user)
    return session.password, session.tokens["access_token"]


async def watch(gateway: Gateway, token: str, max_queue: int | None = 16, **extra: Any) -> Client:
    """A client of ``token``'s events, ready (its ``ready`` frame read)."""
    client = await open_client(
        gateway, {"type": "auth", "token": token, **extra}, max_queue=max_queue
    )
    await client.read_until(lambda frames: any(f["type"] == "ready" for f in frames))
    return client


async def closed(client: Client, timeout: float = WAIT) -> ConnectionClosed:
    """The close of ``client``'s connection (frames read meanwhile are kept)."""
    try:
        await client.read_until(lambda frames: False, timeout)
    except ConnectionClosed as exc:
        return exc
    raise AssertionError("still open")


def accepted(user: str, bot: str, n: int) -> OrderAccepted:
    return OrderAccepted(
        intent_id=IntentId(f"{bot}-{n}"), user=UserId(user), source=bot,
        account=AccountId(f"{user}-paper"), symbol="BTCUSDT", side="buy", order_type="limit",
        price=Decimal(60000), qty=Decimal("0.001"), client_order_id=f"c{n}",
        venue_order_id=f"v{n}", ts_event=n,
    )  # fmt: skip


def filled(user: str, bot: str, n: int) -> OrderFilled:
    return OrderFilled(
        intent_id=IntentId(f"{bot}-{n}"), user=UserId(user), source=bot,
        account=AccountId(f"{user}-paper"), symbol="BTCUSDT", side="buy", trade_id=f"t{n}",
        price=Decimal(60000), qty=Decimal("0.001"), fee=Decimal(0), fee_asset="USDT",
        liquidity="maker", cum_qty=Decimal("0.001"), leaves_qty=Decimal(0), ts_event=n,
    )  # fmt: skip


async def publish(nc: NATS, user: str, n: int, fill: bool = False) -> int:
    """Publish order event ``n`` of ``user``'s bot on ``EXEC``; its stream sequence."""
    bot = f"{user}-btc"
    event = filled(user, bot, n) if fill else accepted(user, bot, n)
    ack = await nc.jetstream().publish(
        subjects.exec_evt(user, bot), encode(event), headers={"Nats-Msg-Id": f"{user}-{n}-{fill}"}
    )
    return int(ack.seq)


def status_of(user: str, state: str, placed: int = 0) -> BotStatus:
    return BotStatus(
        bot=f"{user}-btc", user=user, account=f"{user}-paper", strategy="ladder",
        venue="binance", symbol="BTCUSDT", state=state, orders_placed=placed, host="h1",
    )  # fmt: skip


async def publish_status(nc: NATS, status: BotStatus) -> None:
    changed = BotStatusChanged(status=status, ts_event=time.time_ns())
    await nc.publish(subjects.bot_status(status.user, status.bot), encode(changed))
    await nc.flush()


async def add_bot(nc: NATS, user: str) -> None:
    await create_spec(
        await open_bots(nc.jetstream()),
        BotSpec(id=BotId(f"{user}-btc"), user=UserId(user), account=AccountId(f"{user}-paper"),
                strategy="ladder", venue="binance", symbol="BTCUSDT"),
    )  # fmt: skip


@pytest.fixture
async def watchers() -> AsyncIterator[list[Client]]:
    """Clients to close at the end of a test."""
    clients: list[Client] = []
    yield clients
    for client in clients:
        await client.ws.close()


async def test_each_user_sees_their_own_orders_and_statuses_only(
    gateway: Gateway, nc: NATS, watchers: list[Client]
) -> None:
    _, alice_token = await sign_in(gateway, "alice")
    _, bob_token = await sign_in(gateway, "bob")
    for user in ("alice", "bob"):
        await add_bot(nc, user)
    assert gateway.admin is not None
    alice = await watch(gateway, alice_token)
    bob = await watch(gateway, bob_token)
    everyone = await watch(gateway, gateway.admin.tokens["access_token"], all_users=True)
    watchers.extend([alice, bob, everyone])

    ready = alice.of_type("ready")[0]
    assert ready["user"] == "alice" and ready["watching"] == "alice"
    # on connect: the current status of each of their bots (no host runs them: null)
    await alice.read_until(lambda f: any(x["type"] == "status" for x in f))
    assert [(s["bot"], s["status"]) for s in alice.statuses()] == [("alice-btc", None)]
    await everyone.read_until(lambda f: len([x for x in f if x["type"] == "status"]) == 2)
    assert {s["bot"] for s in everyone.statuses()} == {"alice-btc", "bob-btc"}

    alice_seqs = [await publish(nc, "alice", 1), await publish(nc, "alice", 1, fill=True)]
    bob_seq = await publish(nc, "bob", 1)
    await publish_status(nc, status_of("alice", "running", placed=4))
    await publish_status(nc, status_of("bob", "paused"))

    def got(n_orders: int, n_statuses: int) -> Any:
        return lambda f: (
            len([x for x in f if x["type"] == "order"]) >= n_orders
            and len([x for x in f if x["type"] == "status"]) >= n_statuses
        )

    await alice.read_until(got(2, 2))
    await bob.read_until(got(1, 2))
    await everyone.read_until(got(3, 4))
    await alice.read_for(0.5)  # anything of bob's would have arrived by now
    await bob.read_for(0.2)

    assert [o["seq"] for o in alice.orders()] == alice_seqs
    assert [o["event"]["type"] for o in alice.orders()] == ["OrderAccepted", "OrderFilled"]
    assert alice.orders()[1]["event"]["price"] == "60000"
    assert alice.orders()[0]["subject"] == "exec.evt.alice.alice-btc"
    live = alice.statuses()[1]
    assert live["status"]["state"] == "running" and live["status"]["orders_placed"] == 4
    frames = json.dumps(alice.frames)
    assert "bob" not in frames, frames  # not one event, status or id of bob's
    assert [o["seq"] for o in bob.orders()] == [bob_seq]
    assert "alice" not in json.dumps(bob.frames)
    assert sorted(o["seq"] for o in everyone.orders()) == sorted([*alice_seqs, bob_seq])

    # a reconnect gets the current statuses first: the hub's last change of each
    again = await watch(gateway, alice_token)
    watchers.append(again)
    await again.read_until(lambda f: any(x["type"] == "status" for x in f))
    assert again.statuses()[0]["status"]["orders_placed"] == 4


async def test_reconnect_with_since_seq_gets_exactly_the_missed_events(
    gateway: Gateway, nc: NATS, watchers: list[Client]
) -> None:
    _, token = await sign_in(gateway, "alice")
    first = await watch(gateway, token)
    seqs = [await publish(nc, "alice", n) for n in range(1, 4)]
    await first.read_until(lambda f: len([x for x in f if x["type"] == "order"]) == 3)
    last_seen = first.orders()[-1]["seq"]
    assert last_seen == seqs[-1]
    await first.ws.close()

    # while away: three more of alice's, interleaved with bob's
    missed = []
    for n in range(4, 7):
        missed.append(await publish(nc, "alice", n))
        await publish(nc, "bob", n)

    second = await watch(gateway, token, since_seq=last_seen)
    watchers.append(second)
    await second.read_until(lambda f: any(x["type"] == "caught_up" for x in f))
    caught_up = second.of_type("caught_up")[0]
    assert [o["seq"] for o in second.orders()] == missed
    assert [o["event"]["intent_id"] for o in second.orders()] == [
        f"alice-btc-{n}" for n in range(4, 7)
    ]
    assert caught_up == {"type": "caught_up", "seq": missed[-1], "replayed": 3, "gap": False}
    # then live, each once
    live = await publish(nc, "alice", 7)
    await second.read_until(lambda f: len([x for x in f if x["type"] == "order"]) == 4)
    await second.read_for(0.3)
    assert [o["seq"] for o in second.orders()] == [*missed, live]

    # resuming from the last seq: nothing to replay
    third = await watch(gateway, token, since_seq=live)
    watchers.append(third)
    await third.read_until(lambda f: any(x["type"] == "caught_up" for x in f))
    assert third.orders() == [] and third.of_type("caught_up")[0]["replayed"] == 0


async def test_bad_tokens_and_requests_are_closed_with_policy_violation(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await sign_in(gateway, "alice")
    expired = AccessTokens(gateway.settings.jwt_secret, -60).issue(UserId("alice"), "user")
    forged = AccessTokens("x" * 40, 600).issue(UserId("alice"), "admin")
    cases: dict[str, dict[str, Any]] = {
        "tampered": {"type": "auth", "token": token[:-3] + "AAA"},
        "expired": {"type": "auth", "token": expired},
        "forged": {"type": "auth", "token": forged},
        "not an admin": {"type": "auth", "token": token, "all_users": True},
        "another user": {"type": "auth", "token": token, "user": "bob"},
        "unknown field": {"type": "auth", "token": token, "x": 1},
        "bad since_seq": {"type": "auth", "token": token, "since_seq": -1},
        "not auth": {"type": "subscribe", "token": token},
    }
    for case, hello in cases.items():
        client = await open_client(gateway, hello)
        close = await closed(client)
        assert close.rcvd is not None and close.rcvd.code == 1008, (case, close)
        assert client.frames == [], case  # nothing was sent before the close
        assert token not in close.rcvd.reason and expired not in close.rcvd.reason
    # not JSON
    ws = await connect(ws_url(gateway))
    await ws.send("hello")
    close = await closed(Client(ws))
    assert close.rcvd is not None and close.rcvd.code == 1008
    assert "not JSON" in close.rcvd.reason
    # no auth message in time
    monkeypatch.setattr("tradebus.gateway.routes.events.AUTH_SECONDS", 0.3)
    ws = await connect(ws_url(gateway))
    close = await closed(Client(ws))
    assert close.rcvd is not None and close.rcvd.code == 1008


async def test_the_connection_closes_when_the_token_expires_unless_renewed(
    gateway: Gateway,
) -> None:
    await gateway.add_user("alice", "alice-password-1")
    # JWT times are whole seconds: a token of LIFE seconds expires within LIFE-1 to LIFE s.
    life = 4
    tokens = AccessTokens(gateway.settings.jwt_secret, life)
    client = await watch(gateway, tokens.issue(UserId("alice"), "user"))
    await client.ws.send(json.dumps({"type": "auth", "token": tokens.issue(UserId("bob"), "user")}))
    close = await closed(client, timeout=5)  # bob is no user: his token is refused
    assert close.rcvd is not None and close.rcvd.code == 1008

    client = await watch(gateway, tokens.issue(UserId("alice"), "user"))
    started = time.monotonic()
    await asyncio.sleep(1.0)  # well before the first token expires
    fresh = AccessTokens(gateway.settings.jwt_secret, 600).issue(UserId("alice"), "user")
    await client.ws.send(json.dumps({"type": "auth", "token": fresh}))
    await client.read_until(lambda f: any(x["type"] == "renewed" for x in f))
    await client.read_for(life + 0.5 - (time.monotonic() - started))  # past its expiry
    assert client.ws.close_code is None and time.monotonic() - started > life
    await client.ws.close()

    client = await watch(gateway, tokens.issue(UserId("alice"), "user"))
    close = await closed(client, timeout=life + 2)
    assert close.rcvd is not None and close.rcvd.code == 1008
    assert "expired" in close.rcvd.reason


@pytest.fixture
def small_queues(monkeypatch: pytest.MonkeyPatch) -> int:
    """Subscribers of the gateway started after this hold 128 frames at most."""
    monkeypatch.setattr(hub_module, "QUEUE_LIMIT", 128)
    return 128


def small_socket(gateway: Gateway) -> socket.socket:
    """A TCP connection to the gateway with a 4 KiB receive buffer (fills up at once)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((gateway.settings.http_host, gateway.settings.http_port))
    sock.setblocking(False)
    return sock


async def test_a_slow_client_is_closed_with_its_resume_seq_and_never_slows_another(
    small_queues: int, gateway: Gateway, nc: NATS, watchers: list[Client]
) -> None:
    _, token = await sign_in(gateway, "alice")
    # the slow one: never reads (a small receive buffer, its library's queue of 4 full)
    slow = await open_client(
        gateway,
        {"type": "auth", "token": token},
        sock=small_socket(gateway),
        max_queue=4,
        compression=None,
    )
    # registered before the first event (it has no since_seq: it gets what comes after)
    await slow.read_until(lambda frames: any(f["type"] == "ready" for f in frames))
    fast = await watch(gateway, token, max_queue=None)  # its library reads all it can
    watchers.extend([slow, fast])

    n = 12_000  # more than the kernel's send buffer (4 MiB here) holds of them
    started = time.monotonic()
    seqs = []
    for chunk in range(0, n, 1000):
        batch = range(chunk + 1, chunk + 1001)
        seqs += await asyncio.gather(*(publish(nc, "alice", i) for i in batch))
    seqs.sort()
    await fast.read_until(lambda f: len([x for x in f if x["type"] == "order"]) == n, 90)
    took = time.monotonic() - started
    assert [o["seq"] for o in fast.orders()] == seqs  # all, in order, despite the slow one
    print(f"\n{n} events to the fast client in {took:.2f} s with a stalled one beside it")
    health = await gateway.client().get("/healthz")
    assert health.status_code == 200

    # the slow one: what fitted in the buffers, then closed with the seq to resume from
    close = await closed(slow, timeout=30)
    assert close.rcvd is not None and close.rcvd.code == 4001, close
    got = [o["seq"] for o in slow.orders()]
    assert len(got) < n and got == seqs[: len(got)]
    resume = int(close.rcvd.reason.rsplit("since_seq=", 1)[1])
    assert resume == (got[-1] if got else 0)

    # and resumes from there: exactly the rest
    again = await watch(gateway, token, since_seq=resume)
    watchers.append(again)
    await again.read_until(lambda f: any(x["type"] == "caught_up" for x in f), 30)
    assert [o["seq"] for o in again.orders()] == seqs[len(got) :]
