"""The engine's group commit on a real PostgreSQL: a fetch batch of intents at a time.

The engine is driven directly (:meth:`ExecutionEngine.handle_intents`, as the
intent consumer calls it with each batch it takes from its fair queue) with paper venues and an
``emit`` that records the events, so a test can hand it the same batch twice
(a redelivery) or make the bus fail half way. Last, the ack futures of the
events the service publishes for a group (:class:`PublishAcks`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import TypeVar

import asyncpg
import nats.js.errors
import pytest

from tradebus.common import subjects
from tradebus.common.bus import connect, ensure_streams
from tradebus.common.clock import LiveClock
from tradebus.common.codec import encode
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import Message, OrderAccepted, OrderEvent, OrderRejected, PlaceOrder
from tradebus.common.metrics import new_registry
from tradebus.common.publish_acks import PublishAcks
from tradebus.engine.accounts import AccountSpec, RiskLimits
from tradebus.engine.core import ExecutionEngine
from tradebus.engine.intake import admit
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.execution.bootstrap import open_accounts
from tradebus.execution.metrics import ExecutionMetrics
from tradebus.ledger.history import LedgerHistory
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.pool import create_pool
from tradebus.ledger.store import Ledger

Batch = list[tuple[str, bytes, int | None]]

SPECS = [
    AccountSpec(
        id=AccountId("alice-paper"),
        user=UserId("alice"),
        balances={"USDT": D("10000")},
        risk=RiskLimits(max_order_notional=D("5000")),
    ),
    AccountSpec(id=AccountId("bob-paper"), user=UserId("bob"), balances={"USDT": D("10000")}),
    AccountSpec(
        id=AccountId("carol-paper"),
        user=UserId("carol"),
        balances={"USDT": D("10000")},
        risk=RiskLimits(max_open_orders=2),
    ),
]


E = TypeVar("E", bound=OrderEvent)


@dataclass
class Harness:
    """The engine, its paper exchange, its ledger's URL and the events it published."""

    engine: ExecutionEngine
    exchange: PaperExchange
    database_url: str
    events: list[tuple[str, Message, str]] = field(default_factory=list)
    fail_emits: int = 0

    def of(self, kind: type[E], intent_id: str | None = None) -> list[E]:
        return [
            e for _, e, _ in self.events if isinstance(e, kind) and intent_id in (None, e.intent_id)
        ]

    async def rows(self) -> dict[str, tuple[str, int, str | None]]:
        conn = await asyncpg.connect(self.database_url)
        try:
            records = await conn.fetch("SELECT intent_id, status, updated_ns, reason FROM orders")
        finally:
            await conn.close()
        return {r["intent_id"]: (r["status"], r["updated_ns"], r["reason"]) for r in records}

    async def refusals(self) -> list[tuple[str, str]]:
        conn = await asyncpg.connect(self.database_url)
        try:
            records = await conn.fetch("SELECT intent_id, reason FROM rejected_intents ORDER BY id")
        finally:
            await conn.close()
        return [(r["intent_id"], r["reason"]) for r in records]

    async def run(self, batch: Batch) -> list[int]:
        """Hand ``batch`` in as the consumer does; the size of each step."""
        steps = []
        i = 0
        while i < len(batch):
            doors = [admit(*m, self.engine.accounts, "INTENTS_test") for m in batch[i:]]
            done = await self.engine.handle_intents(doors)
            assert done >= 1
            steps.append(done)
            i += done
        return steps


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[Harness]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    ledger = Ledger(pool)
    catalog = MarketCatalog.load(default_markets_path())
    clock = LiveClock()
    venues, exchanges = await open_accounts(
        SPECS, ledger, LedgerHistory(pool), catalog, clock.now_ns()
    )
    h: Harness

    async def emit(subject: str, event: Message, msg_id: str) -> None:
        if h.fail_emits > 0:
            h.fail_emits -= 1
            raise TimeoutError("no JetStream ack")
        h.events.append((subject, event, msg_id))

    async def emit_nowait(subject: str, event: Message, msg_id: str) -> asyncio.Future[bytes]:
        """As the service's: the event is out, its ack a future (here resolved at once)."""
        ack: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        try:
            await emit(subject, event, msg_id)
        except TimeoutError as exc:
            ack.set_exception(exc)
        else:
            ack.set_result(b"{}")
        return ack

    engine = ExecutionEngine(
        ledger,
        {s.id: s for s in SPECS},
        venues,
        catalog,
        emit,
        clock,
        ExecutionMetrics(new_registry()),
        emit_nowait=emit_nowait,
    )
    await engine.start()
    h = Harness(engine, exchanges["binance"], database_url)
    yield h
    await pool.close()


def place(user: str, intent_id: str, qty: str = "0.01", price: str = "20000") -> tuple[str, bytes]:
    intent = PlaceOrder(
        intent_id=IntentId(intent_id),
        account=AccountId(f"{user}-paper"),
        symbol="BTCUSDT",
        side="buy",
        qty=D(qty),
        price=D(price),
    )
    return f"intent.{user}.bot", encode(intent)


def batch(*intents: tuple[str, bytes], first_seq: int = 1) -> Batch:
    return [(subject, data, first_seq + n) for n, (subject, data) in enumerate(intents)]


async def test_a_batch_with_refused_intents_places_the_others_in_one_group(
    harness: Harness,
) -> None:
    steps = await harness.run(
        batch(
            place("alice", "a1"),
            place("alice", "a2", qty="1"),  # 20,000 USDT: over alice's notional limit
            place("bob", "b1"),
            place("bob", "b2", qty="1"),  # passes vetting; the venue lacks the funds
            place("alice", "a3"),
        )
    )
    assert steps == [5]  # one group: one insert, one update for all of them
    assert {e.intent_id for e in harness.of(OrderAccepted)} == {"a1", "b1", "a3"}
    rejected = {e.intent_id: e.reason for e in harness.of(OrderRejected)}
    assert rejected == {"a2": "risk_max_notional", "b2": "insufficient_balance"}
    rows = await harness.rows()
    assert {k: v[0] for k, v in rows.items()} == {
        "a1": "accepted",
        "b1": "accepted",
        "b2": "rejected",
        "a3": "accepted",
    }
    assert rows["b2"][2] == "insufficient_balance"
    assert len({updated for _, updated, _ in rows.values()}) == 1  # one update statement
    assert await harness.refusals() == [("a2", "risk_max_notional")]  # no order row for it
    assert harness.exchange.orders_placed == 3


async def test_a_redelivered_batch_places_nothing_twice(harness: Harness) -> None:
    intents = batch(*(place(u, f"{u}-{n}") for n in range(3) for u in ("alice", "bob")))
    intents.append((*place("alice", "too-big", qty="1"), 7))
    await harness.run(intents)
    placed, accepted = harness.exchange.orders_placed, len(harness.of(OrderAccepted))
    assert (placed, accepted) == (6, 6)
    before = await harness.rows()
    harness.events.clear()

    await harness.run(intents)  # the same messages again (their acks were lost)
    assert harness.exchange.orders_placed == placed
    assert await harness.rows() == before
    assert sorted(e.intent_id for e in harness.of(OrderAccepted)) == sorted(before)
    (again,) = harness.of(OrderRejected)  # the refusal is answered the same way again
    assert (again.intent_id, again.reason) == ("too-big", "risk_max_notional")
    assert await harness.refusals() == [("too-big", "risk_max_notional")]  # kept once


async def test_a_redelivery_in_the_middle_of_a_batch_ends_the_group_before_it(
    harness: Harness,
) -> None:
    b1 = (*place("bob", "b1"), 1)
    await harness.run([b1])
    steps = await harness.run([(*place("alice", "a1"), 2), b1, (*place("alice", "a2"), 3)])
    # a1 alone; b1 resumed from its row; a2's row, inserted with a1's, resumed and sent
    assert steps == [1, 1, 1]
    assert harness.exchange.orders_placed == 3
    assert [e.intent_id for e in harness.of(OrderAccepted)] == ["b1", "a1", "b1", "a2"]
    assert {status for status, _, _ in (await harness.rows()).values()} == {"accepted"}


async def test_a_group_whose_events_fail_is_resumed_and_placed_once(harness: Harness) -> None:
    intents = batch(*(place(u, f"{u}-{n}") for n in range(2) for u in ("alice", "bob")))
    harness.fail_emits = 2
    with pytest.raises(TimeoutError):
        doors = [admit(*m, harness.engine.accounts, "INTENTS_test") for m in intents]
        await harness.engine.handle_intents(doors)  # nothing may be acked
    assert harness.exchange.orders_placed == 4  # committed rows, placed once
    await harness.run(intents)  # redelivered
    assert harness.exchange.orders_placed == 4
    accepted = {e.intent_id for e in harness.of(OrderAccepted)}
    assert accepted == {"alice-0", "bob-0", "alice-1", "bob-1"}
    assert {status for status, _, _ in (await harness.rows()).values()} == {"accepted"}


async def test_an_account_with_an_open_order_limit_is_vetted_one_intent_at_a_time(
    harness: Harness,
) -> None:
    steps = await harness.run(
        batch(
            place("carol", "c1"),
            place("bob", "b1"),
            place("carol", "c2"),
            place("carol", "c3"),  # carol's third open order: over her limit of 2
            place("bob", "b2"),
        )
    )
    assert steps == [2, 1, 2]  # a second intent of carol's starts a new group
    assert {e.intent_id for e in harness.of(OrderAccepted)} == {"c1", "b1", "c2", "b2"}
    (refused,) = harness.of(OrderRejected)
    assert (refused.intent_id, refused.reason) == ("c3", "risk_max_open_orders")


async def test_a_repeated_intent_id_in_a_batch_makes_one_order(harness: Harness) -> None:
    subject, data = place("bob", "same")
    steps = await harness.run(batch(place("bob", "b0"), (subject, data), (subject, data)))
    assert steps == [2, 1]  # the copy waits for the first one's row, then resumes from it
    assert harness.exchange.orders_placed == 2
    assert [e.intent_id for e in harness.of(OrderAccepted)] == ["b0", "same", "same"]


async def test_a_group_the_ledger_refuses_is_handled_one_intent_at_a_time(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse_group(keys: object, orders: object) -> None:
        raise asyncpg.DataError("a value the ledger cannot hold")

    monkeypatch.setattr(harness.engine._store, "find_or_insert_orders", refuse_group)
    steps = await harness.run(batch(place("bob", "b1"), place("alice", "a1")))
    assert steps == [2]
    assert [e.intent_id for e in harness.of(OrderAccepted)] == ["b1", "a1"]
    assert harness.exchange.orders_placed == 2


async def test_event_acks_resolve_or_fail_each_publish(nats_url: str) -> None:
    nc = await connect(nats_url, "test")
    try:
        await ensure_streams(nc.jetstream())
        acks = PublishAcks(nc)
        await acks.start()
        event = OrderRejected(
            intent_id=IntentId("i1"),
            user=UserId("bob"),
            source="bot",
            account=None,
            reason="r",
            message="m",
            ts_event=1,
        )
        data, msg_id = encode(event), {"Nats-Msg-Id": "rej:bob:i1"}
        stored = await acks.publish("exec.evt.bob.bot", data, msg_id)
        again = await acks.publish("exec.evt.bob.bot", data, msg_id)  # stored once
        nowhere = await acks.publish("no.stream.here", data, {"Nats-Msg-Id": "x"})
        assert json.loads(await asyncio.wait_for(stored, 5))["seq"] == 1
        assert json.loads(await asyncio.wait_for(again, 5))["duplicate"]
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await asyncio.wait_for(nowhere, 5)
        assert acks.pending == 0
        info = await nc.jetstream().stream_info(subjects.STREAM_EXEC)
        assert info.state.messages == 1
    finally:
        await nc.close()
