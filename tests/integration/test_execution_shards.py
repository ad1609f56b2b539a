"""Execution scaled out: two shards on real NATS and PostgreSQL, one ledger.

Each shard (``TRADEBUS_EXECUTION_SHARD`` of ``TRADEBUS_EXECUTION_SHARDS``) owns the
users in its partition of nats-server's ``partition(2, 1)`` mapping of
``intent.<user>.>``: it loads only their accounts and fetches only their
``INTENTS_<user>`` streams. Intents of several users, published as usual, are
each answered once, by the shard that owns their user (the other has no such
account: it would refuse one); a shard stopped meanwhile leaves its users'
intents waiting, and resumes them when it starts again.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import asyncpg
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig, SubjectTransform

from tests.support.execution import Bus, collecting, execution_settings
from tests.support.services import consumer_exists, eventually, service
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_balances_reply
from tradebus.common.ids import AccountId
from tradebus.common.messages import BalancesQuery, BalancesReply, OrderAccepted, OrderRejected
from tradebus.execution.bootstrap import run as run_execution
from tradebus.execution.settings import ExecutionSettings

USERS = [f"u{i}" for i in range(8)]
PLACE = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"%s-paper","symbol":"BTCUSDT",'
    '"side":"buy","qty":"0.001","price":"20000"}'
)


async def test_partition_is_the_servers(nc: NATS) -> None:
    """intent_partition gives every user the partition nats-server's own mapping gives it."""
    js = nc.jetstream()
    src, dest = subjects.INTENT_PARTITION_TRANSFORM
    users = [f"user{i}" for i in range(60)] + ["alice", "bob", "b-1_X"]
    for n in (2, 3, 5):
        name = f"PARTS{n}"
        await js.add_stream(
            StreamConfig(
                name=name,
                subjects=["intent.>"],
                subject_transform=SubjectTransform(src=src, dest=dest % n),
            )
        )
        for user in users:
            await js.publish(f"intent.{user}.bot", b"{}")
        stored = [(await js.get_msg(name, i + 1)).subject for i in range(len(users))]
        assert stored == [f"intent.{u}.{subjects.intent_partition(u, n)}.bot" for u in users], (
            f"partition({n}, 1)"
        )
        await js.delete_stream(name)
    assert len({subjects.intent_partition(u, 2) for u in users}) == 2


def shard_settings(base: ExecutionSettings, shard: int) -> ExecutionSettings:
    """``base`` as shard ``shard`` of two."""
    fields = {f: getattr(base, f) for f in base.__struct_fields__}
    return ExecutionSettings(**{**fields, "execution_shard": shard, "execution_shards": 2})


def shard_service(
    nc: NATS, settings: ExecutionSettings
) -> AbstractAsyncContextManager[asyncio.Task[int]]:
    """One shard, ready once its dead-letter consumer (made after its users') exists."""
    name = f"execution-deadletters-{settings.execution_shard}"
    return service(
        run_execution, settings, lambda: consumer_exists(nc, subjects.STREAM_DEADLETTER, name)
    )


async def publish(bus: Bus, tag: str, users: list[str], per_user: int) -> list[str]:
    """``per_user`` intents of each user (ids ``<tag>-<user>-<i>``); their ids."""
    ids = []
    for i in range(per_user):
        for user in users:
            iid = f"{tag}-{user}-{i}"
            await bus.pub(f"intent.{user}.bot", PLACE % (iid, user), msg_id=iid)
            ids.append(iid)
    return ids


async def test_two_shards_each_own_their_users(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    owner = {u: subjects.intent_partition(u, 2) for u in USERS}
    by_shard = {s: [u for u in USERS if owner[u] == s] for s in (0, 1)}
    assert by_shard[0] and by_shard[1], by_shard
    accounts = "accounts:\n" + "".join(
        f'  - {{id: {u}-paper, user: {u}, balances: {{USDT: "100000"}}}}\n' for u in USERS
    )
    base = execution_settings(nats_url, database_url, tmp_path, accounts)
    s0, s1 = shard_settings(base, 0), shard_settings(base, 1)
    async with collecting(nats_url, Bus) as bus, shard_service(bus.nc, s0):
        async with shard_service(bus.nc, s1):
            first = await publish(bus, "a", USERS, 5)
            await eventually(
                lambda: {e.intent_id for e in bus.of(OrderAccepted)} >= set(first),
                timeout=30,
                what="every intent accepted",
            )
            # each shard fetches its own users' streams only
            for user in USERS:
                assert await consumer_exists(bus.nc, subjects.intents_stream(user), "execution")
            # a balances query is answered by the owner (the other shard stays quiet)
            for user in (by_shard[0][0], by_shard[1][0]):
                query = BalancesQuery(account=AccountId(f"{user}-paper"))
                reply = decode_balances_reply(
                    await request(bus.nc, subjects.exec_query("balances"), query)
                )
                assert isinstance(reply, BalancesReply), reply
                assert [a.account for a in reply.accounts] == [f"{user}-paper"]
        # shard 1 stopped: its users' intents wait, shard 0's flow
        second = await publish(bus, "b", USERS, 3)
        mine = {i for i in second if owner[i.split("-")[1]] == 0}
        await eventually(
            lambda: {e.intent_id for e in bus.of(OrderAccepted)} >= mine,
            timeout=30,
            what="shard 0's intents accepted while shard 1 is down",
        )
        await asyncio.sleep(0.5)
        assert not {e.intent_id for e in bus.of(OrderAccepted)} & (set(second) - mine)
        async with shard_service(bus.nc, s1):  # restarted: resumes its partition
            await eventually(
                lambda: {e.intent_id for e in bus.of(OrderAccepted)} >= set(second),
                timeout=30,
                what="shard 1's waiting intents accepted after its restart",
            )
    events = Counter(e.intent_id for e in bus.of(OrderAccepted))
    assert set(events) == set(first) | set(second)
    assert set(events.values()) == {1}, "an intent answered twice"
    assert not bus.of(OrderRejected), [e.reason for e in bus.of(OrderRejected)]
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT intent_id, user_id, status FROM orders")
    finally:
        await conn.close()
    assert Counter(r["intent_id"] for r in rows) == Counter(set(first) | set(second))
    assert {r["status"] for r in rows} == {"accepted"}
    assert all(r["intent_id"].split("-")[1] == r["user_id"] for r in rows)
