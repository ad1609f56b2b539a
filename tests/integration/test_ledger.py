"""The ledger on a real PostgreSQL: migrations, idempotent orders and fills, balance sums."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal as D

import asyncpg
import msgspec
import pytest

from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.messages import ReconReport, ReconRow
from tradebus.common.order_status import OrderStatus as S
from tradebus.ledger.entries import FillFacts, deposit_entries, fill_entries
from tradebus.ledger.history import LedgerHistory
from tradebus.ledger.migrate import apply_migrations, discover
from tradebus.ledger.pool import create_pool
from tradebus.ledger.reconciliation import ReconciliationLedger
from tradebus.ledger.rows import FillRow, IntentKey, NewOrder, Rejection
from tradebus.ledger.store import Ledger

ALICE, BOB = UserId("alice"), UserId("bob")
ALICE_PAPER = AccountId("alice-paper")


def key(user: UserId, intent_id: str) -> IntentKey:
    return (user, IntentId(intent_id))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    yield pool
    await pool.close()


@pytest.fixture
def ledger(pool: asyncpg.Pool) -> Ledger:
    return Ledger(pool)


@pytest.fixture
def history(pool: asyncpg.Pool) -> LedgerHistory:
    return LedgerHistory(pool)


def new_order(intent_id: str, user: str = "alice", account: str = "alice-paper") -> NewOrder:
    return NewOrder(
        intent_id=IntentId(intent_id),
        account_id=AccountId(account),
        user_id=UserId(user),
        source="bot",
        symbol="BTCUSDT",
        side="buy",
        order_type="limit",
        price=D("60000"),
        qty=D("0.01"),
        trigger_ts=1,
        stream_seq=1,
        ts=1,
    )


def fill_row(
    client_order_id: int, trade_id: str, qty: str = "0.01", account: str = "alice-paper"
) -> FillRow:
    facts = FillFacts(
        account=AccountId(account),
        base="BTC",
        quote="USDT",
        side="buy",
        price=D("60000"),
        qty=D(qty),
        fee=D("0.06"),
        fee_asset="USDT",
        ref=f"paper:{trade_id}",
    )
    return FillRow(
        venue="paper",
        trade_id=trade_id,
        client_order_id=client_order_id,
        account_id=AccountId(account),
        symbol="BTCUSDT",
        side="buy",
        price=D("60000"),
        qty=D(qty),
        fee=D("0.06"),
        fee_asset="USDT",
        liquidity="maker",
        ts_event=1,
        ts=2,
        entries=fill_entries(facts),
    )


async def test_migrations_apply_once_even_concurrently(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(c) for c in conns))
        assert sorted(v for r in results for v in r) == [m.version for m in discover()]
        assert await apply_migrations(conns[0]) == []
        tables = {
            r["tablename"]
            for r in await conns[0].fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname='public'"
            )
        }
        assert {
            "accounts",
            "orders",
            "fills",
            "journal",
            "rejected_intents",
            "recon_reports",
        } <= tables
    finally:
        for c in conns:
            await c.close()


async def test_account_is_created_once_with_its_deposits(
    ledger: Ledger, history: LedgerHistory
) -> None:
    deposits = deposit_entries(ALICE_PAPER, {"USDT": D(1000)}, "initial")
    assert await ledger.ensure_account(ALICE_PAPER, ALICE, "paper", deposits, 1) is True
    assert await ledger.ensure_account(ALICE_PAPER, ALICE, "paper", deposits, 2) is False
    assert await history.balances(ALICE_PAPER) == {"USDT": D(1000)}
    with pytest.raises(ValueError, match="exists for user alice"):
        await ledger.ensure_account(ALICE_PAPER, UserId("mallory"), "paper", [], 3)


async def test_an_intent_id_makes_one_order_per_user(ledger: Ledger) -> None:
    for user in (ALICE, BOB):
        await ledger.ensure_account(AccountId(f"{user}-paper"), user, "paper", [], 1)
    first, created = await ledger.insert_order(new_order("bot:1:b0"))
    again, created_again = await ledger.insert_order(new_order("bot:1:b0"))
    assert (created, created_again) == (True, False)
    assert again == first and first.status == "new"
    # the same id from another user is another order: ids cannot be pre-empted across users
    other, created_other = await ledger.insert_order(new_order("bot:1:b0", "bob", "bob-paper"))
    assert created_other and other.client_order_id != first.client_order_id
    assert 0 < first.client_order_id < 2**32  # Backpack's clientId is a uint32


async def test_a_group_of_orders_is_found_inserted_and_moved_in_one_statement_each(
    ledger: Ledger,
) -> None:
    for user in (ALICE, BOB):
        await ledger.ensure_account(AccountId(f"{user}-paper"), user, "paper", [], 1)
    existing, _ = await ledger.insert_order(new_order("o0"))
    await ledger.record_rejection(
        Rejection(
            stream="INTENTS_alice",
            stream_seq=7,
            subject="intent.alice.bot",
            user_id=ALICE,
            source="bot",
            intent_id=IntentId("r0"),
            account_id=ALICE_PAPER,
            reason="risk_max_notional",
            message="too big",
            payload=b"{}",
            ts=1,
        )
    )
    keys = [key(ALICE, "o0"), key(ALICE, "r0"), key(ALICE, "n0"), key(BOB, "o0")]
    assert await ledger.find_intents(keys) == {
        ("alice", "o0"): existing,
        ("alice", "r0"): ("risk_max_notional", "too big"),
    }
    orders = [new_order(i) for i in ("n1", "o0", "r0")] + [new_order("n2", "bob", "bob-paper")]
    found, rows = await ledger.find_or_insert_orders([*keys, key(ALICE, "n1")], orders)
    assert found == await ledger.find_intents(keys)  # what was there before
    assert sorted(rows) == [("alice", "n1"), ("bob", "n2")]  # o0 exists, r0 was refused
    assert rows[key(ALICE, "n1")].client_order_id < rows[key(BOB, "n2")].client_order_id
    assert rows[key(ALICE, "n1")] == await ledger.get_order(*key(ALICE, "n1"))
    huge = msgspec.structs.replace(new_order("n4"), qty=D("1e200000"))
    with pytest.raises(asyncpg.DataError):  # one value the ledger cannot hold: nothing goes in
        await ledger.find_or_insert_orders([], [new_order("n3"), huge])
    assert await ledger.get_order(*key(ALICE, "n3")) is None
    changed = await ledger.set_orders_status(
        [
            (key(ALICE, "n1"), S.ACCEPTED, "P1", None),
            (key(BOB, "n2"), S.REJECTED, None, "insufficient_balance"),
            (key(ALICE, "gone"), S.ACCEPTED, "P9", None),
        ],
        5,
    )
    assert changed == {("alice", "n1"), ("bob", "n2")}
    n1, n2 = await ledger.get_order(*key(ALICE, "n1")), await ledger.get_order(*key(BOB, "n2"))
    assert n1 is not None and (n1.status, n1.venue_order_id) == ("accepted", "P1")
    assert n2 is not None and (n2.status, n2.reason) == ("rejected", "insufficient_balance")
    # a row no longer new is not moved again
    assert await ledger.set_orders_status([(key(ALICE, "n1"), S.REJECTED, None, "x")], 6) == set()


async def test_a_fill_is_booked_once_and_moves_the_order(
    ledger: Ledger, history: LedgerHistory
) -> None:
    deposits = deposit_entries(ALICE_PAPER, {"USDT": D(1000)}, "initial")
    await ledger.ensure_account(ALICE_PAPER, ALICE, "paper", deposits, 1)
    row, _ = await ledger.insert_order(new_order("bot:1:b0"))
    assert await ledger.set_order_status(
        *key(ALICE, "bot:1:b0"), S.ACCEPTED, 2, venue_order_id="P1"
    )
    result = await ledger.record_fill(fill_row(row.client_order_id, "t1", qty="0.004"))
    assert result is not None
    watermark, after = result
    assert (after.status, after.filled_qty) == ("partially_filled", D("0.004"))
    assert await ledger.record_fill(fill_row(row.client_order_id, "t1", qty="0.004")) is None
    result = await ledger.record_fill(fill_row(row.client_order_id, "t2", qty="0.006"))
    assert result is not None and result[1].status == "filled"
    # a late 'accepted' must not overwrite 'filled'
    assert not await ledger.set_order_status(*key(ALICE, "bot:1:b0"), S.ACCEPTED, 3)
    assert await history.balances(ALICE_PAPER) == {
        "BTC": D("0.010"),
        "USDT": D(1000) - D(600) - D("0.12"),
    }
    # up to the first fill's watermark, only that fill counts
    assert await history.balances(ALICE_PAPER, watermark) == {
        "BTC": D("0.004"),
        "USDT": D(1000) - D(240) - D("0.06"),
    }
    assert await ledger.open_orders(ALICE_PAPER) == []


async def test_both_sides_of_a_trade_between_two_accounts_are_booked(
    ledger: Ledger, history: LedgerHistory
) -> None:
    """Two of our accounts that trade with each other get the same venue trade id."""
    rows = {}
    for user in (ALICE, BOB):
        account = AccountId(f"{user}-paper")
        deposits = deposit_entries(account, {"USDT": D(1000)}, "initial")
        await ledger.ensure_account(account, user, "paper", deposits, 1)
        rows[account], _ = await ledger.insert_order(new_order("bot:1:b0", user, account))
    for account, row in rows.items():
        fill = fill_row(row.client_order_id, "T9", account=account)
        assert await ledger.record_fill(fill) is not None
        assert await ledger.record_fill(fill) is None
        assert (await history.balances(account))["BTC"] == D("0.01")


async def test_rejections_are_kept_once_per_stream_message(
    ledger: Ledger, pool: asyncpg.Pool
) -> None:
    rejection = Rejection(
        stream="INTENTS_alice",
        stream_seq=42,
        subject="intent.alice.manual",
        user_id=ALICE,
        source="manual",
        intent_id=IntentId("m1"),
        account_id=None,
        reason="decode_error",
        message="bad",
        payload=b"x" * 100_000,
        ts=1,
    )
    await ledger.record_rejection(rejection)
    await ledger.record_rejection(rejection)  # redelivered
    assert await ledger.find_rejection(*key(ALICE, "m1")) == ("decode_error", "bad")
    assert await ledger.find_rejection(*key(BOB, "m1")) is None
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT length(payload) AS n FROM rejected_intents")
    assert [r["n"] for r in rows] == [65_536]
    # the same sequence in another user's stream is another message
    bobs = msgspec.structs.replace(
        rejection, stream="INTENTS_bob", user_id=BOB, subject="intent.bob.manual"
    )
    await ledger.record_rejection(bobs)
    assert await ledger.find_rejection(*key(BOB, "m1")) == ("decode_error", "bad")


async def test_watermark_leaves_out_only_fills_in_flight(
    ledger: Ledger, pool: asyncpg.Pool
) -> None:
    recon = ReconciliationLedger(pool)
    deposits = deposit_entries(ALICE_PAPER, {"USDT": D(1000)}, "initial")
    await ledger.ensure_account(ALICE_PAPER, ALICE, "paper", deposits, 1)
    watermark = await ledger.last_journal_id()
    row, _ = await ledger.insert_order(new_order("bot:1:b0"))
    await ledger.record_fill(fill_row(row.client_order_id, "t1"))  # after the snapshot
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO journal (account_id, asset, amount, kind, ref, ts)"
            " VALUES ('alice-paper', 'USDT', -5, 'adjustment', 'hand', 0)"
        )
    assert await recon.account_ids() == ["alice-paper"]
    assert await recon.balances(ALICE_PAPER, watermark) == {"USDT": D(995)}


async def test_balances_of_many_accounts_in_one_query_match_each_account_alone(
    pool: asyncpg.Pool,
) -> None:
    """The reconciler's one query per run sums every (account, watermark) pair exactly as
    the one-account statement does: fills newer than the pair's watermark left out,
    every other entry counted."""
    recon = ReconciliationLedger(pool)
    kinds = ["deposit", "fill", "fee", "realized_pnl", "adjustment", "funding"]
    accounts = [AccountId(f"acct-{i}") for i in range(7)]
    watermarks: list[int | None] = [None]
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO accounts (id, user_id, venue, created_ns) VALUES ($1, 'u', 'paper', 0)",
            [(a,) for a in accounts],
        )
        for step in range(6):  # entries of every kind, interleaved across the accounts
            for i, account in enumerate(accounts[:6]):  # acct-6 has no entries
                await conn.execute(
                    "INSERT INTO journal (account_id, asset, amount, kind, ref, ts)"
                    " VALUES ($1, $2, $3, $4, 'test', 0)",
                    account,
                    ("BTC", "USDT", "BTCUSDT-PERP")[(i + step) % 3],
                    D(f"{i + 1}.{step}") * (-1 if step % 2 else 1),
                    kinds[(i + step) % len(kinds)],
                )
            watermarks.append(await conn.fetchval("SELECT max(id) FROM journal"))
    pairs = [(a, w) for a in accounts for w in watermarks]
    pairs += [(AccountId("nobody"), None), pairs[3], (accounts[0], 0)]  # unknown, twice, before all
    many = await recon.balances_many(pairs)
    assert many == [await recon.balances(a, w) for a, w in pairs]
    # not vacuous: a watermark leaves fills out, and only those
    assert many[pairs.index((accounts[1], watermarks[1]))] != many[pairs.index((accounts[1], None))]
    # acct-0 before its first entry: no fill, fee or realized P&L; the rest counts
    assert many[-1] == {"BTC": D("1.0"), "USDT": D("1.4"), "BTCUSDT-PERP": D("-1.5")}
    assert many[pairs.index((accounts[6], None))] == {} and many[-3] == {}
    assert await recon.balances_many([]) == []


async def test_reports_are_stored_in_one_insert_with_their_ids_in_order(
    pool: asyncpg.Pool,
) -> None:
    recon = ReconciliationLedger(pool)
    row = ReconRow(
        asset="BTC", venue_total=D("1.5"), ledger_total=D("1.25"), drift=D("0.25"),
        tolerance=D("1E-8"), ok=False,
    )  # fmt: skip
    reports = [
        ReconReport(
            account=f"acct-{9 - i}",
            status="drift" if i % 2 else "ok",
            rows=[row] * (i % 3),
            ledger_watermark=100 + i,
            ts_event=1000 + i,
            action="alert" if i % 2 else "none",
        )
        for i in range(10)
    ]
    first = await recon.insert_recon_report(reports[0])
    ids = await recon.insert_recon_reports(reports[1:])
    assert ids == sorted(ids) and ids[0] > first
    async with pool.acquire() as conn:
        stored = await conn.fetch(
            "SELECT id, account_id, status, ledger_watermark, rows, ts FROM recon_reports"
            " ORDER BY id"
        )
    assert [r["id"] for r in stored] == [first, *ids]
    assert [
        (r["account_id"], r["status"], r["ledger_watermark"], json.loads(r["rows"]), r["ts"])
        for r in stored
    ] == [
        (r.account, r.status, r.ledger_watermark, json.loads(msgspec.json.encode(r.rows)),
         r.ts_event)
        for r in reports
    ]  # fmt: skip
    assert json.loads(stored[1]["rows"]) == [{
        "asset": "BTC", "venue_total": "1.5", "ledger_total": "1.25", "drift": "0.25",
        "tolerance": "1E-8", "ok": False,
    }]  # fmt: skip
    assert await recon.insert_recon_reports([]) == []
