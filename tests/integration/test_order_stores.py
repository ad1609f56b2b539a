"""The two order stores of the execution core keep the same rules.

The same script of calls runs on the Postgres ledger (the execution service's
store) and on :class:`~tradebus.engine.store.MemoryStore` (a backtest's, the
tests' simulation's); every answer must be the same: client ids, found rows
and refusals, compare-and-set moves under the order state machine, duplicate
refusals and fills, statuses after fills.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import pytest

from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.order_status import OrderStatus as S
from tradebus.engine.store import MemoryStore, OrderStore
from tradebus.ledger.entries import JournalEntry
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.pool import create_pool
from tradebus.ledger.rows import FillRow, IntentKey, NewOrder, OrderRow, Rejection
from tradebus.ledger.store import Ledger


def order(intent_id: str, user: str = "alice", qty: str = "1", tif: str = "gtc") -> NewOrder:
    return NewOrder(
        intent_id=IntentId(intent_id),
        account_id=AccountId(f"{user}-paper"),
        user_id=UserId(user),
        source="bot",
        symbol="BTCUSDT",
        side="buy",
        order_type="limit",
        price=D("100"),
        qty=D(qty),
        trigger_ts=None,
        stream_seq=None,
        ts=1,
        time_in_force=tif,
    )


def fill(client_order_id: int, trade_id: str, qty: str) -> FillRow:
    entry = JournalEntry(
        account=AccountId("alice-paper"), asset="BTC", amount=D(qty), kind="fill", ref="r"
    )
    return FillRow(
        venue="paper",
        trade_id=trade_id,
        client_order_id=client_order_id,
        account_id=AccountId("alice-paper"),
        symbol="BTCUSDT",
        side="buy",
        price=D("100"),
        qty=D(qty),
        fee=D(0),
        fee_asset="USDT",
        liquidity="maker",
        ts_event=2,
        ts=2,
        entries=[entry],
    )


def refusal(intent_id: str, seq: int) -> Rejection:
    return Rejection(
        stream="INTENTS_alice",
        stream_seq=seq,
        subject="intent.alice.bot",
        user_id=UserId("alice"),
        source="bot",
        intent_id=IntentId(intent_id),
        account_id=AccountId("alice-paper"),
        reason="risk_max_notional",
        message="too big",
        payload=b"{}",
        ts=1,
    )


def shown(row: OrderRow | None) -> tuple[Any, ...] | None:
    """What must agree (times are each store's own)."""
    if row is None:
        return None
    return (
        row.intent_id,
        row.client_order_id,
        row.status,
        row.filled_qty,
        row.venue_order_id,
        row.time_in_force,
    )


def key(intent_id: str) -> IntentKey:
    """The key of alice's intent ``intent_id``."""
    return (UserId("alice"), IntentId(intent_id))


async def script(store: OrderStore) -> list[Any]:
    """Every kind of call, and what each answered."""
    out: list[Any] = []
    a1, created = await store.insert_order(order("a1"))
    out.append((shown(a1), created))
    again, created = await store.insert_order(order("a1", qty="2"))  # a redelivery
    out.append((shown(again), created))
    await store.record_rejection(refusal("r1", 7))
    await store.record_rejection(refusal("r1", 7))  # the same message again: kept once
    found, made = await store.find_or_insert_orders(
        [key("a1"), key("r1"), key("a2")], [order("a2"), order("a3", tif="ioc")]
    )
    out.append({k: shown(v) if isinstance(v, OrderRow) else v for k, v in found.items()})
    out.append(sorted((k, shown(v)) for k, v in made.items()))
    out.append(await store.set_order_status(*key("a1"), S.ACCEPTED, 3, venue_order_id="v1"))
    out.append(await store.set_order_status(*key("a1"), S.UNKNOWN, 3))  # not from accepted
    moved = await store.set_orders_status(
        [(key("a2"), S.REJECTED, None, "x"), (key("a3"), S.ACCEPTED, "v3", None)], 4
    )
    out.append(sorted(moved))
    booked = await store.record_fill(fill(a1.client_order_id, "t1", "0.4"))
    out.append(shown(booked[1]) if booked else None)
    out.append(await store.record_fill(fill(a1.client_order_id, "t1", "0.4")))  # duplicate
    booked = await store.record_fill(fill(a1.client_order_id, "t2", "0.6"))
    out.append(shown(booked[1]) if booked else None)
    out.append(await store.set_order_status(*key("a1"), S.ACCEPTED, 5))  # late: filled
    out.append(await store.set_order_status(*key("a3"), S.CANCELED, 6))
    booked = await store.record_fill(fill(3, "t3", "0.5"))  # after the cancel: stays canceled
    out.append(shown(booked[1]) if booked else None)
    out.append([shown(r) for r in await store.open_orders(AccountId("alice-paper"))])
    out.append(shown(await store.get_order(*key("a3"))))
    out.append(await store.last_journal_id())
    out.append([(f.qty, f.side) for f in await store.fill_history()])
    return out


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    store = Ledger(pool)
    await store.ensure_account(AccountId("alice-paper"), UserId("alice"), "paper", [], 0)
    yield store
    await pool.close()


async def test_the_postgres_ledger_and_the_memory_store_answer_alike(ledger: Ledger) -> None:
    answers = await script(ledger)
    assert answers == await script(MemoryStore())
    assert "ioc" in str(answers)  # a3's time in force is kept (migration 0008)
