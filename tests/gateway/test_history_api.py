"""History and P&L through the API: pages, filters, CSV, P&L, charts, scoping, bad input.

The real gateway on real NATS and PostgreSQL. The ledger is written through
:class:`tradebus.ledger.store.Ledger` the way execution writes it (an order
row, its acceptance, its fills with their journal entries), for two users;
each is then read over HTTP as that user (or as the admin) would.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from tests.gateway.conftest import Gateway, Session
from tests.support.ledger_books import SEC, T0, Books
from tradebus.common.ids import UserId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.gateway.routes.history import FillsPage, PnlReport, PnlSeries
from tradebus.ledger.pool import create_pool
from tradebus.ledger.reports.pnl import MarketResolver, pnl_by_account, pnl_by_bot, pnl_series
from tradebus.ledger.reports.scope import encode_cursor
from tradebus.ledger.store import Ledger

ALICE, BOB = UserId("alice"), UserId("bob")


@dataclass
class World:
    gateway: Gateway
    pool: asyncpg.Pool
    alice: Session
    bob: Session
    admin: Session


@pytest.fixture
async def world(gateway: Gateway) -> AsyncIterator[World]:
    """Alice: 30 orders of two bots and some manual ones on two accounts, most of them
    filled (several sharing a time); Bob: 6 orders of his bot."""
    pool = await create_pool(gateway.database_url)
    books = Books(Ledger(pool), cycle_per_order=True)
    for account, user in (("alice-paper", ALICE), ("alice-2", ALICE), ("bob-paper", BOB)):
        await books.account(account, user)
    for i in range(30):
        bot = ("a-ladder", "a-grid", "manual")[i % 3]
        account = "alice-2" if i % 5 == 4 else "alice-paper"
        side = "buy" if i % 4 < 2 else "sell"
        ts = T0 + (i // 2) * SEC  # two orders per second: ties in time
        price = str(100 + i % 7)
        order = await books.order(ALICE, account, bot, side, "0.5", price, ts)
        if i % 6 != 5:  # some stay open
            await books.fill(order, "0.2", price, "0.01", ts + SEC // 4)
            await books.fill(order, "0.3", price, "0.02", ts + SEC // 4)  # the same time
    for i in range(6):
        order = await books.order(
            BOB, "bob-paper", "b-ladder", "buy" if i % 2 == 0 else "sell", "1", "200", T0 + i * SEC
        )
        await books.fill(order, "1", str(200 + i), "0.1", T0 + i * SEC + 1)
    assert gateway.admin is not None
    alice = await gateway.person("alice")
    bob = await gateway.person("bob")
    try:
        yield World(gateway, pool, alice, bob, gateway.admin)
    finally:
        await pool.close()


async def walk(session: Session, path: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every row of a paged route following ``next_cursor``; and how many pages."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        answer = await session.get(path, params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        rows += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows, pages


def iso(ts_ns: int) -> str:
    seconds, nanos = divmod(ts_ns, SEC)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def assert_error(answer: httpx.Response, status: int, field: str | None) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["field"] == field, body
    assert "Traceback" not in answer.text


# ------------------------------------------------------------------------ pages
async def test_pages_walk_every_row_once_with_filters_and_scope(world: World) -> None:
    alice, bob, admin = world.alice, world.bob, world.admin
    db_fills = await world.pool.fetch(
        "SELECT trade_id, source, account_id, ts_event, seq FROM fills WHERE user_id = 'alice'"
        " ORDER BY ts_event DESC, seq DESC"
    )
    db_orders = await world.pool.fetch(
        "SELECT intent_id, source FROM orders WHERE user_id = 'alice'"
        " ORDER BY created_ns DESC, client_order_id DESC"
    )
    assert len(db_fills) == 50 and len(db_orders) == 30

    # pages of 7: every fill once, newest first, the same order as the ledger's
    fills, pages = await walk(alice, "/api/v1/history/fills", limit=7)
    assert [f["trade_id"] for f in fills] == [r["trade_id"] for r in db_fills]
    assert pages == 8 and {f["user"] for f in fills} == {"alice"}
    orders, pages = await walk(alice, "/api/v1/history/orders", limit=4)
    assert [o["intent_id"] for o in orders] == [r["intent_id"] for r in db_orders]
    assert pages == 8
    first = orders[-1]
    assert first["status"] == "filled" and D(first["filled_qty"]) == D("0.5")
    assert D(first["avg_fill_price"]) == D(first["price"])
    assert any(o["status"] == "accepted" and o["avg_fill_price"] is None for o in orders)

    # a fill booked while paging is not seen twice and nothing is skipped
    page = (await alice.get("/api/v1/history/fills", params={"limit": 10})).json()
    books = Books(Ledger(world.pool), first=1000, cycle_per_order=True)
    late = await books.order(ALICE, "alice-paper", "a-ladder", "buy", "1", "100", T0 + 100 * SEC)
    new_trade = await books.fill(late, "1", "100", "0", T0 + 100 * SEC)
    rest, _ = await walk(alice, "/api/v1/history/fills", limit=10, cursor=page["next_cursor"])
    seen = [f["trade_id"] for f in page["items"] + rest]
    assert seen == [r["trade_id"] for r in db_fills] and new_trade not in seen
    newest = (await alice.get("/api/v1/history/fills", params={"limit": 1})).json()
    assert newest["items"][0]["trade_id"] == new_trade

    # filters: bot, account, time (ns and ISO 8601 are the same range)
    ladder, _ = await walk(alice, "/api/v1/history/fills", bot="a-ladder", limit=5)
    assert {f["bot"] for f in ladder} == {"a-ladder"}
    assert len(ladder) == sum(1 for r in db_fills if r["source"] == "a-ladder") + 1
    manual, _ = await walk(alice, "/api/v1/history/orders", bot="manual")
    assert len(manual) == 10 and {o["bot"] for o in manual} == {"manual"}
    second, _ = await walk(alice, "/api/v1/history/fills", account="alice-2")
    assert {f["account"] for f in second} == {"alice-2"}
    assert len(second) == sum(1 for r in db_fills if r["account_id"] == "alice-2")
    since, until = T0 + 3 * SEC + SEC // 4, T0 + 8 * SEC + SEC // 4
    in_range = [r["trade_id"] for r in db_fills if since <= r["ts_event"] < until]
    assert in_range
    for bounds in ({"since": since, "until": until}, {"since": iso(since), "until": iso(until)}):
        ranged, _ = await walk(alice, "/api/v1/history/fills", limit=3, **bounds)
        assert [f["trade_id"] for f in ranged] == in_range
    day = (await alice.get("/api/v1/history/orders", params={"since": "2023-11-15"})).json()
    assert day["items"] == []  # every order is on 2023-11-14 (UTC)
    offset = await alice.get(
        "/api/v1/history/orders", params={"until": "2023-11-14T23:13:20+01:00"}
    )
    assert offset.json()["items"] == []  # that is T0: nothing before it

    # scope: Bob sees only his; Alice's bot, account or user are 404 to him, and back
    bobs, _ = await walk(bob, "/api/v1/history/fills")
    assert len(bobs) == 6 and {f["user"] for f in bobs} == {"bob"}
    for path, params in (
        ("/api/v1/history/fills", {"bot": "a-ladder"}),
        ("/api/v1/history/orders", {"account": "alice-paper"}),
        ("/api/v1/history/orders", {"user": "alice"}),
        ("/api/v1/pnl/bots", {"bot": "a-grid"}),
        ("/api/v1/pnl/accounts", {"account": "alice-2"}),
        ("/api/v1/pnl/bots/a-ladder/series", {}),
        ("/api/v1/history/fills", {"bot": "no-such-bot"}),
    ):
        answer = await bob.get(path, params=params)
        assert answer.status_code == 404, (path, params, answer.text)
        assert set(answer.json()) == {"error", "message", "field", "details"}
        assert answer.json()["error"] == "not_found"
    # Alice's cursor gives Bob only his own rows
    alice_cursor = (await alice.get("/api/v1/history/fills", params={"limit": 2})).json()
    mine = (
        await bob.get("/api/v1/history/fills", params={"cursor": alice_cursor["next_cursor"]})
    ).json()
    assert {f["user"] for f in mine["items"]} <= {"bob"}
    assert (await bob.get("/api/v1/history/fills", params={"user": "bob"})).status_code == 200

    # the admin: everyone's by default, one user's with user=
    everyone, _ = await walk(admin, "/api/v1/history/fills", limit=1000)
    assert {f["user"] for f in everyone} == {"alice", "bob"} and len(everyone) == 57
    only_bob, _ = await walk(admin, "/api/v1/history/orders", user="bob")
    assert len(only_bob) == 6 and {o["user"] for o in only_bob} == {"bob"}
    bob_bot = await admin.get("/api/v1/history/fills", params={"user": "bob", "bot": "b-ladder"})
    assert len(bob_bot.json()["items"]) == 6
    wrong = await admin.get("/api/v1/history/fills", params={"user": "bob", "bot": "a-ladder"})
    assert wrong.status_code == 404
    assert (await admin.get("/api/v1/pnl/bots", params={"user": "nobody"})).status_code == 404


# -------------------------------------------------------------------- CSV, P&L
async def test_csv_and_pnl_match_the_reports(world: World) -> None:
    alice = world.alice
    answer = await alice.get("/api/v1/history/fills", params={"format": "csv", "bot": "a-grid"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="fills.csv"'
    rows = list(csv.reader(io.StringIO(answer.text)))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["user", "trade_id", "intent_id", "bot"]
    assert "time" in header and header[header.index("ts_event") + 1] == "time"
    page = msgspec.json.decode(
        (await alice.get("/api/v1/history/fills", params={"bot": "a-grid", "limit": 1000})).content,
        type=FillsPage,
    )
    assert len(body) == len(page.items) == 20
    for line, fill in zip(body, page.items, strict=True):
        record = dict(zip(header, line, strict=True))
        assert record["trade_id"] == fill.trade_id and D(record["price"]) == fill.price
        assert int(record["ts_event"]) == fill.ts_event and record["time"] == iso(fill.ts_event)
    # more rows than one page of the reports (1000): the CSV streams them all
    async with world.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO orders (user_id, intent_id, account_id, source, symbol, side,"
            " order_type, price, qty, filled_qty, status, created_ns, updated_ns)"
            " SELECT 'bob', 'bulk' || g, 'bob-paper', 'b-bulk', 'BTCUSDT', 'buy', 'limit', 1,"
            " 1, 0, 'accepted', $1::bigint + g, $1::bigint + g FROM generate_series(1, 2100) g",
            T0 + 50 * SEC,
        )
    bulk = await world.bob.get("/api/v1/history/orders", params={"format": "csv", "bot": "b-bulk"})
    lines = bulk.text.splitlines()
    assert len(lines) == 2101 and len(set(lines)) == 2101

    # P&L per bot and per account: what the reports compute, marked at the last fill
    catalog = MarketCatalog.load(default_markets_path())
    markets = MarketResolver(catalog, data_venues={"alice-paper": "binance", "alice-2": "binance"})
    expected = await pnl_by_bot(world.pool, ALICE, markets=markets, marks={}, last_fill_marks=True)
    got = msgspec.json.decode((await alice.get("/api/v1/pnl/bots")).content, type=PnlReport)
    assert got.rows == expected
    assert {r.bot for r in got.rows} == {"a-ladder", "a-grid", "manual"}
    assert all(r.mark_source == "last_fill" and r.unrealized_pnl is not None for r in got.rows)
    assert any(r.realized_pnl != 0 for r in got.rows)
    ranged = await alice.get(
        "/api/v1/pnl/bots",
        params={"bot": "a-ladder", "since": T0 + 5 * SEC, "until": iso(T0 + 9 * SEC)},
    )
    expected = await pnl_by_bot(
        world.pool,
        ALICE,
        markets=markets,
        marks={},
        bot="a-ladder",
        since_ns=T0 + 5 * SEC,
        until_ns=T0 + 9 * SEC,
        last_fill_marks=True,
    )
    assert msgspec.json.decode(ranged.content, type=PnlReport).rows == expected
    accounts = msgspec.json.decode(
        (await alice.get("/api/v1/pnl/accounts", params={"account": "alice-2"})).content,
        type=PnlReport,
    )
    assert accounts.rows == await pnl_by_account(
        world.pool, ALICE, markets=markets, marks={}, account="alice-2", last_fill_marks=True
    )
    assert [r.account for r in accounts.rows] == ["alice-2"]
    pnl_csv = await alice.get("/api/v1/pnl/accounts", params={"format": "csv"})
    table = list(csv.DictReader(io.StringIO(pnl_csv.text)))
    assert [r["account"] for r in table] == ["alice-2", "alice-paper"]
    assert "pnl-accounts.csv" in pnl_csv.headers["content-disposition"]

    # the chart of one bot
    series = msgspec.json.decode(
        (await alice.get("/api/v1/pnl/bots/a-ladder/series", params={"max_points": 5})).content,
        type=PnlSeries,
    )
    assert series.bot == "a-ladder" and len(series.points) == 5
    assert series.points == await pnl_series(
        world.pool, ALICE, "a-ladder", markets=markets, max_points=5
    )
    chart = await alice.get("/api/v1/pnl/bots/a-ladder/series", params={"format": "csv"})
    assert chart.headers["content-disposition"] == 'attachment; filename="pnl-a-ladder.csv"'
    # 20 fills at 10 times: a point per time (the later fill of the two)
    assert len(chart.text.splitlines()) == 1 + 10
    # the admin charts Bob's bot
    bobs = await world.admin.get("/api/v1/pnl/bots/b-ladder/series", params={"user": "bob"})
    assert len(bobs.json()["points"]) == 6


# -------------------------------------------------------------------- bad input
async def test_bad_parameters_are_400_naming_them(world: World) -> None:
    alice = world.alice
    fills_cursor = encode_cursor("fills", True, (T0, 1))
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/api/v1/history/fills", {"cursor": "garbage!"}, "cursor"),
        ("/api/v1/history/fills", {"cursor": "W10"}, "cursor"),
        ("/api/v1/history/orders", {"cursor": fills_cursor}, "cursor"),
        ("/api/v1/history/orders", {"cursor": "x" * 5000}, "cursor"),
        ("/api/v1/history/fills", {"limit": 0}, "limit"),
        ("/api/v1/history/fills", {"limit": 1001}, "limit"),
        ("/api/v1/history/fills", {"limit": "ten"}, "limit"),
        ("/api/v1/history/fills", {"since": "yesterday"}, "since"),
        ("/api/v1/history/fills", {"until": "2024-13-01"}, "until"),
        ("/api/v1/history/fills", {"since": "99999999999999999999"}, "since"),
        ("/api/v1/history/fills", {"since": T0 + 1, "until": T0}, "since"),
        ("/api/v1/history/orders", {"status": "nonsense"}, "status"),
        ("/api/v1/history/orders", {"format": "xml"}, "format"),
        ("/api/v1/history/orders", {"symbol": "BTC\x00"}, "symbol"),
        ("/api/v1/history/orders", {"bot": "a\x00"}, "bot"),
        ("/api/v1/history/fills", {"account": "a\x00"}, "account"),
        ("/api/v1/pnl/accounts", {"user": "alice\x00"}, "user"),
        ("/api/v1/pnl/bots/a%00b/series", {}, "bot_id"),
        ("/api/v1/pnl/bots", {"until": "noon"}, "until"),
        ("/api/v1/pnl/bots/a-ladder/series", {"max_points": 0}, "max_points"),
        ("/api/v1/pnl/bots/a-ladder/series", {"max_points": 10_001}, "max_points"),
        ("/api/v1/pnl/bots/a-ladder/series", {"format": "csv", "since": "x"}, "since"),
    ]
    for path, params, field in cases:
        assert_error(await alice.get(path, params=params), 400, field)
    # the admin charting 'manual' of everyone: manual orders are per user
    assert_error(await world.admin.get("/api/v1/pnl/bots/manual/series"), 400, "user")
    # no token, a bad token: 401
    anonymous = world.gateway.client()
    for path in ("/api/v1/history/orders", "/api/v1/history/fills", "/api/v1/pnl/bots"):
        assert (await anonymous.get(path)).status_code == 401
        forged = await anonymous.get(path, headers={"Authorization": "Bearer x.y.z"})
        assert forged.status_code == 401
