"""What still fails is dead-lettered; execution never exits because of a message (issue 14, 1).

Whatever cannot be decoded or vetted is refused at the door (test_poison_intent.py).
Two things remain, and both end in stream ``DEADLETTER`` with a ``dead_letter``
refusal the sender sees, while every other intent keeps flowing:

* a defect met while handling one intent (an exception nobody expected): the
  intent is tried again alone a few times, its account's later intents waiting
  behind it in order, then given up on;
* an intent that took the whole process down with it: JetStream redelivers it
  after each restart until the consumer's ``max_deliver``, then stops and
  publishes an advisory, which execution turns into the same dead letter.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from nats.js.client import JetStreamContext

from tests.security.conftest import PAPER_ACCOUNTS, Person, SecureNats, place, running_execution
from tests.support.services import eventually
from tradebus.engine.core import ExecutionEngine
from tradebus.engine.intake import Admitted, Refused


async def dead_rows(database_url: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT user_id, intent_id, message FROM rejected_intents WHERE reason='dead_letter'"
        )
    finally:
        await conn.close()
    return [(r["user_id"], r["intent_id"], r["message"]) for r in rows]


async def test_a_defect_on_one_intent_dead_letters_it_and_nothing_else_stops(
    secure_nats: SecureNats,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handle = ExecutionEngine.handle_intents_detached  # what the intake calls
    attempts: list[str] = []

    async def with_a_defect(
        self: ExecutionEngine, batch: list[Admitted | Refused]
    ) -> tuple[int, list[asyncio.Future[Any]]]:
        first = batch[0]
        if isinstance(first, Admitted) and first.intent.intent_id.startswith("defect"):
            attempts.append(first.intent.intent_id)
            raise KeyError("a defect met by this intent only")
        return await handle(self, batch)

    monkeypatch.setattr(ExecutionEngine, "handle_intents_detached", with_a_defect)
    async with running_execution(secure_nats, database_url, tmp_path, PAPER_ACCOUNTS) as task:
        alice = await Person.join(secure_nats, "alice")
        bob = await Person.join(secure_nats, "bob")
        await alice.conn.nc.publish("intent.alice.manual", place("defect-1", "alice-paper"))
        await alice.conn.nc.publish("intent.alice.manual", place("after-1", "alice-paper"))
        await alice.conn.nc.flush()
        await bob.conn.nc.publish("intent.bob.manual", place("bob-1", "bob-paper"))
        assert type(await bob.wait_answer("bob-1", timeout=2)).__name__ == "OrderAccepted"
        assert alice.answers("after-1") == []  # in order, behind the failing one

        rejected = await alice.wait_answer("defect-1", timeout=20)
        assert (type(rejected).__name__, rejected.reason) == ("OrderRejected", "dead_letter")
        assert "KeyError" in rejected.message
        assert attempts == ["defect-1"] * 3
        accepted = await alice.wait_answer("after-1")
        assert type(accepted).__name__ == "OrderAccepted"
        assert not task.done()

        operator = await secure_nats.connect("operator")
        js = operator.nc.jetstream()
        copy = await js.get_last_msg("DEADLETTER", "deadletter.intent.alice")
        assert copy.data is not None and b"defect-1" in copy.data
        assert copy.headers is not None and "KeyError" in copy.headers["Tradebus-Error"]
        assert copy.headers["Tradebus-Stream"] == "INTENTS_alice"
        assert (await js.stream_info("INTENTS_alice")).state.messages == 0  # acked
    assert [(u, i) for u, i, _ in await dead_rows(database_url)] == [("alice", "defect-1")]


async def test_an_intent_that_keeps_killing_execution_is_dead_lettered_after_max_deliver(
    secure_nats: SecureNats, database_url: str, tmp_path: Path
) -> None:
    # a first start makes the streams and consumers (each intent delivered at most 3 times)
    async with running_execution(
        secure_nats, database_url, tmp_path, PAPER_ACCOUNTS, max_deliver=3
    ):
        pass
    alice = await Person.join(secure_nats, "alice")
    await alice.conn.nc.jetstream().publish("intent.alice.manual", place("crash-1", "alice-paper"))
    # what three processes did that died handling it: fetched it and never acked it
    execution = await secure_nats.connect("execution")
    js = execution.nc.jetstream()
    consumer = await js.pull_subscribe_bind(durable="execution", stream="INTENTS_alice")
    for _ in range(3):
        (msg,) = await consumer.fetch(1, timeout=5)
        assert b"crash-1" in msg.data
        await msg.nak()
    with pytest.raises(TimeoutError):
        await consumer.fetch(1, timeout=1)  # JetStream gave up on it
    await consumer.unsubscribe()

    async with running_execution(
        secure_nats, database_url, tmp_path, PAPER_ACCOUNTS, max_deliver=3
    ) as task:
        rejected = await alice.wait_answer("crash-1", timeout=20)
        assert (type(rejected).__name__, rejected.reason) == ("OrderRejected", "dead_letter")
        assert "delivered 3 times" in rejected.message
        await alice.conn.nc.publish("intent.alice.manual", place("after-1", "alice-paper"))
        assert type(await alice.wait_answer("after-1")).__name__ == "OrderAccepted"
        operator = await secure_nats.connect("operator")
        ojs = operator.nc.jetstream()
        await eventually(
            lambda: _empty(ojs, "INTENTS_alice"), what="the dead intent deleted from its stream"
        )
        copy = await ojs.get_last_msg("DEADLETTER", "deadletter.intent.alice")
        assert copy.data is not None and b"crash-1" in copy.data
        assert not task.done()
    assert [(u, i) for u, i, _ in await dead_rows(database_url)] == [("alice", "crash-1")]


async def _empty(js: JetStreamContext, stream: str) -> bool:
    return (await js.stream_info(stream)).state.messages == 0
