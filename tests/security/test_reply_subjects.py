"""A person's reply subject reaches nothing but their own account (issue 14, point 2).

JetStream acknowledges a stored message by publishing to the message's reply
subject. A person who publishes a valid intent with ``--reply '$KV.leases.bot.X'``
used to have that ack written into KV as a value: bob's bot lost its lease,
its snapshot was overwritten (it restarted fresh and forgot its position), a
kill switch was engaged for bob or for everyone, and ``$JS.API`` was reached.
With one NATS account per person, the ack goes back through the import to
the same subject *in the person's account*, where none of those exist.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats.js.errors
from nats.aio.msg import Msg

from tests.security.conftest import PAPER_ACCOUNTS, Person, SecureNats, place, running_execution
from tradebus.common import subjects
from tradebus.common.bus import ensure_streams

SETTLE = 0.5


async def test_reply_subjects_cannot_write_kv_the_jetstream_api_or_other_users(
    secure_nats: SecureNats, database_url: str, tmp_path: Path
) -> None:
    operator = await secure_nats.connect("operator")
    js = operator.nc.jetstream()
    await ensure_streams(js)
    leases = await js.create_key_value(bucket=subjects.KV_LEASES)
    state = await js.create_key_value(bucket=subjects.KV_BOT_STATE)
    await state.put("bob-ladder-btc", b'{"position":"0.3732"}')
    await leases.put("bot.bob-ladder-btc", b"replica-1")
    seen_by_others: list[str] = []

    async def spy(msg: Msg) -> None:
        seen_by_others.append(msg.subject)

    for subject in ("exec.evt.bob.manual", "_INBOX.anyone", "ctl.killswitch"):
        await operator.nc.subscribe(subject, cb=spy)
    bob = await Person.join(secure_nats, "bob")

    async with running_execution(secure_nats, database_url, tmp_path, PAPER_ACCOUNTS):
        killswitch = await js.key_value(subjects.KV_KILLSWITCH)
        alice = await Person.join(secure_nats, "alice")
        targets = [
            subjects.kv_subject(subjects.KV_LEASES, "bot.bob-ladder-btc"),
            subjects.kv_subject(subjects.KV_BOT_STATE, "bob-ladder-btc"),
            subjects.kv_subject(subjects.KV_KILLSWITCH, "account.bob-paper"),
            subjects.kv_subject(subjects.KV_KILLSWITCH, "global"),
            "$JS.API.STREAM.PURGE.INTENTS_bob",
            "$JS.API.STREAM.DELETE.EXEC",
            "$JS.API.STREAM.PURGE.INTENTS",  # the one stream of older versions
            "exec.evt.bob.manual",
            "_INBOX.anyone",
            "ctl.killswitch",
        ]
        for i, reply in enumerate(targets):
            await alice.conn.nc.publish(
                "intent.alice.manual",
                place(f"alice-reply-{i}", "alice-paper"),
                reply=reply,
                headers={"Nats-Msg-Id": f"alice-reply-{i}"},
            )
        await alice.conn.nc.flush()
        # each of alice's intents is still served: the attack changes nothing for her
        for i in range(len(targets)):
            assert (await alice.wait_answer(f"alice-reply-{i}")).__class__.__name__ in (
                "OrderAccepted",
            )
        await asyncio.sleep(SETTLE)

        # nothing reached bob's lease, bob's snapshot or any kill switch
        assert (await leases.get("bot.bob-ladder-btc")).value == b"replica-1"
        assert (await state.get("bob-ladder-btc")).value == b'{"position":"0.3732"}'
        for key in ("account.bob-paper", "global"):
            try:
                entry = await killswitch.get(key)
            except nats.js.errors.KeyNotFoundError:
                continue
            raise AssertionError(f"kill switch {key} written by a reply: {entry.value!r}")
        # no stream was purged or deleted, nobody else heard the acks
        assert (await js.stream_info(subjects.STREAM_EXEC)).state.messages >= len(targets)
        assert seen_by_others == []
        assert bob.events == []
