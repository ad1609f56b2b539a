"""``tradebus history orders|fills|pnl`` on a real PostgreSQL ledger.

The ledger is written the way execution writes it
(:class:`tests.support.ledger_books.Books`): Alice's volume bot runs
overlapping loops over three days (one loop ends the day after it began),
Bob's bot trades beside it, Alice sends a manual order. The command is then
run as an operator would: pages newest first with the option that shows the
next, filters, times in the local zone (``TZ``) or UTC, CSV files, JSON, and
P&L per bot and day checked against the loops' cash flows, which the test
adds up itself from the trades it booked.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support.cli import tradebus
from tests.support.ledger_books import Books
from tradebus.common.ids import UserId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.pool import create_pool
from tradebus.ledger.reports.pnl import MarketResolver, day_starts, pnl_by_bot, pnl_by_bot_per_day
from tradebus.ledger.reports.scope import ALL_USERS
from tradebus.ledger.store import Ledger

ALICE, BOB = UserId("alice"), UserId("bob")
SEC = 1_000_000_000
HOUR = 3600 * SEC
DAY0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp()) * SEC
"""Midnight UTC of the first day of trading."""
QTY = "0.01"
FEE = D("0.06")  # per fill, in USDT


@dataclass(frozen=True)
class Trade:
    """One fill the test booked (one order filled at once)."""

    user: str
    bot: str
    account: str
    cycle: int
    side: str
    price: D
    ts: int

    @property
    def notional(self) -> D:
        return self.price * D(QTY)


def loops() -> list[Trade]:
    """Alice's volume loops: (cycle, buy price, buy time, sell price, sell time).

    Loops 5 and 6 overlap (6 is bought above 5 and sold after it), and loop 6
    and 7 end the day after they began: a day realizes the loops that end in
    it, each against its own buy (per cycle, not the average of open loops).
    """
    plan = [
        (1, "60000", DAY0 + 1 * HOUR, "60025", DAY0 + 2 * HOUR),
        (2, "60100", DAY0 + 3 * HOUR, "60110.5", DAY0 + 4 * HOUR),
        (3, "59900", DAY0 + 5 * HOUR, "59890", DAY0 + 6 * HOUR),  # a losing loop
        (5, "61000", DAY0 + 34 * HOUR, "61050", DAY0 + 36 * HOUR),
        (6, "61500", DAY0 + 35 * HOUR, "61550", DAY0 + 49 * HOUR),
        (7, "61200", DAY0 + 47 * HOUR + 1800 * SEC, "61230", DAY0 + 48 * HOUR + 1800 * SEC),
        (8, "62000", DAY0 + 60 * HOUR, "62040", DAY0 + 61 * HOUR),
    ]
    trades = []
    for cycle, buy, buy_ts, sell, sell_ts in plan:
        trades.append(Trade(ALICE, "a-vol", "alice-paper", cycle, "buy", D(buy), buy_ts))
        trades.append(Trade(ALICE, "a-vol", "alice-paper", cycle, "sell", D(sell), sell_ts))
    return trades


@dataclass
class World:
    url: str
    trades: list[Trade]
    """Every fill booked, in booking order."""


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    books = Books(Ledger(pool))
    for account, user in (("alice-paper", ALICE), ("bob-paper", BOB)):
        await books.account(account, user)
    trades = loops()
    for n in range(4):  # Bob's grid beside Alice's loops, on the second day
        side = "buy" if n % 2 == 0 else "sell"
        price = D(61000 + n)
        trades.append(Trade(BOB, "b-grid", "bob-paper", 1 + n // 2, side, price, DAY0 + 30 * HOUR))
    for t in sorted(trades, key=lambda t: t.ts):
        intent = f"{t.bot}:1.{t.cycle}:{t.side[0]}"
        order = await books.order(
            UserId(t.user), t.account, t.bot, t.side, QTY, str(t.price), t.ts, intent=intent
        )
        await books.fill(order, QTY, str(t.price), str(FEE), t.ts)
    # a manual order that is still open: an order without a fill
    await books.order(ALICE, "alice-paper", "manual", "buy", "0.002", "50000", DAY0 + 70 * HOUR)
    await pool.close()
    yield World(database_url, sorted(trades, key=lambda t: t.ts))


def lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def rows_with(text: str, needle: str) -> list[str]:
    """The table rows (they start with a time or a day) that hold ``needle``."""
    return [line for line in lines_with(text, needle) if line.strip()[:2] == "20"]


async def test_fills_newest_first_a_page_at_a_time(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", world.url)
    code, out, err = await tradebus(
        capsys, "history", "fills", "--user", "alice", "--utc", "--limit", "5", *db
    )
    assert code == 0, err
    alice = [t for t in world.trades if t.user == ALICE]
    newest = sorted(alice, key=lambda t: t.ts, reverse=True)
    rows = rows_with(out, "a-vol")
    assert len(rows) == 5
    for row, trade in zip(rows, newest, strict=False):
        when = datetime.fromtimestamp(trade.ts // SEC, UTC)
        assert row.split()[:2] == [f"{when:%Y-%m-%d}", f"{when:%H:%M:%S}.000"]
        # the market's precision: price in 0.01 (tick), qty in 0.00001 (step), fee 4 places
        assert f"{trade.price:.2f}" in row and " 0.01000 " in row and " 0.0600 " in row
    assert "time (UTC)" in out and "times in UTC" in out
    assert "E-" not in out and "0E" not in out
    hint = lines_with(out, "--cursor")
    assert len(hint) == 1
    cursor = hint[0].split("--cursor ")[1].split()[0]

    code, out, _ = await tradebus(
        capsys, "history", "fills", "--user", "alice", "--utc", "--limit", "100",
        "--cursor", cursor, *db,
    )  # fmt: skip
    assert code == 0
    rest = rows_with(out, "a-vol")
    assert len(rest) == len(alice) - 5 and "--cursor" not in out
    oldest = datetime.fromtimestamp(newest[-1].ts // SEC, UTC)
    assert rest[-1].strip().startswith(f"{oldest:%Y-%m-%d %H:%M:%S}")

    # filters: Bob's bot only; an account; a time range (ISO, UTC as it says)
    code, out, _ = await tradebus(capsys, "history", "fills", "--bot", "b-grid", *db)
    assert len(rows_with(out, "b-grid")) == 4 and "a-vol" not in out
    code, out, _ = await tradebus(capsys, "history", "fills", "--account", "bob-paper", *db)
    assert len(rows_with(out, "bob-paper")) == 4 and "alice" not in out
    code, out, _ = await tradebus(
        capsys, "history", "fills", "--user", "alice", "--utc",
        "--since", "2024-03-02", "--until", "2024-03-03T00:00:00Z", *db,
    )  # fmt: skip
    day2 = [t for t in alice if DAY0 + 24 * HOUR <= t.ts < DAY0 + 48 * HOUR]
    assert len(rows_with(out, "a-vol")) == len(day2) == 4


async def test_orders_with_status_and_json(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", world.url)
    code, out, _ = await tradebus(
        capsys, "history", "orders", "--user", "alice", "--status", "accepted", "--utc", *db
    )
    assert code == 0
    rows = rows_with(out, "manual")
    assert len(rows) == 1 and "50000.00" in rows[0] and "0.00200" in rows[0]
    assert "2024-03-03 22:00:00.000" in rows[0]
    assert "a-vol" not in out  # filled, not accepted

    code, out, _ = await tradebus(
        capsys, "history", "orders", "--bot", "a-vol", "--limit", "3", "--json", *db
    )
    page = json.loads(out)
    alice_loops = sorted((t for t in world.trades if t.bot == "a-vol"), key=lambda t: -t.ts)
    assert [o["created_ns"] for o in page["items"]] == [t.ts for t in alice_loops[:3]]
    assert [o["status"] for o in page["items"]] == ["filled"] * 3
    assert D(page["items"][0]["avg_fill_price"]) == D("62040")
    assert page["next_cursor"]


async def test_times_in_the_local_zone(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TZ decides the zone of the times shown and of pnl's days (Tokyo is UTC+9)."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    db = ("--database-url", world.url)
    code, out, _ = await tradebus(capsys, "history", "fills", "--bot", "a-vol", "--limit", "1", *db)
    assert code == 0
    last = max(t.ts for t in world.trades if t.bot == "a-vol")  # 2024-03-03T13:00Z
    assert rows_with(out, "a-vol")[0].strip().startswith("2024-03-03 22:00:00.000")
    assert "time (Asia/Tokyo)" in out and "times in Asia/Tokyo" in out
    assert last == DAY0 + 61 * HOUR

    # a day in Tokyo is 15:00Z to 15:00Z: loop 7 (bought 23:30Z March 2nd, sold 00:30Z)
    # is one Tokyo day's (March 3rd), but two UTC days'
    code, out, _ = await tradebus(capsys, "history", "pnl", "--bot", "a-vol", "--json", *db)
    tokyo = {r["day"]: r["fills"] for r in json.loads(out)["rows"]}
    assert tokyo == {"2024-03-01": 6, "2024-03-02": 3, "2024-03-03": 5}
    code, out, _ = await tradebus(
        capsys, "history", "pnl", "--bot", "a-vol", "--json", "--utc", *db
    )
    utc = {r["day"]: r["fills"] for r in json.loads(out)["rows"]}
    assert utc == {"2024-03-01": 6, "2024-03-02": 4, "2024-03-03": 4}


def cash_flows_per_day(trades: list[Trade]) -> dict[str, dict[str, D]]:
    """Per UTC day: realized P&L of the loops that end that day (the loop's sell proceeds
    - its buy cost - both fees), the day's fees and volume: computed from the trades."""
    out: dict[str, dict[str, D]] = {}
    buys = {(t.bot, t.cycle): t for t in trades if t.side == "buy"}
    for t in trades:
        day = f"{datetime.fromtimestamp(t.ts // SEC, UTC):%Y-%m-%d}"
        d = out.setdefault(day, {"realized": D(0), "fees": D(0), "volume": D(0)})
        d["fees"] += FEE
        d["volume"] += t.notional
        if t.side == "sell":
            d["realized"] += t.notional - buys[(t.bot, t.cycle)].notional - 2 * FEE
    return out


async def test_pnl_per_bot_per_day_is_the_loops_cash_flows(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", world.url)
    code, out, err = await tradebus(
        capsys, "history", "pnl", "--bot", "a-vol", "--utc", "--json", *db
    )
    assert code == 0, err
    report = json.loads(out)
    rows = report["rows"]
    expected = cash_flows_per_day([t for t in world.trades if t.bot == "a-vol"])
    assert [r["day"] for r in rows] == sorted(expected, reverse=True)  # newest first
    for r in rows:
        want = expected[r["day"]]
        assert (D(r["realized_pnl"]), D(r["fees"]), D(r["volume"])) == (
            want["realized"],
            want["fees"],
            want["volume"],
        ), r["day"]
    # day 2 (March 2nd): loop 5 closed (0.01 * 50 - 0.12), loops 6 and 7 still open
    assert D(rows[1]["realized_pnl"]) == D("0.38") and D(rows[1]["position"]) == D("0.02")
    total = report["totals"]
    assert len(total) == 1 and total[0]["quote"] == "USDT"
    assert D(total[0]["realized_pnl"]) == sum(e["realized"] for e in expected.values())

    # the table: a line per day, the totals, amounts in the quote's precision
    code, out, _ = await tradebus(capsys, "history", "pnl", "--utc", *db)
    assert code == 0
    assert [line.split()[0] for line in rows_with(out, "a-vol")] == [
        "2024-03-03", "2024-03-02", "2024-03-01"
    ]  # fmt: skip
    assert len(rows_with(out, "b-grid")) == 1
    march_2 = rows_with(out, "a-vol")[1]
    assert " 0.3800 " in march_2 and " 2447.5000 " in march_2  # realized, volume
    everyone = sum(e["realized"] for e in cash_flows_per_day(world.trades).values())
    assert any(f" {everyone:.4f}" in line for line in lines_with(out, "USDT"))
    assert "realized P&L" in out and "in UTC" in out

    # a range from March 2nd 12:00Z (written with an offset): loop 5, bought before it,
    # realizes in it when sold (at 12:00Z); loop 7 is bought; loops 6 and 7 end on the 3rd
    code, out, _ = await tradebus(
        capsys, "history", "pnl", "--bot", "a-vol", "--utc", "--json",
        "--since", "2024-03-02T14:00:00+02:00", *db,
    )  # fmt: skip
    rows = json.loads(out)["rows"]
    assert [r["day"] for r in rows] == ["2024-03-03", "2024-03-02"]
    assert D(rows[1]["realized_pnl"]) == D("0.38") and rows[1]["fills"] == 2
    assert D(rows[0]["realized_pnl"]) == expected["2024-03-03"]["realized"]


async def test_csv_files_hold_every_row(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = ("--database-url", world.url)
    target = tmp_path / "fills.csv"
    code, out, _ = await tradebus(
        capsys, "history", "fills", "--limit", "2", "--csv", str(target), *db
    )
    assert code == 0 and f"{len(world.trades)} fills written to {target}" in out
    with target.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(world.trades)  # every row, not a page
    newest = max(world.trades, key=lambda t: t.ts)
    assert rows[0]["ts_event"] == str(newest.ts)
    assert rows[0]["time"] == "2024-03-03T13:00:00.000000000Z"
    assert (rows[0]["price"], rows[0]["qty"], rows[0]["fee"]) == ("62040", "0.01", "0.06")
    assert {r["user"] for r in rows} == {"alice", "bob"}

    target = tmp_path / "pnl.csv"
    code, out, _ = await tradebus(
        capsys, "history", "pnl", "--user", "alice", "--utc", "--csv", str(target), *db
    )
    assert code == 0
    with target.open(newline="") as f:
        pnl = list(csv.DictReader(f))
    expected = cash_flows_per_day([t for t in world.trades if t.bot == "a-vol"])
    assert {r["day"]: D(r["realized_pnl"]) for r in pnl} == {
        day: e["realized"] for day, e in expected.items()
    }


async def test_relative_times_empty_answers_and_bad_input(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ("--database-url", world.url)
    pool = await create_pool(world.url)
    try:
        books = Books(Ledger(pool), first=1000)
        recent = time.time_ns() - 2 * 3600 * SEC
        order = await books.order(ALICE, "alice-paper", "manual", "buy", "0.001", "70000", recent)
        await books.fill(order, "0.001", "70000", "0.07", recent)
    finally:
        await pool.close()
    code, out, _ = await tradebus(capsys, "history", "fills", "--since", "24h", *db)
    assert code == 0 and len(rows_with(out, "manual")) == 1 and "a-vol" not in out
    code, out, _ = await tradebus(capsys, "history", "fills", "--until", "1d", "--json", *db)
    assert len(json.loads(out)["items"]) == len(world.trades)

    # nothing matches: said, exit 0
    for verb in ("orders", "fills", "pnl"):
        code, out, err = await tradebus(capsys, "history", verb, "--user", "nobody", *db)
        assert code == 0 and out.startswith("no ") and "user nobody" in out, (verb, out, err)

    # a bad time names the option and the value; exit 2, no traceback
    code, out, err = await tradebus(capsys, "history", "pnl", "--since", "last tuesday", *db)
    assert code == 2 and "--since: 'last tuesday' is not a time" in err and not out
    code, _, err = await tradebus(
        capsys, "history", "fills", "--since", "2024-03-02", "--until", "2024-03-01", *db
    )
    assert code == 2 and "--since" in err and "Traceback" not in err
    code, _, err = await tradebus(capsys, "history", "fills", "--cursor", "garbage", *db)
    assert code == 2 and "--cursor" in err
    code, _, err = await tradebus(capsys, "history", "orders", "--limit", "0", *db)
    assert code == 2 and "--limit" in err


async def test_days_add_up_to_the_range_report(world: World) -> None:
    """The day rows of a range sum to :func:`pnl_by_bot`'s row for it (one implementation
    of the booking), in any zone; a day boundary only splits the counts."""
    pool = await create_pool(world.url)
    try:
        markets = MarketResolver(
            MarketCatalog.load(default_markets_path()),
            data_venues={"alice-paper": "binance", "bob-paper": "binance"},
        )
        # loop 5 is open when the range starts (bought at 34h, sold at 36h); Bob traded
        # before it only
        since, until = DAY0 + 34 * HOUR + 1800 * SEC, DAY0 + 60 * HOUR + 1
        whole = {
            (r.bot, r.account, r.symbol): r
            for r in await pnl_by_bot(
                pool, ALL_USERS, markets=markets, marks={}, since_ns=since, until_ns=until
            )
        }
        for zone in (UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kathmandu")):
            days = await pnl_by_bot_per_day(
                pool, ALL_USERS, markets=markets, zone=zone, since_ns=since, until_ns=until
            )
            assert len({d.day for d in days}) >= 2
            for key, row in whole.items():
                mine = [d for d in days if (d.bot, d.account, d.symbol) == key]
                if not mine:
                    assert row.fills == 0 and key[0] == "b-grid"
                    continue
                assert sum(d.fills for d in mine) == row.fills
                assert sum(d.realized_pnl for d in mine) == row.realized_pnl
                assert sum(d.fees for d in mine) == row.fees
                assert sum(d.volume for d in mine) == row.bought_notional + row.sold_notional
                assert mine[-1].position == row.position
                for d in mine:  # each day row starts at that day's midnight there (or since)
                    start = datetime.fromtimestamp(d.day_start_ns // SEC, zone)
                    assert f"{start:%Y-%m-%d}" == d.day
                    assert d.day_start_ns == since or f"{start:%H:%M}" == "00:00"
    finally:
        await pool.close()


def test_day_starts_follow_the_zone_s_clock_changes() -> None:
    """Berlin's day of the change to summer time (2024-03-31) has 23 hours."""
    berlin = ZoneInfo("Europe/Berlin")
    since = int(datetime(2024, 3, 30, 12, tzinfo=UTC).timestamp()) * SEC
    last = int(datetime(2024, 4, 1, 12, tzinfo=UTC).timestamp()) * SEC
    starts = day_starts(berlin, since, last)
    assert [datetime.fromtimestamp(s // SEC, UTC).isoformat() for s in starts] == [
        "2024-03-30T12:00:00+00:00",
        "2024-03-30T23:00:00+00:00",  # midnight CET
        "2024-03-31T22:00:00+00:00",  # midnight CEST
    ]
