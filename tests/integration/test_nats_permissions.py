"""The NATS identities really refuse what a user may not do, and allow what it must.

One nats-server runs in operator mode with fresh identities (``secure_nats``:
``tradebus nats-init``'s, JetStream in a temp dir): the account ``TRADEBUS``
(services, gateway, operator, each user with its own allow-list of
:mod:`tradebus.natsauth.permissions`) and one account per person. The server
answers a forbidden publish or subscription with ``-ERR 'Permissions Violation
...'``, which nats-py hands to the error callback asynchronously: each refusal
is asserted on that callback *and* on the message never arriving (in a stream or
at a subscriber). What a person's reply subjects can reach is in
tests/security/test_reply_subjects.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tests.support.intents import ensure_intent_streams
from tests.support.secure_nats import Conn, SecureNats
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
from tradebus.natsauth.accounts import person_credentials, system_user_creds
from tradebus.natsauth.claims import KeyPair
from tradebus.natsauth.identities import write_secret
from tradebus.natsauth.permissions import GATEWAY_AUDIT
from tradebus.strategy.kvstore import open_buckets

SETTLE = 0.3
"""Seconds to wait for a message that must not come (the server answers in microseconds)."""

Connect = Callable[[str], Awaitable[Conn]]


@pytest.fixture
def connect(secure_nats: SecureNats) -> Connect:
    """``await connect(user)``: a connection with ``user``'s credentials."""
    return secure_nats.connect


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


async def test_only_credentials_the_operator_signed_are_accepted(
    secure_nats: SecureNats, tmp_path: Path
) -> None:
    # a user of an account the operator never signed: refused
    stranger = KeyPair.generate("account")
    forged = tmp_path / "forged.creds"
    write_secret(forged, system_user_creds(stranger, "operator"))
    with pytest.raises((nats.errors.Error, OSError)):
        await secure_nats.connect(forged)
    # a person's credentials for someone else's account: refused
    identities = secure_nats.installation.identities
    bob_account = secure_nats.registrar().account_public_key("bob")
    with pytest.raises(ValueError, match="not the NATS account of alice"):
        person_credentials(identities, "alice", bob_account, 60)
    # expired credentials: refused
    expired = tmp_path / "expired.creds"
    account = secure_nats.registrar().account_public_key("alice")
    write_secret(expired, person_credentials(identities, "alice", account, 1, now=1_000))
    with pytest.raises((nats.errors.Error, OSError)):
        await secure_nats.connect(expired)
    # and the real ones work
    assert (await secure_nats.connect("alice")).nc.is_connected


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
    forbidden = (
        "intent.bob.x",
        "exec.evt.alice.manual",
        "ctl.bots.stop",
        "md.quote.x.y",
        "person.intent.alice.x",
        "$KV.bots.alice-bot",
        "$JS.API.STREAM.INFO.INTENTS_alice",
        "$SYS.REQ.CLAIMS.UPDATE",
    )
    for subject in forbidden:
        await alice.nc.publish(subject, b"{}")
    refused = await alice.violations()
    assert len(refused) == len(forbidden) and all("publish" in e for e in refused), refused

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


async def test_execution_reads_kv_bots_and_never_writes_it(connect: Connect) -> None:
    """The strategy groups' capital caps (tradebus.execution.bot_groups): execution makes
    KV ``bots`` if missing and watches it; writing a spec is refused."""
    execution = await connect("execution")
    js = execution.nc.jetstream(timeout=2)
    bots = await open_bots(js)
    strategy = await connect("strategy")
    await (await open_bots(strategy.nc.jetstream())).put("alice-dual-a", b'{"id":"x"}')
    watcher = await bots.watchall()
    entry = await watcher.updates(timeout=2)
    assert entry is not None and (entry.key, entry.value) == ("alice-dual-a", b'{"id":"x"}')
    assert (await bots.get("alice-dual-a")).value == b'{"id":"x"}'
    await watcher.stop()
    assert await execution.violations() == []

    with pytest.raises(nats.errors.TimeoutError):  # refused requests are never answered
        await bots.put("alice-dual-a", b"{}")
    assert len(await execution.violations()) == 1


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


async def test_the_notifier_reads_every_users_events_and_publishes_nothing(
    connect: Connect,
) -> None:
    notifier = await connect("notifier")
    operator = await connect("operator")
    heard: list[str] = []

    async def on_msg(msg: Msg) -> None:
        heard.append(msg.subject)

    for subject in ("exec.evt.>", "exec.alert.>", "recon.alert.>", "bot.status.>"):
        await notifier.nc.subscribe(subject, cb=on_msg)
    await notifier.nc.subscribe("$KV.killswitch.>", cb=on_msg)
    await notifier.nc.flush()
    sent = [
        subjects.exec_evt("alice", "ladder-1"),
        subjects.exec_evt("bob", "manual"),
        subjects.exec_alert("bob", "bob-paper"),
        subjects.recon_alert("alice-paper"),
        subjects.bot_status("carol", "grid-1"),
        subjects.kv_subject(subjects.KV_KILLSWITCH, "global"),
    ]
    for subject in sent:
        await operator.nc.publish(subject, b"{}")
    await operator.nc.flush()
    await asyncio.sleep(SETTLE)
    assert sorted(heard) == sorted(sent)
    assert await notifier.violations() == []

    await notifier.nc.publish(subjects.intent("alice", "manual"), b"{}")
    await notifier.nc.publish(subjects.exec_evt("alice", "ladder-1"), b"{}")
    await notifier.nc.subscribe("intent.>")
    await notifier.nc.subscribe("md.>")
    assert len(await notifier.violations()) == 4


async def test_every_service_ensures_the_shared_streams_and_audits_itself(
    connect: Connect,
) -> None:
    """What each service's start asks (``ensure_streams``: EXEC, RECON, AUDIT) and its
    audit trail (``audit.<service>``); marketdata does neither."""
    operator = await connect("operator")
    for name in ("strategy", "execution", "reconciler", "gateway"):
        conn = await connect(name)
        js = conn.nc.jetstream(timeout=3)
        await ensure_streams(js)
        ack = await js.publish(subjects.audit(name), b"{}")
        assert ack.stream == subjects.STREAM_AUDIT
        await conn.nc.publish(subjects.audit("someone-else"), b"{}")
        refused = await conn.violations()
        assert len(refused) == 1 and "audit.someone-else" in refused[0], (name, refused)
    assert await stream_subjects(operator.nc, subjects.STREAM_AUDIT) == [
        "audit.strategy", "audit.execution", "audit.reconciler", "audit.gateway",
    ]  # fmt: skip
    marketdata = await connect("marketdata")
    await marketdata.nc.publish(subjects.audit("marketdata"), b"{}")
    assert len(await marketdata.violations()) == 1


async def test_strategy_statuses_and_execution_accounts_sync(connect: Connect) -> None:
    strategy = await connect("strategy")
    execution = await connect("execution")
    gateway = await connect("gateway")
    seen: list[str] = []

    async def on_status(msg: Msg) -> None:
        seen.append(msg.subject)

    async def on_sync(msg: Msg) -> None:
        await msg.respond(b"synced")

    await gateway.nc.subscribe(subjects.BOT_STATUS_ALL, cb=on_status)
    await execution.nc.subscribe(subjects.CTL_ACCOUNTS_SYNC, cb=on_sync)
    await gateway.nc.flush()
    await execution.nc.flush()
    await strategy.nc.publish(subjects.bot_status("bob", "bob-ladder-btc"), b"{}")
    reply = await gateway.nc.request(subjects.CTL_ACCOUNTS_SYNC, b"{}", timeout=3)
    assert reply.data == b"synced"
    await asyncio.sleep(SETTLE)
    assert seen == ["bot.status.bob.bob-ladder-btc"]
    for conn in (strategy, execution, gateway):
        assert await conn.violations() == []


async def test_the_gateway_does_what_the_api_needs_and_no_more(connect: Connect) -> None:
    operator = await connect("operator")
    ojs = operator.nc.jetstream()
    await ensure_streams(ojs)
    await ensure_intent_streams(ojs, ["alice"])
    gateway = await connect("gateway")
    js = gateway.nc.jetstream(timeout=3)

    # a person's manual intent, as their own NATS intent would arrive
    ack = await js.publish(subjects.person_intent("alice", "manual"), b"{}", headers={MSG_ID: "g1"})
    assert ack.stream == subjects.intents_stream("alice")
    # KV bots: read and write
    bots = await open_bots(js)
    await bots.put("alice-bot", b"{}")
    assert (await bots.get("alice-bot")).value == b"{}"
    # its durable consumer on AUDIT (the audit sink), and ordered reads of EXEC and AUDIT
    await publish_event(ojs, subjects.audit("execution"), {"what": "x"}, "a1")
    await publish_event(ojs, subjects.exec_evt("alice", "manual"), {"type": "x"}, "e1")
    await js.add_consumer(
        subjects.STREAM_AUDIT,
        ConsumerConfig(
            name=GATEWAY_AUDIT,
            durable_name=GATEWAY_AUDIT,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
        ),
    )
    psub = await js.pull_subscribe_bind(durable=GATEWAY_AUDIT, stream=subjects.STREAM_AUDIT)
    (msg,) = await psub.fetch(1, timeout=5)
    assert msg.subject == "audit.execution"
    await msg.ack()
    for stream in (subjects.STREAM_EXEC, subjects.STREAM_AUDIT):
        ordered = await js.subscribe(
            ">", stream=stream, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        assert (await ordered.next_msg(timeout=5)).subject in (
            "exec.evt.alice.manual",
            "audit.execution",
        )
        await ordered.unsubscribe()
    # balances and ctl.* requests go out (nobody answers here)
    for subject in (subjects.exec_query("balances"), "ctl.bots.status", "ctl.killswitch"):
        with pytest.raises(nats.errors.NoRespondersError):
            await gateway.nc.request(subject, b"{}", timeout=1)
    assert await gateway.violations() == []

    # refused: the hosts' KV state, an order event, ticks, the claims update, streams
    for subject in (
        subjects.kv_subject(subjects.KV_BOT_STATE, "alice-bot"),
        subjects.kv_subject(subjects.KV_KILLSWITCH, "global"),
        "exec.evt.alice.manual",
        "md.quote.binance.BTCUSDT",
        "$SYS.REQ.CLAIMS.UPDATE",
        "$JS.API.STREAM.DELETE.EXEC",
        "$JS.API.STREAM.PURGE.INTENTS_alice",
    ):
        await gateway.nc.publish(subject, b"{}")
    refused = await gateway.violations()
    assert len(refused) == 7 and all("publish" in e for e in refused), refused
    gateway.errors.clear()
    for subject in ("intent.>", "md.>", "ctl.>"):
        await gateway.nc.subscribe(subject)
    assert len(await gateway.violations()) == 3


async def test_claims_update_user_may_only_push_account_jwts(
    secure_nats: SecureNats,
) -> None:
    updater = await secure_nats.connect(secure_nats.installation.sys_creds)
    for subject in ("$SYS.REQ.SERVER.PING", "$SYS.REQ.ACCOUNT.PING.CONNZ", "intent.alice.x"):
        await updater.nc.publish(subject, b"")
    await updater.nc.subscribe("$SYS.ACCOUNT.>")
    assert len(await updater.violations()) == 4


async def test_a_person_added_at_run_time_uses_nats_without_a_restart(
    secure_nats: SecureNats,
) -> None:
    """zoe is in no accounts file: the registrar pushes her account to the running
    server; her credentials work at once; disabling her closes her connection."""
    operator = await secure_nats.connect("operator")
    ojs = operator.nc.jetstream()
    await ensure_streams(ojs)
    await ensure_intent_streams(ojs, ["zoe"])
    with pytest.raises((nats.errors.Error, OSError)):  # unknown account: refused
        await secure_nats.connect("zoe")
    registrar = secure_nats.registrar()
    account = await registrar.register("zoe")
    assert account == await registrar.register("zoe")  # idempotent
    closed = asyncio.Event()
    zoe = await secure_nats.connect("zoe", closed_cb=_set(closed))
    ack = await zoe.nc.jetstream().publish("intent.zoe.manual", b"{}", headers={MSG_ID: "z1"})
    assert ack.stream == subjects.intents_stream("zoe")
    events: list[str] = []

    async def on_event(msg: Msg) -> None:
        events.append(msg.subject)

    await zoe.nc.subscribe("exec.evt.zoe.>", cb=on_event)
    await zoe.nc.flush()
    await until_imported(operator, zoe, "exec.evt.zoe.probe", events)
    await zoe.nc.publish("intent.alice.manual", b"{}")
    await zoe.nc.subscribe("exec.evt.alice.>")
    assert len(await zoe.violations()) == 2

    await registrar.disable("zoe", account)
    await asyncio.wait_for(closed.wait(), 10)
    with pytest.raises((nats.errors.Error, OSError)):
        await secure_nats.connect("zoe")
    await registrar.register("zoe")  # enabled again: new credentials work
    assert (await secure_nats.connect("zoe")).nc.is_connected


def _set(event: asyncio.Event) -> Callable[[], Awaitable[None]]:
    async def callback() -> None:
        event.set()

    return callback


async def test_people_of_the_accounts_file_are_preloaded(connect: Connect) -> None:
    for person in ("alice", "bob", "carol", "dave"):
        assert (await connect(person)).nc.is_connected
