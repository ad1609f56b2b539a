"""``deploy/nats/nats.conf`` really refuses what a user may not do, and allows what it must.

One nats-server runs with the repository's config (passwords generated for the test,
JetStream in a temp dir): the system account ``TRADEBUS`` (services, operator) and one
account per person. The server answers a forbidden publish or subscription with
``-ERR 'Permissions Violation ...'``, which nats-py hands to the error callback
asynchronously: each refusal is asserted on that callback *and* on the message never
arriving (in a stream or at a subscriber). What a person's reply subjects can reach
is in tests/security/test_reply_subjects.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from tests.support.intents import ensure_intent_streams
from tradebus.cli.localstack import LocalNats
from tradebus.cli.natsauth import SERVICES, conf_users, generate_passwords, with_user
from tradebus.common import subjects
from tradebus.common.bus import (
    MSG_ID,
    IntentQuota,
    deadletter_stream_config,
    ensure_stream,
    ensure_streams,
    intents_stream_config,
    publish_event,
)
from tradebus.control.botstore import open_bots
from tradebus.strategy.kvstore import open_buckets

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "nats.conf"
PEOPLE = ("alice", "bob", "carol", "dave")
SETTLE = 0.3
"""Seconds to wait for a message that must not come (the server answers in microseconds)."""


class Server(msgspec.Struct):
    """The running server: its URL without credentials and each user's password."""

    url: str
    passwords: dict[str, str]


class Conn(msgspec.Struct):
    """A connection and the errors the server reported to it (lowercased)."""

    nc: NATS
    errors: list[str]

    async def violations(self) -> list[str]:
        """Permission errors reported so far (after a round trip to the server)."""
        await self.nc.flush()
        await asyncio.sleep(0.05)  # the error callback runs as its own task
        return [e for e in self.errors if "permissions violation" in e]


Connect = Callable[[str], Awaitable[Conn]]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    passwords, env = generate_passwords(conf_users(CONF))
    local = LocalNats(tmp_path / "nats", CONF, env)
    yield Server(local.start(), passwords)
    local.stop()


@pytest.fixture
async def connect(server: Server) -> AsyncIterator[Connect]:
    """``await connect(user)``: a connection as ``user`` (people use their inbox prefix)."""
    conns: list[NATS] = []

    async def _connect(user: str) -> Conn:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc).lower())

        extra = {"inbox_prefix": f"_INBOX_{user}"} if user in PEOPLE else {}
        nc = await nats.connect(
            with_user(server.url, user, server.passwords[user]),
            error_cb=on_error,
            allow_reconnect=False,
            **extra,
        )
        conns.append(nc)
        return Conn(nc, errors)

    yield _connect
    for nc in conns:
        await nc.close()


async def until_imported(sender: Conn, person: Conn, subject: str, heard: list[str]) -> None:
    """Publish on ``subject`` as ``sender`` until the person's subscription has it (then
    forget it): a stream import's interest is set up a moment after the SUB is flushed."""
    for _ in range(200):
        await sender.nc.publish(subject, b"{}")
        await sender.nc.flush()
        await asyncio.sleep(0.02)
        if subject in heard:
            heard[:] = [s for s in heard if s != subject]
            return
    raise AssertionError(f"{subject} never reached {person}")


async def stream_subjects(nc: NATS, stream: str) -> list[str]:
    """The subject of every message in ``stream`` (read as the operator)."""
    js = nc.jetstream()
    state = (await js.stream_info(stream)).state
    if not state.messages:
        return []
    seqs = range(state.first_seq, state.last_seq + 1)
    stored = []
    for seq in seqs:
        subject = (await js.get_msg(stream, seq)).subject
        assert subject is not None
        stored.append(subject)
    return stored


def test_config_declares_every_service_person_and_the_operator() -> None:
    users = conf_users(CONF)
    assert set(users) >= {*SERVICES, *PEOPLE, "operator"}
    for user, variable in users.items():
        assert variable == f"TRADEBUS_NATS_{user.upper()}_PASSWORD"
    assert 'password: "' not in CONF.read_text() and "password: '" not in CONF.read_text()


async def test_missing_password_variable_stops_the_server(tmp_path: Path) -> None:
    from tradebus.cli.localstack import LocalServerError

    _, env = generate_passwords(conf_users(CONF))
    env.pop("TRADEBUS_NATS_BOB_PASSWORD")
    with pytest.raises(LocalServerError, match="TRADEBUS_NATS_BOB_PASSWORD"):
        LocalNats(tmp_path / "nats", CONF, env).start()


async def test_wrong_password_is_refused(server: Server) -> None:
    with pytest.raises(nats.errors.Error):
        await nats.connect(with_user(server.url, "alice", "wrong"), allow_reconnect=False)


async def test_a_person_sends_and_reads_only_as_themselves(connect: Connect) -> None:
    operator = await connect("operator")
    js = operator.nc.jetstream()
    await ensure_streams(js)
    await ensure_intent_streams(js, ["alice", "bob"])  # as execution makes them
    alice = await connect("alice")

    # allowed: alice's own intent lands in her stream, marked as a person's (JetStream's
    # ack comes back into her own account)
    ack = await alice.nc.jetstream().publish(
        "intent.alice.manual", b"{}", headers={MSG_ID: "alice-1"}
    )
    assert ack.stream == subjects.intents_stream("alice")
    # allowed: her own events and alerts reach her
    own_events: list[str] = []

    async def on_own(msg: Msg) -> None:
        own_events.append(msg.subject)

    await alice.nc.subscribe("exec.evt.alice.>", cb=on_own)
    await alice.nc.subscribe("exec.alert.alice.>", cb=on_own)
    await alice.nc.flush()
    await until_imported(operator, alice, "exec.evt.alice.probe", own_events)
    await until_imported(operator, alice, "exec.alert.alice.probe", own_events)
    assert await alice.violations() == []

    # refused: publishing for bob, and as the operator's or a service's subjects
    for subject in ("intent.bob.x", "exec.evt.alice.manual", "ctl.bots.stop", "md.quote.x.y"):
        await alice.nc.publish(subject, b"{}")
    refused = await alice.violations()
    assert len(refused) == 4 and all("publish" in e for e in refused), refused

    # refused: reading bob's events, every intent, the balances query
    alice.errors.clear()
    spy: list[str] = []

    async def on_spy(msg: Msg) -> None:
        spy.append(msg.subject)

    for subject in ("exec.evt.bob.>", "exec.alert.bob.>", "intent.>", "exec.query.>"):
        await alice.nc.subscribe(subject, cb=on_spy)
    refused = await alice.violations()
    assert len(refused) == 4 and all("subscription" in e for e in refused), refused
    # allowed, and harmless: her account's inboxes hold only her own replies
    await alice.nc.subscribe("_INBOX.>", cb=on_spy)
    assert await alice.violations() == refused

    for subject in ("exec.evt.bob.manual", "exec.alert.bob.bob-paper", "exec.evt.alice.manual"):
        await operator.nc.publish(subject, b"{}")
    await operator.nc.publish("exec.alert.alice.alice-paper", b"{}")
    await operator.nc.publish("_INBOX.someone", b"{}")
    await operator.nc.request("intent.bob.manual", b"{}", timeout=2)  # a reply on _INBOX.
    await operator.nc.flush()
    await asyncio.sleep(SETTLE)
    assert spy == []
    assert sorted(own_events) == ["exec.alert.alice.alice-paper", "exec.evt.alice.manual"]
    assert await stream_subjects(operator.nc, subjects.intents_stream("alice")) == [
        "person.intent.alice.manual"
    ]


async def test_strategy_may_not_publish_events_nor_read_intents(connect: Connect) -> None:
    operator = await connect("operator")
    await ensure_intent_streams(operator.nc.jetstream(), ["alice", "bob"])
    strategy = await connect("strategy")
    await ensure_streams(strategy.nc.jetstream())  # allowed: EXEC and RECON

    # allowed: intents for any user, its KV buckets
    js = strategy.nc.jetstream()
    await js.publish("intent.bob.bob-ladder-btc", b"{}", headers={MSG_ID: "b1"})
    buckets = await open_buckets(js, lease_seconds=5)
    await buckets.state.put("bob-ladder-btc", b"snapshot")
    assert (await buckets.state.get("bob-ladder-btc")).value == b"snapshot"
    await buckets.leases.create("bot.bob-ladder-btc", b"replica-1")
    await buckets.volume.put("volume-eth.bob-volume-eth", b"1")
    await (await open_bots(js)).put("bob-ladder-btc", b"{}")
    assert await strategy.violations() == []

    # refused: order events, the operator's and execution's subjects, a person's subjects
    for subject in (
        "exec.evt.bob.bob-ladder-btc",
        "exec.alert.bob.bob-paper",
        "recon.report.x",
        "person.intent.bob.manual",
    ):
        await strategy.nc.publish(subject, b"{}")
    refused = await strategy.violations()
    assert len(refused) == 4, refused
    # refused: making or changing a user's intent stream (execution's alone)
    strategy.errors.clear()
    with pytest.raises(nats.errors.TimeoutError):  # refused requests are never answered
        await strategy.nc.jetstream(timeout=1).update_stream(
            intents_stream_config("bob", IntentQuota(backlog_msgs=10**9))
        )
    assert len(await strategy.violations()) == 1

    # refused: reading intents (only execution, through its consumers) and execution's queries
    strategy.errors.clear()
    spy: list[str] = []

    async def on_spy(msg: Msg) -> None:
        spy.append(msg.subject)

    for subject in ("intent.>", "exec.query.>", "ctl.killswitch", "recon.>"):
        await strategy.nc.subscribe(subject, cb=on_spy)
    refused = await strategy.violations()
    assert len(refused) == 4 and all("subscription" in e for e in refused), refused
    await operator.nc.publish("intent.alice.manual", b"{}")
    await operator.nc.publish("exec.query.balances", b"{}")
    await operator.nc.flush()
    await asyncio.sleep(SETTLE)
    assert spy == []
    assert await stream_subjects(operator.nc, subjects.STREAM_EXEC) == []
    # the operator's intent is in alice's stream; strategy's own in bob's
    assert await stream_subjects(operator.nc, subjects.intents_stream("alice")) == [
        "intent.alice.manual"
    ]
    assert await stream_subjects(operator.nc, subjects.intents_stream("bob")) == [
        "intent.bob.bob-ladder-btc"
    ]


async def test_execution_consumes_intents_and_publishes_events(connect: Connect) -> None:
    alice = await connect("alice")
    execution = await connect("execution")
    js = execution.nc.jetstream()
    await ensure_streams(js)
    # its own streams: each person's INTENTS_<user>, and DEADLETTER, with their consumers
    await ensure_intent_streams(js, ["alice"])
    await ensure_stream(js, deadletter_stream_config("execution"))
    await alice.nc.jetstream().publish("intent.alice.manual", b"{}", headers={MSG_ID: "a1"})

    stream = subjects.intents_stream("alice")
    await js.add_consumer(
        stream,
        ConsumerConfig(name="execution", durable_name="execution", ack_policy=AckPolicy.EXPLICIT),
    )
    psub = await js.pull_subscribe_bind(durable="execution", stream=stream)
    (msg,) = await psub.fetch(1, timeout=5)
    assert msg.subject == "person.intent.alice.manual"
    await msg.ack()
    events: list[str] = []

    async def on_event(msg: Msg) -> None:
        events.append(msg.subject)

    await alice.nc.subscribe("exec.evt.alice.>", cb=on_event)
    await alice.nc.flush()
    await until_imported(execution, alice, "exec.evt.alice.probe", events)
    await publish_event(js, subjects.exec_evt("alice", "manual"), {"type": "x"}, "evt-1")
    await js.publish(subjects.deadletter_intent("alice"), b"{}")
    kv = await js.create_key_value(bucket=subjects.KV_KILLSWITCH)
    await kv.put("global", b"engaged")
    assert await execution.violations() == []
    await asyncio.sleep(SETTLE)
    assert events == ["exec.evt.alice.manual"]

    # refused: execution may not speak for users, nor delete a stream
    await execution.nc.publish("intent.alice.manual", b"{}")
    with pytest.raises(nats.errors.TimeoutError):  # refused requests are never answered
        await execution.nc.jetstream(timeout=1).delete_stream(stream)
    refused = await execution.violations()
    assert len(refused) == 2, refused


async def test_marketdata_and_reconciler_stay_in_their_lanes(connect: Connect) -> None:
    marketdata = await connect("marketdata")
    reconciler = await connect("reconciler")
    await ensure_streams(reconciler.nc.jetstream())
    await marketdata.nc.publish(subjects.md_quote("binance", "BTCUSDT"), b"{}")
    await marketdata.nc.publish(subjects.feed_status("binance"), b"{}")
    await publish_event(reconciler.nc.jetstream(), subjects.recon_report("x"), {}, "r1")
    assert await marketdata.violations() == [] and await reconciler.violations() == []

    await marketdata.nc.publish("intent.alice.manual", b"{}")
    await marketdata.nc.publish("exec.evt.alice.manual", b"{}")
    await marketdata.nc.subscribe("md.>")
    await reconciler.nc.publish("intent.alice.manual", b"{}")
    await reconciler.nc.subscribe("exec.evt.>")
    assert len(await marketdata.violations()) == 3
    assert len(await reconciler.violations()) == 2
