"""A poison intent: one message that used to stop all trading, through real NATS and Postgres.

An intent whose JSON holds an invalid UTF-8 byte inside a string
(``{"type":"PlaceOrder","intent_id":"\\xff",...}``) made msgspec raise
:class:`UnicodeDecodeError`, which admission did not catch: the execution
service exited, and since the message was never acked, JetStream delivered it
again to every restart. Anyone allowed to publish one intent could stop every
user's trading for good (issue 14).

Here the execution service runs (in-process, its real ``run``) on the test's
nats-server and PostgreSQL; the poison intent is published on
``intent.alice.manual`` as a person could, then a valid one. The poison must
be refused (``OrderRejected`` with ``decode_error`` on
``exec.evt.alice.manual``, a ``rejected_intents`` row), the valid one
accepted by the same running service, and a restart must not see the poison
again. Intent ids made to look like others with bidi overrides or
zero-width characters are refused the same way, escaped, never echoed raw.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from tests.support.execution import Bus, collecting, execution_service, execution_settings
from tests.support.services import eventually
from tradebus.common.codec import decode_event
from tradebus.common.messages import OrderAccepted, OrderRejected
from tradebus.execution.settings import ExecutionSettings

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "100000", BTC: "1"}}
"""
SUBJECT = "intent.alice.manual"
EVENTS = "exec.evt.alice.manual"


def place(intent_id: bytes, account: bytes = b"alice-paper") -> bytes:
    """A buy of 0.001 BTC at 60000 on ``account``, the id and account as raw bytes."""
    return (
        b'{"type":"PlaceOrder","intent_id":"%s","account":"%s","symbol":"BTCUSDT",'
        b'"side":"buy","qty":"0.001","price":"60000"}' % (intent_id, account)
    )


POISON = place(b"\xff")


class Events(Bus):
    """A :class:`Bus` that also keeps the subject of every event on ``exec.evt.alice.manual``."""

    def __init__(self, nc: NATS) -> None:
        super().__init__(nc)
        self.manual: list[tuple[str, object]] = []

    async def follow(self) -> None:
        async def keep(msg: Msg) -> None:
            self.manual.append((msg.subject, decode_event(msg.data)))

        await self.js.subscribe(
            EVENTS,
            cb=keep,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
        )


@pytest.fixture
def settings(nats_url: str, database_url: str, tmp_path: Path) -> ExecutionSettings:
    return execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Events]:
    async with collecting(nats_url, Events) as b:
        await b.follow()
        yield b


def running(task: asyncio.Task[int]) -> None:
    """Fail at once (not after a timeout) if the execution service has stopped."""
    if task.done():
        error = None if task.cancelled() else task.exception()
        raise AssertionError(f"the execution service stopped: {error!r}")


async def answered(bus: Bus, task: asyncio.Task[int], kind: type, intent_id: str | None) -> list:
    """The events of ``kind`` for ``intent_id``, once there is one; fails if execution stops."""

    def seen() -> bool:
        running(task)
        return bool(bus.of(kind, intent_id))

    await eventually(seen, timeout=15, what=f"{kind.__name__} of {intent_id!r}")
    return bus.of(kind, intent_id)


async def ledger_rows(database_url: str) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """``(rejected_intents, orders)`` rows, in stream order."""
    conn = await asyncpg.connect(database_url)
    try:
        rejected = await conn.fetch(
            "SELECT stream_seq, subject, user_id, source, intent_id, account_id, reason,"
            " message, payload FROM rejected_intents ORDER BY stream_seq"
        )
        orders = await conn.fetch(
            "SELECT stream_seq, intent_id, status FROM orders ORDER BY stream_seq"
        )
    finally:
        await conn.close()
    return rejected, orders


async def test_an_invalid_utf8_intent_is_refused_and_execution_keeps_trading(
    bus: Events, settings: ExecutionSettings, database_url: str
) -> None:
    async with execution_service(bus.nc, settings) as task:
        await bus.pub(SUBJECT, POISON)
        await bus.pub(SUBJECT, place(b"after-poison"))
        (accepted,) = await answered(bus, task, OrderAccepted, "after-poison")
        (refused,) = await answered(bus, task, OrderRejected, None)
        running(task)
    assert accepted.account == "alice-paper"
    assert (refused.reason, refused.intent_id, refused.user, refused.source) == (
        "decode_error",
        None,
        "alice",
        "manual",
    )
    assert refused.message == "payload is not UTF-8: invalid start byte at byte 34"
    await eventually(lambda: len(bus.manual) == 2, what="both events on exec.evt.alice.manual")
    assert [(subject, type(e).__name__) for subject, e in bus.manual] == [
        (EVENTS, "OrderRejected"),
        (EVENTS, "OrderAccepted"),
    ]
    rejected, orders = await ledger_rows(database_url)
    (row,) = rejected
    assert (row["reason"], row["user_id"], row["source"], row["intent_id"]) == (
        "decode_error",
        "alice",
        "manual",
        None,
    )
    assert row["subject"] == SUBJECT and bytes(row["payload"]) == POISON
    assert [(o["intent_id"], o["status"]) for o in orders] == [("after-poison", "accepted")]
    assert orders[0]["stream_seq"] > row["stream_seq"]

    # the poison was acked: a restarted service neither sees it again nor stops on it
    async with execution_service(bus.nc, settings) as task:
        await bus.pub(SUBJECT, place(b"after-restart"))
        await answered(bus, task, OrderAccepted, "after-restart")
        running(task)
    rejected, orders = await ledger_rows(database_url)
    assert [r["reason"] for r in rejected] == ["decode_error"]
    assert [o["intent_id"] for o in orders] == ["after-poison", "after-restart"]


LOOKALIKES = {
    "right-to-left override": ("alice-1\u202egnp.exe".encode(), b"alice-paper", "intent_id"),
    "zero-width space": ("alice-\u200b1".encode(), b"alice-paper", "intent_id"),
    "escaped bidi isolate": (b"alice-1\\u2066", b"alice-paper", "intent_id"),
    "byte order mark": ("\ufeffalice-1".encode(), b"alice-paper", "intent_id"),
    "word joiner in the account": (b"alice-2", "alice\u2060-paper".encode(), "account"),
}


async def test_intent_ids_made_to_look_like_others_are_refused_escaped(
    bus: Events, settings: ExecutionSettings, database_url: str
) -> None:
    """Bidi overrides and zero-width characters would let an id read as another one in
    every log, table and screen: refused as ``invalid_intent``, the value escaped."""
    async with execution_service(bus.nc, settings) as task:
        for intent_id, account, _ in LOOKALIKES.values():
            await bus.pub(SUBJECT, place(intent_id, account))
        await bus.pub(SUBJECT, place(b"alice-1"))  # what the lookalikes imitate
        await answered(bus, task, OrderAccepted, "alice-1")

        def all_refused() -> bool:
            running(task)
            return len(bus.of(OrderRejected)) == len(LOOKALIKES)

        await eventually(all_refused, timeout=15, what="every lookalike refused")
        running(task)
    refusals = bus.of(OrderRejected)
    rejected, orders = await ledger_rows(database_url)
    assert [o["intent_id"] for o in orders] == ["alice-1"]
    assert len(rejected) == len(LOOKALIKES)
    # one account's intents are handled in order, those naming no usable account in their
    # own lane: pair each event with its row by the message, and the fields as a whole
    rows = {row["message"]: row for row in rejected}
    fields = sorted(event.message.split(" ", 1)[0] for event in refusals)
    assert fields == sorted(field for _, _, field in LOOKALIKES.values())
    for event in refusals:
        row, field, name = rows[event.message], event.message.split(" ", 1)[0], event.message
        assert (event.reason, row["reason"]) == ("invalid_intent", "invalid_intent"), name
        assert event.message == row["message"] and event.message.startswith(f"{field} holds ")
        assert "\\u" in event.message, (name, event.message)
        assert event.intent_id == row["intent_id"] == (None if field == "intent_id" else "alice-2")
        kept = [row["subject"], row["intent_id"] or "", row["message"], event.message]
        shown = [c for text in kept for c in text if unicodedata.category(c) in ("Cc", "Cf")]
        assert not shown, (name, shown)
