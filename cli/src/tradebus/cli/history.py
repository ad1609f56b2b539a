"""``tradebus history orders|fills|pnl``: the ledger's orders, fills and P&L per bot and day.

The operator's view of what was traded, without SQL (``/trades`` and
``/profit`` of a trading chat bot): it reads the ledger's Postgres directly
(``--database-url``, else ``DATABASE_URL`` or ``TRADEBUS_DATABASE_URL``),
every user's rows unless ``--user`` names one, and never writes.

* ``orders``: orders, newest (creation time) first;
* ``fills``: fills, newest (the venue's trade time) first, with their fees;
* ``pnl``: per bot, market and calendar day: fills, bought / sold volume,
  fees and realized P&L in the market's quote asset, and the position after
  the day, with totals per quote asset.

The rows come from the ledger's reports (:mod:`tradebus.ledger.reports`:
:func:`~tradebus.ledger.reports.history.orders_page`,
:func:`~tradebus.ledger.reports.history.fills_page`,
:func:`~tradebus.ledger.reports.pnl.pnl_by_bot_per_day`), the same code as
the gateway's history API; P&L is booked per cycle as there.

Times are shown in the local time zone (``TZ`` if set, else the system's;
``--utc`` for UTC), which the table's caption names, and days of ``pnl``
are calendar days there. ``--since`` / ``--until`` take an ISO date
(``2024-03-01``: its midnight), an ISO time (``2024-03-01T12:00``, in the
local zone unless it has an offset such as ``Z`` or ``+02:00``) or an age
(``30m``, ``24h``, ``7d``, ``2w``: that long before now). Numbers are shown
in the market's precision (prices in its tick, quantities in its step,
quote amounts with two more places than the tick: :func:`tradebus.common.money.format_amount`).

Output: a table (rich) of at most ``--limit`` rows (default 50), newest
first, with the option that shows the next ones; ``--json`` instead prints
the same rows as JSON (amounts as strings); ``--csv FILE`` writes every
matching row to FILE (:mod:`tradebus.ledger.reports.export`'s CSV: the ns
times and ISO-8601 UTC beside them). Exit status: 0 (also when nothing
matches: it says so), 2 for a bad argument (the message names it) or a
ledger that cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import msgspec
from rich import box
from rich.console import Console
from rich.table import Table

from tradebus.cli.connection import DatabaseUnreachable, connect_database
from tradebus.common.config import ConfigError, redact_url
from tradebus.common.ids import UserId
from tradebus.common.markets import Market, MarketCatalog, default_markets_path
from tradebus.common.money import ZERO, format_amount, places_of
from tradebus.common.order_status import OrderStatus
from tradebus.ledger.reports.export import CsvFormat
from tradebus.ledger.reports.history import FillRecord, OrderRecord, fills_page, orders_page
from tradebus.ledger.reports.pnl import (
    DayPnl,
    MarketResolver,
    account_data_venues,
    pnl_by_bot_per_day,
)
from tradebus.ledger.reports.scope import (
    ALL_USERS,
    MAX_LIMIT,
    LedgerReader,
    Page,
    ReportArgumentError,
    UserScope,
)

DEFAULT_DATABASE_URL = "postgresql://tradebus@127.0.0.1:5432/tradebus"
DEFAULT_LIMIT = 50
_UNBOUNDED = 10_000
"""Columns to measure a table's natural width in (:func:`_print`)."""

_NS = 1_000_000_000
_AGE = re.compile(r"(\d+)\s*([smhdw])")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_ARG_NAMES = {"since_ns": "--since", "until_ns": "--until", "cursor": "--cursor"}


_EXAMPLES = """examples:
  tradebus history fills --user alice --since 24h      alice's trades of the last day
  tradebus history pnl --bot alice-ladder --since 7d   /profit: per day, with totals
  tradebus history orders --status rejected --limit 20
  tradebus history fills --since 2024-03-01 --until 2024-04-01 --csv march.csv
"""


class HistoryError(Exception):
    """A refusal of ``tradebus history`` for people; exit status 2."""


# ---------------------------------------------------------------- arguments
def add_parser(sub: Any) -> None:
    """The ``history`` subcommand and its verbs (module docstring)."""
    p = sub.add_parser(
        "history",
        help="orders, fills and P&L per bot and day from the ledger (no SQL)",
        description="The ledger's orders, fills, and P&L per bot, market and day, read from"
        " its Postgres (--database-url, $DATABASE_URL or $TRADEBUS_DATABASE_URL); everyone's"
        " rows unless --user names one. Times in the local zone ($TZ; --utc for UTC).",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    orders = verbs.add_parser("orders", help="orders, newest first")
    fills = verbs.add_parser("fills", help="fills with their fees, newest first")
    pnl = verbs.add_parser(
        "pnl", help="per bot, market and day: fills, volume, fees, realized P&L; totals"
    )
    for cmd in (orders, fills, pnl):
        cmd.add_argument("--user", help="only this user's rows (default: everyone's)")
        cmd.add_argument("--bot", help="only this bot's rows (`manual`: orders people sent)")
        cmd.add_argument("--account", help="only this account's rows")
        cmd.add_argument("--symbol", help="only this market (the venue's id: BTCUSDT)")
        cmd.add_argument(
            "--since",
            help="from this time on: an ISO date or time (2024-03-01, 2024-03-01T12:00,"
            " ...Z or +02:00; local time without an offset) or an age (30m, 24h, 7d, 2w)",
        )
        cmd.add_argument("--until", help="before this time (as --since)")
        cmd.add_argument(
            "--limit",
            type=int,
            default=DEFAULT_LIMIT,
            help=f"rows shown, newest first (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})",
        )
        cmd.add_argument(
            "--csv", type=Path, metavar="FILE", help="write every matching row to FILE as CSV"
        )
        cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
        cmd.add_argument("--utc", action="store_true", help="show times (and days) in UTC")
        cmd.add_argument(
            "--database-url",
            default=os.environ.get("DATABASE_URL")
            or os.environ.get("TRADEBUS_DATABASE_URL")
            or DEFAULT_DATABASE_URL,
            help="the ledger's Postgres (default: $DATABASE_URL, $TRADEBUS_DATABASE_URL"
            " or the local one)",
        )
        cmd.add_argument(
            "--markets", type=Path, help="markets YAML for precisions (default: the shipped one)"
        )
    for cmd in (orders, fills):
        cmd.add_argument(
            "--cursor", help="continue after the rows shown (the value the table ends with)"
        )
    orders.add_argument(
        "--status", choices=[s.value for s in OrderStatus], help="only orders in this status"
    )


def display_zone(utc: bool) -> tuple[tzinfo, str]:
    """The zone times are shown in and its name: UTC with ``utc``; else ``TZ`` (an IANA
    name such as ``Europe/Berlin``; a leading ``:`` is allowed) if set and known, else the
    system's zone (``/etc/localtime``), else the process's current UTC offset."""
    if utc:
        return UTC, "UTC"
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            pass  # a POSIX rule such as EST5EDT: what the C library makes of it
    else:
        try:
            with open("/etc/localtime", "rb") as f:
                zone = ZoneInfo.from_file(f)
            return zone, _zone_label(zone)
        except (OSError, ValueError):
            pass
    time.tzset()
    offset = datetime.now().astimezone().tzinfo or UTC
    return offset, _zone_label(offset)


def _zone_label(zone: tzinfo) -> str:
    now = datetime.now(zone)
    return now.tzname() or now.strftime("UTC%z")


def parse_when(option: str, text: str | None, zone: tzinfo, now_ns: int) -> int | None:
    """A ``--since`` / ``--until`` value as int ns since the epoch (None if absent).

    ``text`` is an age (``30m``, ``24h``, ``7d``, ``2w``: that long before
    ``now_ns``), an ISO date (midnight in ``zone``) or an ISO date and time (in
    ``zone`` unless it carries an offset; :meth:`datetime.fromisoformat`).

    Raises
    ------
    HistoryError
        Naming ``option`` and the value, if it is none of those.
    """
    if text is None:
        return None
    value = text.strip()
    age = _AGE.fullmatch(value.lower())
    if age:
        return now_ns - int(age.group(1)) * _AGE_UNITS[age.group(2)] * _NS
    try:
        when = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise HistoryError(
            f"{option}: {text!r} is not a time: give an ISO date or time (2024-03-01,"
            " 2024-03-01T12:00, 2024-03-01T12:00Z) or an age (30m, 24h, 7d, 2w)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _NS + delta.microseconds * 1000


# ------------------------------------------------------------------ numbers
@dataclass(frozen=True)
class Precision:
    """How one market's numbers are shown: places of prices, quantities, quote amounts
    (None: the value's own digits, for a market the markets file does not know)."""

    price: int | None = None
    qty: int | None = None
    money: int | None = None
    base: str | None = None
    quote: str | None = None

    @classmethod
    def of(cls, market: Market | None) -> Precision:
        """Prices in the market's tick, quantities in its step, quote amounts with two
        places more than the tick."""
        if market is None:
            return cls()
        tick = places_of(market.tick_size)
        return cls(tick, places_of(market.step_size), tick + 2, market.base, market.quote)

    def fee(self, amount: Decimal, asset: str) -> str:
        """A fee in ``asset``: in quote places, base places, or its own digits."""
        places = self.money if asset == self.quote else self.qty if asset == self.base else None
        return num(amount, places)


def num(value: Decimal | None, places: int | None) -> str:
    """``value`` for a table cell (``-`` for None)."""
    return "-" if value is None else format_amount(value, places)


# ------------------------------------------------------------------ running
@dataclass(frozen=True)
class Query:
    """The parsed arguments every verb shares."""

    user: UserScope
    bot: str | None
    account: str | None
    symbol: str | None
    since_ns: int | None
    until_ns: int | None
    zone: tzinfo
    zone_name: str


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run ``tradebus history <verb>``; the exit status (module docstring)."""
    out = out or sys.stdout
    try:
        zone, zone_name = display_zone(args.utc)
        now_ns = time.time_ns()
        query = Query(
            user=ALL_USERS if args.user is None else UserId(args.user),
            bot=args.bot,
            account=args.account,
            symbol=args.symbol,
            since_ns=parse_when("--since", args.since, zone, now_ns),
            until_ns=parse_when("--until", args.until, zone, now_ns),
            zone=zone,
            zone_name=zone_name,
        )
        if not 1 <= args.limit <= MAX_LIMIT:
            raise HistoryError(f"--limit: expected 1 to {MAX_LIMIT}, got {args.limit}")
        try:
            catalog = MarketCatalog.load(args.markets or default_markets_path())
        except ConfigError as exc:
            raise HistoryError(f"--markets: {exc}") from None
        asyncio.run(_run(args, query, catalog, out))
    except HistoryError as exc:
        print(f"tradebus history {args.verb}: {exc}", file=sys.stderr)
        return 2
    return 0


async def _run(args: argparse.Namespace, query: Query, catalog: MarketCatalog, out: TextIO) -> None:
    try:
        pool = await connect_database(args.database_url, "the ledger")
    except DatabaseUnreachable as exc:
        raise HistoryError(str(exc)) from None
    try:
        user = None if query.user is ALL_USERS else query.user
        markets = MarketResolver(catalog, data_venues=await account_data_venues(pool, user))
        if args.verb == "pnl":
            await _pnl(pool, args, query, markets, out)
        else:
            await _records(pool, args, query, markets, out)
    except ReportArgumentError as exc:
        option = _ARG_NAMES.get(exc.field, f"--{exc.field}")
        raise HistoryError(f"{option}: {str(exc).partition(': ')[2] or exc}") from None
    except asyncpg.UndefinedTableError:
        raise HistoryError(
            f"the ledger {redact_url(args.database_url)} has no tables yet (no service has"
            " written to it)"
        ) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise HistoryError(f"reading the ledger {redact_url(args.database_url)}: {exc}") from None
    finally:
        await pool.close()


def _filters(args: argparse.Namespace, query: Query) -> str:
    """The filters asked, in words (for the caption and the 'nothing matches' line)."""
    parts = [
        f"{name} {value}"
        for name, value in (
            ("user", args.user),
            ("bot", args.bot),
            ("account", args.account),
            ("symbol", args.symbol),
            ("status", getattr(args, "status", None)),
        )
        if value is not None
    ]
    if query.since_ns is not None:
        parts.append(f"since {_time(query.since_ns, query.zone)}")
    if query.until_ns is not None:
        parts.append(f"until {_time(query.until_ns, query.zone)}")
    return ", ".join(parts) or "everyone's"


def _time(ts_ns: int, zone: tzinfo) -> str:
    """``ts_ns`` in ``zone`` to the millisecond: ``2024-03-01 13:00:00.250``."""
    seconds, nanos = divmod(ts_ns, _NS)
    when = datetime.fromtimestamp(seconds, zone)
    return f"{when:%Y-%m-%d %H:%M:%S}.{nanos // 1_000_000:03d}"


async def _records(
    pool: LedgerReader,
    args: argparse.Namespace,
    query: Query,
    markets: MarketResolver,
    out: TextIO,
) -> None:
    """``orders`` or ``fills``: a page as a table or JSON, or every row to ``--csv``."""
    report: Callable[..., Any]
    record_type: type[OrderRecord] | type[FillRecord]
    if args.verb == "orders":
        report, record_type = orders_page, OrderRecord
        extra = {"status": args.status}
    else:
        report, record_type = fills_page, FillRecord
        extra = {}

    async def page(cursor: str | None, limit: int) -> Page[Any]:
        page: Page[Any] = await report(
            pool,
            query.user,
            bot=query.bot,
            account=query.account,
            symbol=query.symbol,
            since_ns=query.since_ns,
            until_ns=query.until_ns,
            cursor=cursor,
            limit=limit,
            **extra,
        )
        return page

    if args.csv is not None:
        count = 0
        with _csv_file(args.csv) as f:
            fmt = CsvFormat(record_type)
            f.write(fmt.header_line())
            cursor = args.cursor
            while True:
                chunk = await page(cursor, MAX_LIMIT)
                for line in fmt.lines(chunk.items):
                    f.write(line)
                count += len(chunk.items)
                if chunk.next_cursor is None:
                    break
                cursor = chunk.next_cursor
        print(f"{count} {args.verb} written to {args.csv}", file=out)
        return
    shown = await page(args.cursor, args.limit)
    if args.json:
        out.write(msgspec.json.encode(shown).decode() + "\n")
        return
    if not shown.items:
        print(f"no {args.verb} match ({_filters(args, query)})", file=out)
        return
    if args.verb == "orders":
        table = _orders_table(shown.items, markets, query)
    else:
        table = _fills_table(shown.items, markets, query)
    table.caption = (
        f"{args.verb}: {len(shown.items)} shown, newest first ({_filters(args, query)});"
        f" times in {query.zone_name}"
    )
    _print(table, out)
    if shown.next_cursor is not None:
        print(
            f"more {args.verb}: add --cursor {shown.next_cursor} (or raise --limit;"
            " --csv FILE writes every row)",
            file=out,
        )


def _table(zone_name: str, columns: Sequence[str], right_from: int) -> Table:
    table = Table(box=box.SIMPLE_HEAD, highlight=False, caption_justify="left")
    for i, name in enumerate(columns):
        header = f"{name} ({zone_name})" if name == "time" else name
        table.add_column(header, justify="right" if i >= right_from else "left", no_wrap=True)
    return table


def _orders_table(items: list[OrderRecord], markets: MarketResolver, query: Query) -> Table:
    columns = ("time", "user", "bot", "account", "symbol", "side", "type", "status")
    table = _table(query.zone_name, (*columns, "price", "qty", "filled", "avg fill"), len(columns))
    for o in items:
        p = Precision.of(markets.market(o.account, o.venue, o.symbol))
        table.add_row(
            _time(o.created_ns, query.zone),
            o.user,
            o.bot,
            o.account,
            o.symbol,
            o.side,
            o.type,
            o.status.value + (f" ({o.reason})" if o.reason else ""),
            num(o.price, p.price),
            num(o.qty, p.qty),
            num(o.filled_qty, p.qty),
            num(o.avg_fill_price, p.price),
        )
    return table


def _fills_table(items: list[FillRecord], markets: MarketResolver, query: Query) -> Table:
    columns = ("time", "user", "bot", "account", "symbol", "side", "liquidity")
    table = _table(
        query.zone_name, (*columns, "price", "qty", "notional", "fee", "fee asset"), len(columns)
    )
    for f in items:
        p = Precision.of(markets.market(f.account, f.venue, f.symbol))
        table.add_row(
            _time(f.ts_event, query.zone),
            f.user,
            f.bot,
            f.account,
            f.symbol,
            f.side,
            f.liquidity,
            num(f.price, p.price),
            num(f.qty, p.qty),
            num(f.notional, p.money),
            p.fee(f.fee, f.fee_asset),
            f.fee_asset,
        )
    return table


class PnlTotal(msgspec.Struct, frozen=True, kw_only=True):
    """The sums of the ``pnl`` rows of one quote asset (amounts in it)."""

    quote: str
    fills: int
    volume: Decimal
    fees: Decimal
    realized_pnl: Decimal


async def _pnl(
    pool: LedgerReader,
    args: argparse.Namespace,
    query: Query,
    markets: MarketResolver,
    out: TextIO,
) -> None:
    """``pnl``: the day rows, newest day first, and totals per quote asset."""
    rows = await pnl_by_bot_per_day(
        pool,
        query.user,
        markets=markets,
        zone=query.zone,
        bot=query.bot,
        account=query.account,
        symbol=query.symbol,
        since_ns=query.since_ns,
        until_ns=query.until_ns,
    )
    if args.csv is not None:
        with _csv_file(args.csv) as f:
            fmt = CsvFormat(DayPnl)
            f.write(fmt.header_line())
            for line in fmt.lines(rows):
                f.write(line)
        print(f"{len(rows)} pnl rows (bot, market, day) written to {args.csv}", file=out)
        return
    totals = pnl_totals(rows)
    newest = sorted(rows, key=lambda r: r.day_start_ns, reverse=True)
    shown = newest[: args.limit]
    if args.json:
        body = {"rows": shown, "total_rows": len(rows), "totals": totals}
        out.write(msgspec.json.encode(body).decode() + "\n")
        return
    if not rows:
        print(f"no fills match, so no P&L ({_filters(args, query)})", file=out)
        return
    columns = ("day", "user", "bot", "account", "symbol", "quote")
    table = _table(
        query.zone_name,
        (*columns, "fills", "bought", "sold", "volume", "fees", "realized P&L", "position"),
        len(columns),
    )
    for r in shown:
        p = Precision.of(markets.market(r.account, r.venue, r.symbol))
        other = " ".join(f"+{format_amount(v)} {k}" for k, v in sorted(r.other_fees.items()))
        table.add_row(
            r.day,
            r.user,
            r.bot,
            r.account,
            r.symbol,
            r.quote or "?",
            str(r.fills),
            num(r.bought_qty, p.qty),
            num(r.sold_qty, p.qty),
            num(r.volume, p.money),
            num(r.fees, p.money) + (f" {other}" if other else ""),
            num(r.realized_pnl, p.money),
            num(r.position, p.qty),
        )
    table.caption = (
        f"days in {query.zone_name}, newest first ({_filters(args, query)}); realized P&L"
        " after fees, per cycle; amounts in quote, bought / sold / position in base"
    )
    _print(table, out)
    if len(rows) > len(shown):
        print(
            f"{len(rows) - len(shown)} older rows not shown: raise --limit, narrow --since"
            " / --until, or --csv FILE for every row",
            file=out,
        )
    total = _table(query.zone_name, ("total", "fills", "volume", "fees", "realized P&L"), 1)
    for t in totals:
        places = max((_money_places(markets, r) for r in rows if r.quote == t.quote), default=2)
        total.add_row(
            t.quote,
            str(t.fills),
            num(t.volume, places),
            num(t.fees, places),
            num(t.realized_pnl, places),
        )
    _print(total, out)


def _money_places(markets: MarketResolver, row: DayPnl) -> int:
    return Precision.of(markets.market(row.account, row.venue, row.symbol)).money or 2


def pnl_totals(rows: Sequence[DayPnl]) -> list[PnlTotal]:
    """The sums of ``rows`` per quote asset (``?`` for markets the catalog does not know),
    by asset."""
    sums: dict[str, list[Any]] = {}
    for r in rows:
        s = sums.setdefault(r.quote or "?", [0, ZERO, ZERO, ZERO])
        s[0] += r.fills
        s[1] += r.volume
        s[2] += r.fees
        s[3] += r.realized_pnl
    return [
        PnlTotal(quote=q, fills=s[0], volume=s[1], fees=s[2], realized_pnl=s[3])
        for q, s in sorted(sums.items())
    ]


def _csv_file(path: Path) -> TextIO:
    """``path`` opened for the CSV (``newline=""``: the lines carry their ``\\r\\n``).

    Raises
    ------
    HistoryError
        Naming ``--csv`` and the path if it cannot be written.
    """
    try:
        return path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise HistoryError(f"--csv: cannot write {path}: {exc.strerror}") from None


def _print(table: Table, out: TextIO) -> None:
    """``table`` on ``out`` at its natural width, however narrow the terminal (a long
    line wraps in the terminal or scrolls in ``less -S``; a cell is never folded or cut),
    without colour when ``out`` is not a terminal."""
    tty = out.isatty()
    natural = Console(width=_UNBOUNDED).measure(table).maximum
    console = Console(file=out, width=natural, no_color=not tty, highlight=False, soft_wrap=False)
    console.print(table, crop=False)
