"""History and P&L reports (tradebus.ledger.reports) on a real PostgreSQL.

Rows are written through :class:`tradebus.ledger.store.Ledger` as execution
writes them (an order row, its acceptance, its fills with their journal
entries); the reports read them back: keyset pages that walk every row once
while rows arrive, filters, one user's rows never shown to another (also
with a cursor of the first, or a forged one), realized and unrealized P&L
against a hand-computed example and against ``Position``, fees in the base
asset, charts, CSV text. The last test prints how long a first page and a
P&L take over 100,000 fills of one user and 10,000 of another.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal as D
from typing import Any, TypeVar

import asyncpg
import msgspec
import pytest

from tests.support.ledger_books import BTCUSDT, SEC, T0, Books
from tradebus.cli.summary import ledger_summary
from tradebus.common.ids import AccountId, UserId
from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.messages import BotStatus
from tradebus.common.positions import Position
from tradebus.ledger.migrate import apply_migrations, discover
from tradebus.ledger.pool import create_pool
from tradebus.ledger.reports.export import CsvFormat, iso_utc, to_csv
from tradebus.ledger.reports.history import FillRecord, OrderRecord, fills_page, orders_page
from tradebus.ledger.reports.pnl import (
    MarketPnl,
    MarketResolver,
    pnl_by_account,
    pnl_by_bot,
    pnl_series,
)
from tradebus.ledger.reports.scope import (
    ALL_USERS,
    InvalidCursor,
    Page,
    ReportArgumentError,
    UserScope,
    encode_cursor,
)
from tradebus.ledger.rows import FillRow
from tradebus.ledger.store import Ledger

ALICE, BOB = UserId("alice"), UserId("bob")
R = TypeVar("R")
ETHUSDT = Market(
    symbol="ETHUSDT", base="ETH", quote="USDT", tick_size=D("0.01"), step_size=D("0.0001")
)
SOL_USDC = Market(
    symbol="SOL_USDC", base="SOL", quote="USDC", tick_size=D("0.01"), step_size=D("0.01")
)
CATALOG = MarketCatalog({"binance": [BTCUSDT, ETHUSDT], "backpack": [SOL_USDC]})
"""Paper accounts trade on Binance's data; ``*-bp`` accounts on Backpack itself."""


def resolver(*paper_accounts: str) -> MarketResolver:
    return MarketResolver(CATALOG, data_venues={a: "binance" for a in paper_accounts})


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    yield pool
    await pool.close()


@pytest.fixture
async def books(pool: asyncpg.Pool) -> Books:
    books = Books(Ledger(pool))
    for account, user in (("alice-paper", ALICE), ("alice-2", ALICE), ("bob-paper", BOB)):
        await books.account(account, user)
    return books


async def walk(fetch: Callable[[str | None], Awaitable[Page[R]]]) -> list[R]:
    """The rows of every page of a report, following ``next_cursor``."""
    rows: list[R] = []
    cursor = None
    while True:
        page = await fetch(cursor)
        rows += page.items
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def order_key(o: OrderRecord) -> tuple[int, int]:
    return (o.created_ns, o.client_order_id)


# --------------------------------------------------------------------- migration
async def test_fills_booked_before_migration_0007_get_their_owner(database_url: str) -> None:
    """0007 copies each existing fill's user and source from its order and numbers the fills
    in booking order; from then on the ledger's fill writer copies them (and a fill without
    them is refused)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in discover():
            if migration.version < 7:
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
        await conn.execute(
            "INSERT INTO accounts VALUES ('a', 'alice', 'paper', 0), ('b', 'bob', 'paper', 0);"
            "INSERT INTO orders (user_id, intent_id, account_id, source, symbol, side,"
            " order_type, qty, status, created_ns, updated_ns, client_order_id) VALUES"
            " ('alice', 'i1', 'a', 'ladder', 'BTCUSDT', 'buy', 'market', 1, 'filled', 1, 1, 11),"
            " ('bob', 'i1', 'b', 'manual', 'BTCUSDT', 'buy', 'market', 1, 'filled', 1, 1, 12);"
            "INSERT INTO fills (venue, trade_id, client_order_id, account_id, symbol, side,"
            " price, qty, fee, fee_asset, liquidity, ts_event, recorded_ns) VALUES"
            " ('paper', 't1', 12, 'b', 'BTCUSDT', 'buy', 1, 1, 0, 'USDT', 'maker', 5, 5),"
            " ('paper', 't2', 11, 'a', 'BTCUSDT', 'buy', 1, 1, 0, 'USDT', 'maker', 5, 6)"
        )
        assert await apply_migrations(conn) == [m.version for m in discover() if m.version >= 7]
        rows = await conn.fetch("SELECT trade_id, user_id, source, seq FROM fills ORDER BY seq")
        assert [tuple(r) for r in rows] == [
            ("t1", "bob", "manual", 1),
            ("t2", "alice", "ladder", 2),
        ]
        bob = await fills_page(conn, BOB)
        assert [(f.trade_id, f.bot, f.intent_id) for f in bob.items] == [("t1", "manual", "i1")]
        # a fill without its owner is refused
        with pytest.raises(asyncpg.NotNullViolationError):
            await conn.execute(
                "INSERT INTO fills (venue, trade_id, client_order_id, account_id, symbol, side,"
                " price, qty, fee, fee_asset, liquidity, ts_event, recorded_ns) VALUES"
                " ('paper', 't3', 11, 'a', 'BTCUSDT', 'buy', 1, 1, 0, 'USDT', 'maker', 5, 6)"
            )
    finally:
        await conn.close()
    pool = await create_pool(database_url)
    try:
        books = Books(Ledger(pool))
        order = await books.order(ALICE, "a", "grid", "buy", "1", "100", T0)
        trade = await books.fill(order, "1", "100", "0", T0 + 1)
        # the ledger's writer copies the owner from the order
        row = await pool.fetchrow(
            "SELECT user_id, source, seq FROM fills WHERE trade_id = $1", trade
        )
        assert row is not None
        assert (row["user_id"], row["source"]) == ("alice", "grid") and row["seq"] > 2
        # a fill of no order is refused as before, and nothing of it is booked
        facts = FillRow(
            venue="paper",
            trade_id="t4",
            client_order_id=99,
            account_id=AccountId("a"),
            symbol="BTCUSDT",
            side="buy",
            price=D(1),
            qty=D(1),
            fee=D(0),
            fee_asset="USDT",
            liquidity="maker",
            ts_event=T0,
            ts=T0,
            entries=[],
        )
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await Ledger(pool).record_fill(facts)
        assert await pool.fetchval("SELECT count(*) FROM fills") == 3
    finally:
        await pool.close()


# ------------------------------------------------------------------------- paging
async def test_order_pages_walk_every_row_once_while_orders_arrive(
    pool: asyncpg.Pool, books: Books
) -> None:
    # 23 orders, several sharing a creation time: the order is (created_ns, client order id)
    for i in range(23):
        await books.order(ALICE, "alice-paper", "ladder", "buy", "0.01", "100", T0 + (i // 3) * SEC)
    everything = (await orders_page(pool, ALICE, limit=1000)).items
    assert len(everything) == 23
    assert [order_key(o) for o in everything] == sorted(map(order_key, everything), reverse=True)

    # newest first: orders placed while paging are newer than the walk, so they are not in
    # it, and none of the rows walked moves, repeats or is skipped (OFFSET would repeat them)
    seen: list[OrderRecord] = []
    cursor = None
    for n in itertools.count():
        page = await orders_page(pool, ALICE, cursor=cursor, limit=5)
        assert len(page.items) <= 5
        seen += page.items
        await books.order(
            ALICE, "alice-paper", "ladder", "buy", "0.01", "100", T0 + (100 + n) * SEC
        )
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [o.intent_id for o in seen] == [o.intent_id for o in everything]

    # oldest first: orders placed while paging come after the walk's position, so the walk
    # reaches them too, each exactly once
    seen, cursor, added = [], None, []
    for n in itertools.count():
        page = await orders_page(pool, ALICE, cursor=cursor, limit=7, newest_first=False)
        seen += page.items
        if page.next_cursor is None:
            break
        if n < 3:
            row = await books.order(
                ALICE, "alice-paper", "ladder", "buy", "0.01", "1", T0 + (200 + n) * SEC
            )
            added.append(row.intent_id)
        cursor = page.next_cursor
    ids = [o.intent_id for o in seen]
    assert len(ids) == len(set(ids)) == 23 + n_walk_inserts(seen) + len(added)
    assert set(added) <= set(ids)
    assert [order_key(o) for o in seen] == sorted(map(order_key, seen))


def n_walk_inserts(seen: list[OrderRecord]) -> int:
    """Orders the newest-first walk added (created at T0 + 100 s and later, before T0 + 200 s)."""
    return sum(1 for o in seen if T0 + 100 * SEC <= o.created_ns < T0 + 200 * SEC)


async def test_fill_pages_walk_every_row_once_while_fills_arrive(
    pool: asyncpg.Pool, books: Books
) -> None:
    order = await books.order(ALICE, "alice-paper", "ladder", "buy", "100", "100", T0)
    trades = [await books.fill(order, "1", "100", "0", T0 + (i // 4) * SEC) for i in range(17)]
    seen: list[FillRecord] = []
    cursor = None
    for n in itertools.count():
        page = await fills_page(pool, ALICE, cursor=cursor, limit=4)
        seen += page.items
        # a fill arrives late with an older venue time than every row left to walk: a keyset
        # page still shows each row once (it may or may not show the newcomer)
        await books.fill(order, "1", "100", "0", T0 - (n + 1) * SEC)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    walked = [f.trade_id for f in seen]
    assert len(walked) == len(set(walked))
    assert walked[:17] == list(reversed(trades))  # same-time fills newest booked first
    assert [(f.ts_event) for f in seen] == sorted((f.ts_event for f in seen), reverse=True)
    first = seen[0]
    assert (first.intent_id, first.bot, first.account, first.venue, first.user) == (
        order.intent_id,
        "ladder",
        "alice-paper",
        "paper",
        "alice",
    )
    assert first.notional == D("100")

    ascending = await walk(lambda c: fills_page(pool, ALICE, cursor=c, limit=6, newest_first=False))
    assert [f.trade_id for f in ascending] == [
        f.trade_id for f in reversed(await all_fills(pool, ALICE))
    ]


async def all_fills(pool: asyncpg.Pool, user: UserScope, **filters: Any) -> list[FillRecord]:
    return (await fills_page(pool, user, limit=1000, **filters)).items


async def all_orders(pool: asyncpg.Pool, user: UserScope, **filters: Any) -> list[OrderRecord]:
    return (await orders_page(pool, user, limit=1000, **filters)).items


# ------------------------------------------------------------------------ filters
async def test_filters_by_bot_account_symbol_status_and_time(
    pool: asyncpg.Pool, books: Books
) -> None:
    for i in range(12):
        bot = ("ladder", "grid", "manual")[i % 3]
        account = "alice-paper" if i % 2 else "alice-2"
        symbol = "ETHUSDT" if i % 4 == 0 else "BTCUSDT"
        order = await books.order(
            ALICE, account, bot, "buy", "1", "10", T0 + i * SEC, symbol=symbol
        )
        if i % 3 != 2:
            await books.fill(order, "1", "10", "0", T0 + i * SEC + 1)
    orders = await all_orders(pool, ALICE)
    fills = await all_fills(pool, ALICE)
    assert (len(orders), len(fills)) == (12, 8)

    cases: list[dict[str, Any]] = [
        {"bot": "ladder"},
        {"bot": "manual"},
        {"account": "alice-2"},
        {"symbol": "ETHUSDT"},
        {"since_ns": T0 + 3 * SEC, "until_ns": T0 + 7 * SEC},
        {"bot": "grid", "account": "alice-paper", "since_ns": T0 + 2 * SEC},
        {"bot": "nobody"},
    ]
    for case in cases:
        expect_orders = [
            o for o in orders if matches(o.bot, o.account, o.symbol, o.created_ns, case)
        ]
        assert await all_orders(pool, ALICE, **case) == expect_orders, case
        expect_fills = [f for f in fills if matches(f.bot, f.account, f.symbol, f.ts_event, case)]
        assert await all_fills(pool, ALICE, **case) == expect_fills, case
        # the same through pages of 2
        paged = await walk(functools.partial(pages_of_two, pool, case))
        assert paged == expect_orders
    filled = await all_orders(pool, ALICE, status="filled")
    assert {o.intent_id for o in filled} == {o.intent_id for o in orders if o.bot != "manual"}
    assert all(o.avg_fill_price == D(10) and o.filled_qty == D(1) for o in filled)
    open_ = await all_orders(pool, ALICE, status="accepted")
    assert all(o.avg_fill_price is None and o.filled_qty == 0 for o in open_) and len(open_) == 4


def pages_of_two(
    pool: asyncpg.Pool, case: dict[str, Any], cursor: str | None
) -> Awaitable[Page[OrderRecord]]:
    return orders_page(pool, ALICE, cursor=cursor, limit=2, **case)


def matches(bot: str, account: str, symbol: str, ts: int, case: dict[str, Any]) -> bool:
    since = case.get("since_ns")
    until = case.get("until_ns")
    return (
        case.get("bot", bot) == bot
        and case.get("account", account) == account
        and case.get("symbol", symbol) == symbol
        and (since is None or ts >= since)
        and (until is None or ts < until)
    )


async def test_an_order_with_several_fills_shows_their_average_price(
    pool: asyncpg.Pool, books: Books
) -> None:
    order = await books.order(ALICE, "alice-paper", "ladder", "buy", "0.3", "101", T0)
    await books.fill(order, "0.1", "100", "0.01", T0 + 1)
    await books.fill(order, "0.2", "101", "0.02", T0 + 2)
    (record,) = await all_orders(pool, ALICE)
    assert (record.status, record.filled_qty, record.type, record.price) == (
        "filled",
        D("0.3"),
        "limit",
        D("101"),
    )
    assert record.avg_fill_price == (D("0.1") * 100 + D("0.2") * 101) / D("0.3")
    assert record.venue_order_id == f"V{record.client_order_id}" and record.reason is None


# ------------------------------------------------------------------------- scope
async def test_another_users_rows_never_appear(pool: asyncpg.Pool, books: Books) -> None:
    for i in range(6):
        await books.trade(ALICE, "alice-paper", "ladder", "buy", "1", "100", "0.1", T0 + i * SEC)
        await books.trade(BOB, "bob-paper", "ladder", "buy", "2", "100", "0.2", T0 + i * SEC + 1)
    alice_first = await orders_page(pool, ALICE, limit=2)
    alice_fills = await fills_page(pool, ALICE, limit=2)
    assert alice_first.next_cursor is not None and alice_fills.next_cursor is not None
    bob_orders = await all_orders(pool, BOB)
    assert {o.user for o in bob_orders} == {"bob"} and len(bob_orders) == 6
    # bob's pages never hold alice's rows, however he pages, even by alice's own bot name
    for cursor in (None, alice_first.next_cursor):
        page = await orders_page(pool, BOB, cursor=cursor, bot="ladder", limit=1000)
        assert {o.user for o in page.items} == {"bob"}
    page_f = await fills_page(pool, BOB, cursor=alice_fills.next_cursor, limit=1000)
    assert {f.user for f in page_f.items} == {"bob"}
    assert await orders_page(pool, BOB, account="alice-paper") == Page(items=[], next_cursor=None)
    # a forged cursor (positioned after every row there is) still reads only bob's rows
    forged = base64.urlsafe_b64encode(json.dumps([1, "fills", False, -(2**63), 0]).encode())
    page_f = await fills_page(pool, BOB, cursor=forged.decode().rstrip("="), newest_first=False)
    assert {f.user for f in page_f.items} == {"bob"} and len(page_f.items) == 6
    # P&L too
    rows = await pnl_by_bot(pool, BOB, markets=resolver("bob-paper"), marks={})
    assert [(r.user, r.bot, r.bought_qty) for r in rows] == [("bob", "ladder", D(12))]
    accounts = await pnl_by_account(pool, BOB, markets=resolver(), marks={}, account="alice-paper")
    assert accounts == []
    assert await pnl_series(pool, BOB, "ladder", markets=resolver()) != []
    assert {p.account for p in await pnl_series(pool, BOB, "ladder", markets=resolver())} == {
        "bob-paper"
    }
    # an administrator sees both
    everyone = await all_orders(pool, ALL_USERS)
    assert {o.user for o in everyone} == {"alice", "bob"} and len(everyone) == 12
    admin_paged = await walk(lambda c: fills_page(pool, ALL_USERS, cursor=c, limit=5))
    assert len({f.trade_id for f in admin_paged}) == len(admin_paged) == 12


async def test_bad_arguments_and_cursors_are_named(pool: asyncpg.Pool, books: Books) -> None:
    for i in range(3):
        await books.trade(ALICE, "alice-paper", "ladder", "buy", "1", "100", "0.1", T0 + i)
    orders_cursor = (await orders_page(pool, ALICE, limit=1)).next_cursor
    fills_cursor = (await fills_page(pool, ALICE, limit=1)).next_cursor
    assert orders_cursor is not None and fills_cursor is not None
    garbled = [
        "",
        "not a cursor!",
        "%%%%",
        orders_cursor[:-3],
        orders_cursor + "AAAA",
        "A" * 5000,
        base64.urlsafe_b64encode(b"[1,2,3]").decode(),
        base64.urlsafe_b64encode(b'[1, "orders", true, 1.5, 2]').decode(),
        base64.urlsafe_b64encode(b'[2, "orders", true, 1, 2]').decode(),
        base64.urlsafe_b64encode(b'[1, "orders", true, 1, 99999999999999999999999]').decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        fills_cursor,  # a cursor of the other report
    ]
    for bad in garbled:
        with pytest.raises(InvalidCursor) as caught:
            await orders_page(pool, ALICE, cursor=bad)
        assert caught.value.field == "cursor" and isinstance(caught.value, ValueError), bad
        assert str(caught.value).startswith("cursor: ")
    with pytest.raises(InvalidCursor, match="other sort order"):
        await orders_page(pool, ALICE, cursor=orders_cursor, newest_first=False)
    with pytest.raises(InvalidCursor):
        await fills_page(pool, ALICE, cursor=orders_cursor)
    bad_args: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("user", lambda: orders_page(pool, None, limit=1)),  # type: ignore[arg-type]
        ("user", lambda: fills_page(pool, UserId(""))),
        ("limit", lambda: orders_page(pool, ALICE, limit=0)),
        ("limit", lambda: fills_page(pool, ALICE, limit=1001)),
        ("status", lambda: orders_page(pool, ALICE, status="done")),
        ("since_ns", lambda: orders_page(pool, ALICE, since_ns=5, until_ns=4)),
        ("until_ns", lambda: fills_page(pool, ALICE, until_ns=2**70)),
        ("bot", lambda: fills_page(pool, ALICE, bot="a\x00b")),
        ("max_points", lambda: pnl_series(pool, ALICE, "ladder", markets=resolver(), max_points=0)),
        ("user", lambda: pnl_by_bot(pool, None, markets=resolver(), marks={})),  # type: ignore[arg-type]
        ("bot", lambda: pnl_series(pool, ALICE, None, markets=resolver())),  # type: ignore[arg-type]
    ]
    for field, call in bad_args:
        with pytest.raises(ReportArgumentError) as caught_arg:
            await call()
        assert caught_arg.value.field == field


# --------------------------------------------------------------------------- P&L
async def test_pnl_of_a_bot_by_hand_and_by_position(pool: asyncpg.Pool, books: Books) -> None:
    trade = books.trade
    await trade(ALICE, "alice-paper", "ladder", "buy", "0.1", "100", "0.01", T0 + 1 * SEC)
    await trade(ALICE, "alice-paper", "ladder", "buy", "0.1", "90", "0.009", T0 + 2 * SEC)
    await trade(ALICE, "alice-paper", "ladder", "sell", "0.15", "110", "0.0165", T0 + 3 * SEC)
    # another bot of the same account and market, and a manual order
    await trade(ALICE, "alice-paper", "grid", "buy", "0.2", "105", "0.021", T0 + 2 * SEC + 1)
    await trade(ALICE, "alice-paper", "manual", "sell", "0.1", "120", "0.012", T0 + 4 * SEC)
    marks = {("binance", "BTCUSDT"): D(120)}
    rows = await pnl_by_bot(pool, ALICE, markets=resolver("alice-paper"), marks=marks)
    by_bot = {r.bot: r for r in rows}
    assert list(by_bot) == ["grid", "ladder", "manual"]
    ladder = by_bot["ladder"]
    # bought 0.2 for 19 (avg 95, fees 0.019); the sell of 0.15 at 110 realizes
    # 0.15 * 110 - 0.75 * 19 - 0.0165 - 0.75 * 0.019 = 16.5 - 14.25 - 0.0165 - 0.01425
    assert ladder.realized_pnl == D("2.21925")
    assert (ladder.position, ladder.avg_price) == (D("0.05"), D(95))
    # 0.05 left, cost 4.75 and fees 0.00475: at 120 it is worth 6
    assert ladder.unrealized_pnl == D("1.24525") and ladder.mark == D(120)
    assert ladder.fees == D("0.0355")
    assert (ladder.bought_qty, ladder.bought_notional, ladder.sold_qty, ladder.sold_notional) == (
        D("0.2"),
        D("19.0"),
        D("0.15"),
        D("16.5"),
    )
    assert (ladder.fills, ladder.first_fill_ns, ladder.last_fill_ns) == (3, T0 + SEC, T0 + 3 * SEC)
    assert (ladder.account, ladder.venue, ladder.data_venue, ladder.base, ladder.quote) == (
        "alice-paper",
        "paper",
        "binance",
        "BTC",
        "USDT",
    )
    assert ladder.other_fees == {}
    # the manual sell had nothing bought before it: a short, as Position counts it
    manual = by_bot["manual"]
    assert (manual.position, manual.avg_price, manual.realized_pnl) == (D("-0.1"), D(120), 0)
    assert manual.unrealized_pnl == D("-0.012")

    # each row is Position over that bot's fills; the account's is Position over all of them
    fills = sorted(await all_fills(pool, ALICE), key=lambda f: f.ts_event)
    for bot, row in by_bot.items():
        assert_is_position(row, [f for f in fills if f.bot == bot], D(120))
    (account,) = await pnl_by_account(pool, ALICE, markets=resolver("alice-paper"), marks=marks)
    assert account.bot is None and account.fills == 5
    assert_is_position(account, fills, D(120))
    assert account.realized_pnl != sum(r.realized_pnl for r in rows)  # averaged together

    # a range reports what happened in it: the ladder's sell alone
    ranged = await pnl_by_bot(
        pool, ALICE, markets=resolver("alice-paper"), marks={}, bot="ladder", since_ns=T0 + 3 * SEC
    )
    (r,) = ranged
    assert (r.realized_pnl, r.fees, r.fills, r.bought_qty, r.sold_qty) == (
        D("2.21925"),
        D("0.0165"),
        1,
        0,
        D("0.15"),
    )
    assert (r.position, r.unrealized_pnl) == (D("0.05"), None)  # no mark
    # ... and until: the state after the two buys only
    (r,) = await pnl_by_bot(
        pool,
        ALICE,
        markets=resolver("alice-paper"),
        marks=marks,
        bot="ladder",
        until_ns=T0 + 3 * SEC,
    )
    assert (r.realized_pnl, r.position, r.avg_price, r.fills) == (0, D("0.2"), D(95), 2)
    assert r.unrealized_pnl == D("0.2") * 120 - 19 - D("0.019")
    # a range with no fill of a bot still shows what it holds
    (r,) = await pnl_by_bot(
        pool,
        ALICE,
        markets=resolver("alice-paper"),
        marks=marks,
        bot="ladder",
        since_ns=T0 + 5 * SEC,
    )
    assert (r.fills, r.realized_pnl, r.fees, r.position, r.first_fill_ns) == (
        0,
        0,
        0,
        D("0.05"),
        None,
    )


async def test_a_bots_pnl_is_booked_per_cycle(pool: asyncpg.Pool, books: Books) -> None:
    """Rule 6: overlapping volume loops (cycles 1 and 2 of ``vol``'s intent ids): loop 1's
    sell realizes against loop 1's buy, exactly proceeds - cost - both fees."""
    o = functools.partial(books.order, ALICE, "alice-paper", "vol")
    b1 = await o("buy", "0.001", "60000", T0 + SEC, intent="vol:1.1:b")
    await books.fill(b1, "0.001", "60000", "0.006", T0 + SEC)
    b2 = await o("buy", "0.001", "66000", T0 + 2 * SEC, intent="vol:1.2:b")
    await books.fill(b2, "0.001", "66000", "0.0066", T0 + 2 * SEC)
    s1 = await o("sell", "0.001", "60600", T0 + 3 * SEC, intent="vol:1.1:s")
    await books.fill(s1, "0.001", "60600", "0.00606", T0 + 3 * SEC)
    markets, marks = resolver("alice-paper"), {("binance", "BTCUSDT"): D(65000)}
    (row,) = await pnl_by_bot(pool, ALICE, markets=markets, marks=marks)
    # 60.6 - 60 - 0.006 - 0.00606 (the average cost of both loops gave -2.41236)
    assert str(row.realized_pnl) == "0.58794"
    assert (row.position, row.avg_price) == (D("0.001"), D(66000))
    assert row.unrealized_pnl == D("0.001") * (65000 - 66000) - D("0.0066")
    points = await pnl_series(pool, ALICE, "vol", markets=markets)
    assert points[-1].realized_pnl == row.realized_pnl
    (account,) = await pnl_by_account(pool, ALICE, markets=markets, marks=marks)
    assert account.realized_pnl == D("-2.41236")  # an account's one position: average cost
    # loop 2 closes: 65.34 - 66 - 0.0066 - 0.006534; the sum is exact
    s2 = await o("sell", "0.001", "65340", T0 + 4 * SEC, intent="vol:1.2:s")
    await books.fill(s2, "0.001", "65340", "0.006534", T0 + 4 * SEC)
    (row,) = await pnl_by_bot(pool, ALICE, markets=markets, marks=marks)
    assert str(row.realized_pnl) == "-0.085194"  # 0.58794 - 0.673134 (no tail)
    assert (row.position, row.avg_price, row.unrealized_pnl) == (0, None, 0)


def assert_is_position(row: MarketPnl, fills: list[FillRecord], mark: D) -> None:
    position = Position()
    for f in fills:
        position.apply("buy" if f.side == "buy" else "sell", f.qty, f.price, f.fee)
    assert row.fills == len(fills)
    assert row.realized_pnl == position.realized_pnl
    assert row.unrealized_pnl == position.unrealized_pnl(mark)
    assert (row.position, row.avg_price, row.fees) == (
        position.qty,
        position.avg_price,
        position.fees,
    )


async def test_a_fee_in_the_base_asset_counts_at_the_fill_price(
    pool: asyncpg.Pool, books: Books
) -> None:
    await books.account("alice-bp", ALICE, venue="backpack")
    buy = await books.order(ALICE, "alice-bp", "ladder", "buy", "2", "150", T0, symbol="SOL_USDC")
    # Backpack charges a buy in the asset bought: 0.002 SOL at 150 USDC is 0.3 USDC
    await books.fill(
        buy, "2", "150", "0.002", T0, fee_asset="SOL", venue="backpack", market=SOL_USDC
    )
    sell = await books.order(
        ALICE, "alice-bp", "ladder", "sell", "1", "160", T0 + SEC, symbol="SOL_USDC"
    )
    await books.fill(sell, "1", "160", "0.16", T0 + SEC, venue="backpack", market=SOL_USDC)
    # and a fee in a third asset, which cannot be priced here
    sell2 = await books.order(
        ALICE, "alice-bp", "ladder", "sell", "0.5", "170", T0 + 2 * SEC, symbol="SOL_USDC"
    )
    await books.fill(
        sell2,
        "0.5",
        "170",
        "0.0001",
        T0 + 2 * SEC,
        fee_asset="BNB",
        venue="backpack",
        market=SOL_USDC,
    )
    marks = {("backpack", "SOL_USDC"): D(180)}
    (row,) = await pnl_by_bot(pool, ALICE, markets=resolver(), marks=marks)
    assert (row.data_venue, row.base, row.quote) == ("backpack", "SOL", "USDC")
    assert row.fees == D("0.460")  # 0.3 + 0.16
    assert row.other_fees == {"BNB": D("0.0001")}
    # the buy delivered 2 - 0.002 = 1.998 SOL for 300 (avg 150, fees 0.3 USDC);
    # sell 1 of them: 160 - 150 - 0.16 - 0.3 / 1.998;
    # sell 0.5 of the 0.998 left, its BNB fee unpriced: 85 - 75 - its share of the open fees
    received, opening = D("1.998"), D("0.3")
    first = D(160) - 150 - D("0.16") - opening / received
    left_fees = opening * (received - 1) / received
    second = D(85) - 75 - left_fees * D("0.5") / (received - 1)
    near = D("1e-20")
    assert abs(row.realized_pnl - (first + second)) < near
    assert (row.position, row.avg_price) == (D("0.498"), D(150))
    assert row.unrealized_pnl is not None
    assert abs(row.unrealized_pnl - (D("0.498") * 30 - left_fees * D("0.498") / D("0.998"))) < near
    # a market the resolver does not know: fees are unpriced, not guessed
    unknown = MarketResolver(MarketCatalog({}), data_venues={})
    (row,) = await pnl_by_bot(pool, ALICE, markets=unknown, marks=marks)
    assert (row.base, row.quote, row.fees) == (None, None, 0)
    assert row.other_fees == {"SOL": D("0.002"), "USDC": D("0.16"), "BNB": D("0.0001")}


async def test_pnl_series_for_charts(pool: asyncpg.Pool, books: Books) -> None:
    prices = ["100", "90", "95", "110", "105", "120"]
    for i, price in enumerate(prices):
        side = "buy" if i < 3 else "sell"
        await books.trade(ALICE, "alice-paper", "ladder", side, "0.1", price, "0.01", T0 + i * SEC)
    await books.trade(ALICE, "alice-paper", "other", "buy", "5", "1", "0", T0 + SEC)
    points = await pnl_series(pool, ALICE, "ladder", markets=resolver("alice-paper"))
    assert [p.price for p in points] == [D(p) for p in prices]
    position = Position()
    for p in points:
        position.apply("buy" if p.side == "buy" else "sell", p.qty, p.price, D("0.01"))
        assert (p.position, p.avg_price, p.realized_pnl, p.fees) == (
            position.qty,
            position.avg_price,
            position.realized_pnl,
            position.fees,
        )
        assert p.unrealized_pnl == position.unrealized_pnl(p.price)
        assert p.pnl == p.realized_pnl + p.unrealized_pnl
    # sells 33.5 - buys 28.5 - fees 0.06 (Position's thirds round in the 28th digit)
    assert points[-1].position == 0
    assert points[-1].realized_pnl.quantize(D("1e-20")) == D("4.94")
    # downsampled: the last point of each of 2 time buckets (0..2 s, 3..5 s)
    two = await pnl_series(pool, ALICE, "ladder", markets=resolver("alice-paper"), max_points=2)
    assert two == [points[2], points[5]]
    # a range: P&L counted from its start, positions from before it
    later = await pnl_series(
        pool, ALICE, "ladder", markets=resolver("alice-paper"), since_ns=T0 + 4 * SEC
    )
    assert [p.ts_event for p in later] == [T0 + 4 * SEC, T0 + 5 * SEC]
    assert later[-1].realized_pnl == points[-1].realized_pnl - points[3].realized_pnl
    assert later[-1].position == 0 and later[0].position == D("0.1")
    assert await pnl_series(pool, ALICE, "nobody", markets=resolver()) == []


async def test_the_demo_summary_reads_its_pnl_from_the_reports(
    database_url: str, books: Books
) -> None:
    await books.trade(ALICE, "alice-paper", "ladder", "buy", "0.1", "100", "0.01", T0 + 1)
    await books.trade(ALICE, "alice-paper", "ladder", "buy", "0.1", "90", "0.009", T0 + 2)
    await books.trade(ALICE, "alice-paper", "ladder", "sell", "0.15", "110", "0.0165", T0 + 3)
    await books.order(BOB, "bob-paper", "grid", "buy", "1", "1", T0)  # never filled
    status = BotStatus(
        bot="ladder",
        user="alice",
        account="alice-paper",
        strategy="ladder",
        venue="binance",
        symbol="BTCUSDT",
        last_price=D(120),
        cycles_completed=2,
    )
    conn = await asyncpg.connect(database_url)  # as the demo calls it: a connection of its own
    try:
        summary = await ledger_summary(conn, {"ladder": status}, CATALOG)
    finally:
        await conn.close()
    assert [(s.user, s.bot, s.orders, s.fills) for s in summary] == [
        ("alice", "ladder", 3, 3),
        ("bob", "grid", 1, 0),
    ]
    ladder = summary[0]
    assert (ladder.realized_pnl, ladder.unrealized_pnl, ladder.position, ladder.fees) == (
        D("2.21925"),
        D("1.24525"),
        D("0.05"),
        D("0.0355"),
    )
    assert (ladder.state, ladder.cycles, ladder.last_price) == ("running", 2, D(120))


# --------------------------------------------------------------------------- CSV
async def test_csv_text(pool: asyncpg.Pool, books: Books) -> None:
    order = await books.order(
        ALICE, "alice-paper", "ladder", "buy", "0.0012", "60000", T0 + 1, intent="=HYPERLINK(1)"
    )
    await books.fill(order, "0.0012", "60000", "1.2E-3", T0 + 5)
    fills = await all_fills(pool, ALICE)
    text = "".join(to_csv(FillRecord, fills))
    trade = fills[0].trade_id
    assert text == (
        "user,trade_id,intent_id,bot,account,venue,symbol,side,price,qty,notional,fee,fee_asset,"
        "liquidity,ts_event,time,recorded_ns,recorded_at\r\n"
        f"alice,{trade},'=HYPERLINK(1),ladder,alice-paper,paper,BTCUSDT,buy,60000,0.0012,72.0000,"
        f"0.0012,USDT,maker,{T0 + 5},2023-11-14T22:13:20.000000005Z,{T0 + 1005},"
        "2023-11-14T22:13:20.000001005Z\r\n"
    )
    orders = await all_orders(pool, ALICE)
    fmt = CsvFormat(OrderRecord, ["intent_id", "price", "avg_fill_price", "reason", "created_ns"])
    lines = [fmt.header_line(), *fmt.lines(orders), *fmt.lines(orders)]  # one writer, reused
    row = f"'=HYPERLINK(1),60000,60000,,{T0 + 1},2023-11-14T22:13:20.000000001Z\r\n"
    assert lines == ["intent_id,price,avg_fill_price,reason,created_ns,created_at\r\n", row, row]
    # numbers never in exponent form, text quoted where CSV needs it
    odd = msgspec.structs.replace(orders[0], price=D("6E+4"), qty=D("1.2E-7"), reason='a "b", c')
    (line,) = CsvFormat(OrderRecord, ["price", "qty", "reason", "status"]).lines([odd])
    assert line == '60000,0.00000012,"a ""b"", c",filled\r\n'
    with pytest.raises(ReportArgumentError) as caught:
        to_csv(OrderRecord, orders, ["intent_id", "password"])
    assert caught.value.field == "columns"
    assert iso_utc(-1) == "1969-12-31T23:59:59.999999999Z"
    rows = await pnl_by_bot(pool, ALICE, markets=resolver("alice-paper"), marks={})
    pnl_text = "".join(
        to_csv(MarketPnl, rows, ["bot", "realized_pnl", "unrealized_pnl", "other_fees"])
    )
    assert pnl_text == "bot,realized_pnl,unrealized_pnl,other_fees\r\nladder,0,,\r\n"


# ------------------------------------------------------------------------ timing
@pytest.mark.slow  # a figure, not a check: `make test-all`
async def test_timing_with_100k_fills(pool: asyncpg.Pool, books: Books) -> None:
    """Prints how long reports take over 100,000 fills of alice and 10,000 of bob (not
    asserted: a figure for the bench row)."""
    sizes = {"alice-paper": (ALICE, 100_000), "bob-paper": (BOB, 10_000)}
    async with pool.acquire() as conn:
        for account, (user, n) in sizes.items():
            # execution's rows, in bulk: an order per fill, bots taking turns, fills
            # alternating buy and sell around 100; each fill with its order's owner
            await conn.execute(
                "INSERT INTO orders (user_id, intent_id, account_id, source, symbol, side,"
                " order_type, price, qty, filled_qty, status, created_ns, updated_ns)"
                " SELECT $1, 'i' || g, $2, 'bot' || (g % 4), 'BTCUSDT',"
                " CASE WHEN g % 2 = 0 THEN 'buy' ELSE 'sell' END, 'limit', 100 + g % 7, 0.01,"
                " 0.01, 'filled', $3 + g * 1000000, $3 + g * 1000000"
                " FROM generate_series(1, $4::bigint) g",
                user,
                account,
                T0,
                n,
            )
            await conn.execute(
                "INSERT INTO fills (venue, trade_id, client_order_id, account_id, symbol, side,"
                " price, qty, fee, fee_asset, liquidity, ts_event, recorded_ns, user_id, source)"
                " SELECT 'paper', 't' || intent_id, client_order_id, account_id, symbol, side,"
                " price, qty, 0.001, 'USDT', 'maker', created_ns + 5, created_ns + 10, user_id,"
                " source"
                " FROM orders WHERE account_id = $1",
                account,
            )
        await conn.execute("ANALYZE orders; ANALYZE fills")
    timings: dict[str, float] = {}

    async def timed(name: str, call: Awaitable[object]) -> object:
        start = time.perf_counter()
        result = await call
        timings[name] = time.perf_counter() - start
        return result

    markets = resolver("alice-paper", "bob-paper")
    page = await timed("orders first page (100)", orders_page(pool, ALICE))
    assert isinstance(page, Page) and len(page.items) == 100
    assert await timed("orders page after 50,000", orders_page(pool, ALICE, cursor=deep_cursor()))
    fpage = await timed("fills first page (100)", fills_page(pool, ALICE))
    assert isinstance(fpage, Page) and len(fpage.items) == 100 and fpage.next_cursor is not None
    await timed("fills second page", fills_page(pool, ALICE, cursor=fpage.next_cursor))
    await timed("fills of one bot, first page", fills_page(pool, ALICE, bot="bot1"))
    await timed("bob's fills first page", fills_page(pool, BOB))
    one = await timed(
        "P&L of one bot (25,000 fills)",
        pnl_by_bot(pool, ALICE, markets=markets, marks={}, bot="bot1"),
    )
    assert isinstance(one, list) and one[0].fills == 25_000
    every = await timed(
        "P&L of every bot of alice (100,000 fills)",
        pnl_by_bot(pool, ALICE, markets=markets, marks={}),
    )
    assert isinstance(every, list) and sum(r.fills for r in every) == 100_000
    bob = await timed(
        "P&L of every bot of bob (10,000 fills)", pnl_by_bot(pool, BOB, markets=markets, marks={})
    )
    assert isinstance(bob, list) and sum(r.fills for r in bob) == 10_000
    await timed(
        "P&L series of one bot (1000 points)", pnl_series(pool, ALICE, "bot1", markets=markets)
    )
    print("\nreports over 100,000 fills of alice and 10,000 of bob:")
    for name, seconds in timings.items():
        print(f"  {name:<45} {seconds * 1000:8.1f} ms")


def deep_cursor() -> str:
    """A cursor half way through alice's 100,000 orders (made as the report makes them)."""
    return encode_cursor("orders", True, (T0 + 50_000 * 1_000_000, 2**40))
