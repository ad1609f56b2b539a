"""Position and P&L from the ledger's fills, per bot or account and market, and over time.

The arithmetic is :class:`tradebus.common.positions.Position`'s, applied to
the fills of each ``(bot or account, market)`` in the order of the venue's
trade time (``ts_event``; ties in booking order). A bot's fills are booked per
cycle (:class:`~tradebus.common.positions.CycleBook`, the ``<bot>:<run>.<cycle>``
of the filled order's intent id; STRATEGIES.md fill model rule 6): a sell
realizes against the buys of its own cycle (a volume loop against its own buy,
not the average of every open loop), and a closed cycle books exactly its
proceeds - cost - fees. An account's fills (every bot and manual order
together) form one average-cost position per market. This module only chooses
the fills and converts fees:

* money is in the market's quote asset. A fee charged in the quote asset
  counts as charged; a fee charged in the base asset (Backpack charges buys
  in the asset bought) counts as ``fee * fill price``, and the position is
  the filled quantity (the fee is a cost, not a smaller position: as
  execution's risk state and the strategies count it); a fee in any other
  asset (BNB) cannot be priced here, is left out of the P&L and is reported
  per asset in ``other_fees``. A market :class:`MarketResolver` does not
  know has no base or quote: all its fees are ``other_fees``;
* a time range ``[since_ns, until_ns)`` (of ``ts_event``, ns) reports what
  happened in it: every fill before ``until_ns`` is applied (the position
  entering the range matters to what a sell in it realizes), and realized
  P&L, fees, volumes and fill counts are the differences between the state
  at ``since_ns`` and at ``until_ns``; position, average price and
  unrealized P&L are those at ``until_ns``;
* unrealized P&L is ``Position.unrealized_pnl(mark)`` at the mark the
  caller passes for the market (``mark_source`` ``given``). Without one, and
  with ``last_fill_marks=True``, the mark is the price of the latest fill of
  that market (data venue and symbol) among the fills the report read
  (before ``until_ns``; ``mark_source`` ``last_fill``): a stale price when
  the market moved since, but the right one for a range that ended in the
  past. Otherwise it is None (``mark_source`` None).

Each report reads its fills in one snapshot (a repeatable-read, read-only
transaction) and streams them (a server-side cursor), so memory does not
grow with the ledger; the time grows linearly with the fills before
``until_ns`` (about 4 ms per 1,000 fills on a small test machine: see the
timing test of tests/integration/test_ledger_reports.py).
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, ClassVar, Literal

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from tradebus.common.ids import AccountId, UserId, cycle_of
from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.money import ZERO
from tradebus.common.positions import CycleBook, Position
from tradebus.ledger.reports.scope import (
    LedgerReader,
    ReportArgumentError,
    UserScope,
    Where,
    check_limit,
    check_text,
    check_time_range,
    check_user,
    chosen_rows,
)

Marks = Mapping[tuple[str, str], Decimal]
"""Prices to value open positions at: ``(market-data venue, symbol) -> price`` (quote per
base), e.g. ``{("binance", "BTCUSDT"): Decimal("60000")}``."""

MAX_POINTS = 10_000
"""The most points :func:`pnl_series` may be asked for."""

_PREFETCH = 2000


class MarketResolver:
    """Finds the market of the fills of an account: its assets, and the venue whose prices
    mark it.

    A fill's venue is where it traded: a live venue (``backpack``), which is
    also where its market data comes from, or ``paper``, whose fills trade on
    another venue's data (the account's ``market_data``: ``binance`` by
    default). ``data_venues`` maps each paper account to that venue; the
    gateway and the CLI know it from the bots' specs (``BotStatus.venue`` /
    ``BotSpec.venue`` with ``account``). A fill's market is
    ``catalog[(data venue, symbol)]``, the data venue being
    ``data_venues.get(account, fill venue)``.
    """

    def __init__(self, catalog: MarketCatalog, *, data_venues: Mapping[str, str]) -> None:
        self._catalog = catalog
        self._data_venues = dict(data_venues)
        self._found: dict[tuple[str, str, str], Market | None] = {}

    def data_venue(self, account: str, venue: str) -> str:
        """The venue whose market data prices ``account``'s fills on ``venue``."""
        return self._data_venues.get(account, venue)

    def market(self, account: str, venue: str, symbol: str) -> Market | None:
        """The market of ``account``'s fills of ``symbol`` on ``venue``, or None if the
        catalog does not have it."""
        where = (account, venue, symbol)
        if where not in self._found:
            key = (self.data_venue(account, venue), symbol)
            self._found[where] = self._catalog.get(*key) if key in self._catalog else None
        return self._found[where]


PAPER = "paper"
"""The venue of a paper account's orders and fills."""
DEFAULT_MARKET_DATA = "binance"
"""The market data a paper account trades on when its settings name none
(:class:`tradebus.engine.accounts.AccountSpec` ``market_data``)."""


def data_venue_of(venue: str, spec: Mapping[str, Any] | None) -> str:
    """The venue whose market data prices an account on ``venue``: the venue itself, or for
    a paper account the ``market_data`` of its settings ``spec`` (an accounts-file entry as
    JSON; :data:`DEFAULT_MARKET_DATA` without one)."""
    if venue != PAPER:
        return venue
    market_data = (spec or {}).get("market_data")
    return market_data if isinstance(market_data, str) and market_data else DEFAULT_MARKET_DATA


async def account_data_venues(db: LedgerReader, user: UserId | None) -> dict[str, str]:
    """Account id -> market-data venue (:func:`data_venue_of`) of ``user``'s accounts
    (everyone's for None), from the accounts file's table ``accounts`` and the gateway's
    ``account_configs`` (which wins): the ``data_venues`` of :class:`MarketResolver`."""
    out: dict[str, str] = {}
    for row in await db.fetch(
        "SELECT id, venue FROM accounts WHERE $1::text IS NULL OR user_id = $1", user
    ):
        out[row["id"]] = data_venue_of(row["venue"], None)
    for row in await db.fetch(
        "SELECT account_id, spec::text AS spec FROM account_configs"
        " WHERE $1::text IS NULL OR user_id = $1",
        user,
    ):
        spec = msgspec.json.decode(row["spec"])
        if isinstance(spec, dict):
            out[row["account_id"]] = data_venue_of(str(spec.get("venue") or PAPER), spec)
    return out


class MarketPnl(msgspec.Struct, frozen=True, kw_only=True):
    """Position and P&L of one market for one bot (:func:`pnl_by_bot`) or one account
    (:func:`pnl_by_account`, ``bot`` None), over the range asked (module docstring).

    Quantities in the base asset; ``avg_price``, ``mark`` in quote per base;
    every other amount in the quote asset. ``venue`` is where the fills
    traded, ``data_venue`` the venue whose prices mark them (the key of
    ``marks``); ``base`` / ``quote`` None for a market the resolver does not
    know. ``fills`` counts the fills in the range, ``first_fill_ns`` /
    ``last_fill_ns`` their ``ts_event`` (None without any). ``position`` is
    signed (short < 0), ``avg_price`` None when flat; ``unrealized_pnl`` is
    None without a mark (zero when flat); ``mark_source`` says where the mark
    came from (``given``: the caller's ``marks``; ``last_fill``: the latest
    fill price; None: no mark). ``other_fees`` holds the fees that are in
    neither the base nor the quote asset, per asset, left out of the P&L.
    """

    TIME_FIELDS: ClassVar[dict[str, str]] = {
        "first_fill_ns": "first_fill_at",
        "last_fill_ns": "last_fill_at",
    }
    """Time fields (int ns) and the name of their ISO-8601 column in CSV."""

    user: UserId
    bot: str | None
    account: AccountId
    venue: str
    data_venue: str
    symbol: str
    base: str | None
    quote: str | None
    fills: int
    position: Decimal
    avg_price: Decimal | None
    realized_pnl: Decimal
    fees: Decimal
    other_fees: dict[str, Decimal]
    bought_qty: Decimal
    bought_notional: Decimal
    sold_qty: Decimal
    sold_notional: Decimal
    mark: Decimal | None
    mark_source: Literal["given", "last_fill"] | None = None
    unrealized_pnl: Decimal | None
    first_fill_ns: int | None
    last_fill_ns: int | None
    funding: Decimal = ZERO
    """Funding the account's perpetual position received (< 0: paid) in the range, in
    the quote asset, already in ``realized_pnl``. Account rows only: a payment belongs
    to the account's position, not to one of the bots that trade it."""


class PnlPoint(msgspec.Struct, frozen=True, kw_only=True):
    """A bot's P&L just after one of its fills (:func:`pnl_series`).

    The fill: ``ts_event`` (ns), ``account``, ``venue``, ``symbol``,
    ``side``, ``price`` (quote per base), ``qty`` (base). Its market after
    it: ``position`` (signed, base), ``avg_price`` (None when flat). The
    bot's totals over every market charted (quote asset): ``realized_pnl``
    and ``fees`` since the start of the range, ``unrealized_pnl`` of every
    open position each at its market's latest fill price, and ``pnl`` =
    realized + unrealized.
    """

    TIME_FIELDS: ClassVar[dict[str, str]] = {"ts_event": "time"}
    """Time fields (int ns) and the name of their ISO-8601 column in CSV."""

    ts_event: int
    account: AccountId
    venue: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    position: Decimal
    avg_price: Decimal | None
    realized_pnl: Decimal
    fees: Decimal
    unrealized_pnl: Decimal
    pnl: Decimal


# ----------------------------------------------------------------------- reports
async def pnl_by_bot(
    db: LedgerReader,
    user: UserScope,
    *,
    markets: MarketResolver,
    marks: Marks,
    bot: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    last_fill_marks: bool = False,
) -> list[MarketPnl]:
    """Position and P&L per bot and market of ``user`` (:data:`~.scope.ALL_USERS`: everyone).

    One row per ``(user, bot, account, venue, symbol)`` with fills before
    ``until_ns``, sorted by those; ``bot`` keeps one bot's rows (a bot id or
    ``manual``). The bot is the source of the filled order. Ranges, fees,
    marks and ``last_fill_marks``: module docstring.

    Raises
    ------
    ReportArgumentError
        An argument is invalid; ``field`` names it.
    """
    where = chosen_rows(user, since_ns, until_ns, bot=bot)
    rows = await _pnl(
        db, where, markets, marks, [since_ns], until_ns, by_bot=True,
        last_fill_marks=last_fill_marks,
    )  # fmt: skip
    return [row for _, row in rows]


async def pnl_by_account(
    db: LedgerReader,
    user: UserScope,
    *,
    markets: MarketResolver,
    marks: Marks,
    account: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    last_fill_marks: bool = False,
) -> list[MarketPnl]:
    """Position and P&L per account and market of ``user`` (:data:`~.scope.ALL_USERS`:
    everyone), all bots' and manual fills together (``bot`` None).

    One row per ``(user, account, venue, symbol)`` with fills before
    ``until_ns``, sorted by those; ``account`` keeps one account's rows. An
    account's P&L is that of its fills in one position per market, which is
    not the sum of its bots' rows when they trade the same market (each bot
    averages its own cost). Ranges, fees, marks and ``last_fill_marks``:
    module docstring.

    Raises
    ------
    ReportArgumentError
        An argument is invalid; ``field`` names it.
    """
    where = chosen_rows(user, since_ns, until_ns, account=account)
    user_id = check_user(user)
    rows = [
        row
        for _, row in await _pnl(
            db, where, markets, marks, [since_ns], until_ns, by_bot=False,
            last_fill_marks=last_fill_marks,
        )
    ]  # fmt: skip
    paid = await _funding(db, user_id, account, since_ns, until_ns)
    return [
        msgspec.structs.replace(row, funding=f, realized_pnl=row.realized_pnl + f)
        if (f := paid.get((row.account, row.symbol)))
        else row
        for row in rows
    ]


async def _funding(
    db: LedgerReader,
    user_id: str | None,
    account: str | None,
    since_ns: int | None,
    until_ns: int | None,
) -> dict[tuple[str, str], Decimal]:
    """Funding booked per ``(account, symbol)`` (journal kind ``funding``, its ref
    ``funding:<symbol>:<ms>``), booked in ``[since_ns, until_ns)``."""
    async with _snapshot(db) as conn:
        records = await conn.fetch(
            "SELECT j.account_id, j.ref, j.amount FROM journal j"
            " JOIN accounts a ON a.id = j.account_id WHERE j.kind = 'funding'"
            " AND ($1::text IS NULL OR a.user_id = $1)"
            " AND ($2::text IS NULL OR j.account_id = $2)"
            " AND ($3::bigint IS NULL OR j.ts >= $3) AND ($4::bigint IS NULL OR j.ts < $4)",
            user_id,
            account,
            since_ns,
            until_ns,
        )
    paid: dict[tuple[str, str], Decimal] = {}
    for r in records:
        key = (r["account_id"], r["ref"].split(":")[1])
        paid[key] = paid.get(key, ZERO) + r["amount"]
    return paid


async def pnl_series(
    db: LedgerReader,
    user: UserScope,
    bot: str,
    *,
    markets: MarketResolver,
    symbol: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    max_points: int = 1000,
) -> list[PnlPoint]:
    """A bot's P&L after each of its fills in ``[since_ns, until_ns)``, for charts.

    The fills of ``bot`` (of one ``symbol`` if given) are applied as in
    :func:`pnl_by_bot`, one position per ``(account, venue, symbol)``;
    each fill in the range gives a :class:`PnlPoint` (realized P&L and fees
    counted from the start of the range). With more fills than
    ``max_points`` (1..10000), the range from its first to its last fill is
    cut into ``max_points`` equal time buckets and only the last point of
    each bucket is kept, so the last point is always the bot's latest state
    in the range. Totals add the markets' quote amounts as they are: chart
    one ``symbol`` of a bot whose markets have different quote assets.

    Raises
    ------
    ReportArgumentError
        An argument is invalid; ``field`` names it.
    """
    check_user(user)
    check_time_range(since_ns, until_ns)
    check_limit(max_points, "max_points", MAX_POINTS)
    if check_text("bot", bot) is None:
        raise ReportArgumentError("bot", "a series is of one bot: expected its id, got None")
    chosen = chosen_rows(user, since_ns, until_ns, bot=bot, symbol=symbol)

    async with _snapshot(db) as conn:
        span = await _fill_span(conn, chosen, since_ns, until_ns)
        if span is None:
            return []
        first, last = span
        width = -(-(last - first + 1) // max_points)  # ceil: max_points buckets cover it
        books: dict[tuple[str, str, str, str], CycleBook] = {}
        last_price: dict[tuple[str, str, str, str], Decimal] = {}
        at_start: tuple[Decimal, Decimal] | None = None  # realized P&L, fees
        points: list[PnlPoint] = []
        pending: tuple[int, PnlPoint] | None = None  # the last point of the current bucket
        async for f in _fills(conn, chosen.with_time_range("ts_event", None, until_ns)):
            key = (f["user_id"], f["account_id"], f["venue"], f["symbol"])
            counted = since_ns is None or f["ts_event"] >= since_ns
            if counted and at_start is None:
                at_start = _totals(books)
            book = books.get(key)
            if book is None:
                book = books[key] = CycleBook()
            _apply(book, f, markets)
            position = book.total
            last_price[key] = f["price"]
            if at_start is None:
                continue
            realized, fees = _totals(books)
            unrealized = sum(
                (b.total.unrealized_pnl(last_price[k]) for k, b in books.items() if b.total.qty),
                ZERO,
            )
            point = PnlPoint(
                ts_event=f["ts_event"],
                account=f["account_id"],
                venue=f["venue"],
                symbol=f["symbol"],
                side=f["side"],
                price=f["price"],
                qty=f["qty"],
                position=position.qty,
                avg_price=position.avg_price,
                realized_pnl=realized - at_start[0],
                fees=fees - at_start[1],
                unrealized_pnl=unrealized,
                pnl=realized - at_start[0] + unrealized,
            )
            bucket = min((f["ts_event"] - first) // width, max_points - 1)
            if pending is not None and pending[0] != bucket:
                points.append(pending[1])
            pending = (bucket, point)
        if pending is not None:
            points.append(pending[1])
        return points


class DayPnl(msgspec.Struct, frozen=True, kw_only=True):
    """What one bot did in one market on one day (:func:`pnl_by_bot_per_day`).

    ``day`` is the calendar date (``2024-03-01``) in the report's time zone
    and ``day_start_ns`` when the row's period starts (ns: that day's
    midnight there, or the report's ``since_ns`` on its first day).
    ``realized_pnl``, ``fees``, ``volume`` (bought + sold notional) and the
    notionals are in the ``quote`` asset, booked as :func:`pnl_by_bot` books
    them (per cycle, fees in quote; ``other_fees`` per asset, left out);
    quantities in the base asset. ``position`` (signed) and ``avg_price``
    (None when flat) are those after the day's last fill; ``fills`` counts
    the day's fills, ``first_fill_ns`` / ``last_fill_ns`` their ``ts_event``.
    """

    TIME_FIELDS: ClassVar[dict[str, str]] = {
        "day_start_ns": "day_start_at",
        "first_fill_ns": "first_fill_at",
        "last_fill_ns": "last_fill_at",
    }
    """Time fields (int ns) and the name of their ISO-8601 column in CSV."""

    day: str
    day_start_ns: int
    user: UserId
    bot: str
    account: AccountId
    venue: str
    symbol: str
    base: str | None
    quote: str | None
    fills: int
    realized_pnl: Decimal
    fees: Decimal
    other_fees: dict[str, Decimal]
    volume: Decimal
    bought_qty: Decimal
    bought_notional: Decimal
    sold_qty: Decimal
    sold_notional: Decimal
    position: Decimal
    avg_price: Decimal | None
    first_fill_ns: int | None
    last_fill_ns: int | None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS = 1_000_000_000


def local_date(ts_ns: int, zone: tzinfo) -> date:
    """The calendar date in ``zone`` at ``ts_ns`` (ns since the epoch)."""
    return (_EPOCH + timedelta(microseconds=ts_ns // 1000)).astimezone(zone).date()


def midnight_ns(day: date, zone: tzinfo) -> int:
    """When ``day`` starts in ``zone``, in ns since the epoch (its first instant: a zone
    whose clocks skip midnight starts the day at the time they skip to, as
    :mod:`zoneinfo` resolves it)."""
    delta = datetime(day.year, day.month, day.day, tzinfo=zone) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS


def day_starts(zone: tzinfo, since_ns: int, last_ns: int) -> list[int]:
    """The start of each day in ``zone`` from ``since_ns`` to ``last_ns`` (ns): ``since_ns``
    itself, then every midnight after it up to ``last_ns``."""
    starts = [since_ns]
    day = local_date(since_ns, zone)
    while True:
        day += timedelta(days=1)
        start = midnight_ns(day, zone)
        if start > last_ns:
            return starts
        if start > starts[-1]:
            starts.append(start)


async def pnl_by_bot_per_day(
    db: LedgerReader,
    user: UserScope,
    *,
    markets: MarketResolver,
    zone: tzinfo,
    bot: str | None = None,
    account: str | None = None,
    symbol: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> list[DayPnl]:
    """What each bot of ``user`` (:data:`~.scope.ALL_USERS`: everyone) did per market and
    calendar day in ``zone``, in ``[since_ns, until_ns)`` (of ``ts_event``, ns).

    The fills are applied as :func:`pnl_by_bot` applies them (per cycle,
    every fill before ``until_ns``; the state entering the range counts),
    and each day's row holds the changes over that day: the sum of the rows
    over the days of a range is :func:`pnl_by_bot`'s row for it. Days start
    at midnight in ``zone`` (the first at ``since_ns``, or at the midnight
    before the first fill without it); a row per ``(day, user, bot,
    account, venue, symbol)`` with fills that day, oldest day first. ``bot``
    (a bot id or ``manual``), ``account`` and ``symbol`` keep their rows only.

    Raises
    ------
    ReportArgumentError
        An argument is invalid; ``field`` names it.
    """
    chosen = chosen_rows(user, since_ns, until_ns, bot=bot, account=account, symbol=symbol)
    span = await _fill_span(db, chosen, since_ns, until_ns)
    if span is None:
        return []
    first = since_ns if since_ns is not None else midnight_ns(local_date(span[0], zone), zone)
    starts = day_starts(zone, first, span[1])
    rows = await _pnl(db, chosen, markets, {}, starts, until_ns, by_bot=True, last_fill_marks=False)
    return [
        DayPnl(
            day=local_date(starts[period], zone).isoformat(),
            day_start_ns=starts[period],
            user=r.user,
            bot=r.bot or "",
            account=r.account,
            venue=r.venue,
            symbol=r.symbol,
            base=r.base,
            quote=r.quote,
            fills=r.fills,
            realized_pnl=r.realized_pnl,
            fees=r.fees,
            other_fees=r.other_fees,
            volume=r.bought_notional + r.sold_notional,
            bought_qty=r.bought_qty,
            bought_notional=r.bought_notional,
            sold_qty=r.sold_qty,
            sold_notional=r.sold_notional,
            position=r.position,
            avg_price=r.avg_price,
            first_fill_ns=r.first_fill_ns,
            last_fill_ns=r.last_fill_ns,
        )
        for period, r in rows
    ]


# --------------------------------------------------------------------- internals
_FILL_COLUMNS = (
    "user_id, source, account_id, venue, symbol, side, price, qty, fee, fee_asset, ts_event,"
    " (SELECT o.intent_id FROM orders o WHERE o.client_order_id = fills.client_order_id)"
    " AS intent_id"
)


async def _fill_span(
    db: LedgerReader, where: Where, since_ns: int | None, until_ns: int | None
) -> tuple[int, int] | None:
    """The ``ts_event`` (ns) of the first and the last fill ``where`` selects in
    ``[since_ns, until_ns)``, or None without any."""
    in_range = where.with_time_range("ts_event", since_ns, until_ns)
    span = await db.fetchrow(
        f"SELECT min(ts_event) AS first, max(ts_event) AS last FROM fills {in_range.sql()}",
        *in_range.args,
    )
    if span is None or span["first"] is None:
        return None
    return span["first"], span["last"]


@asynccontextmanager
async def _snapshot(
    db: LedgerReader,
) -> AsyncIterator[asyncpg.Connection | PoolConnectionProxy]:
    """A connection inside one read-only repeatable-read transaction (one snapshot of the
    ledger), or inside the transaction the caller's connection already has."""
    if isinstance(db, asyncpg.Pool):
        async with (
            db.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield conn
    elif db.is_in_transaction():
        yield db
    else:
        async with db.transaction(isolation="repeatable_read", readonly=True):
            yield db


async def _fills(
    conn: asyncpg.Connection | PoolConnectionProxy, where: Where
) -> AsyncIterator[asyncpg.Record]:
    """The fills ``where`` selects, in the order they are applied, streamed."""
    query = f"SELECT {_FILL_COLUMNS} FROM fills {where.sql()} ORDER BY ts_event, seq"
    async for record in conn.cursor(query, *where.args, prefetch=_PREFETCH):
        yield record


def _totals(books: dict[tuple[str, str, str, str], CycleBook]) -> tuple[Decimal, Decimal]:
    """Realized P&L and fees (quote) of ``books`` together."""
    realized = sum((b.total.realized_pnl for b in books.values()), ZERO)
    return realized, sum((b.total.fees for b in books.values()), ZERO)


def _apply(book: CycleBook, fill: asyncpg.Record, markets: MarketResolver) -> None:
    """Apply ``fill`` to its cycle of ``book``, its fee in the quote asset (none if it
    cannot be)."""
    market = markets.market(fill["account_id"], fill["venue"], fill["symbol"])
    book.apply_fill(
        cycle_of(fill["intent_id"]),
        fill["side"],
        fill["qty"],
        fill["price"],
        fill["fee"],
        fill["fee_asset"],
        market,
    )


class _Group:
    """The running state of one ``(user, bot or account, market)`` of :func:`_pnl`: its
    book, and the counts of the period it last had a fill in (``period``; -1: none yet)."""

    __slots__ = (
        "at_start",
        "book",
        "fills",
        "first_ns",
        "last_ns",
        "other_fees",
        "period",
        "position",
    )

    def __init__(self) -> None:
        self.book = CycleBook()
        self.position = self.book.total
        self.period = -1
        self.at_start: Position | None = None
        self.fills = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.other_fees: dict[str, Decimal] = {}

    def enter(self, period: int) -> None:
        """Start counting ``period``: the position now is its start."""
        self.period = period
        self.at_start = msgspec.structs.replace(self.position)
        self.fills = 0
        self.first_ns = self.last_ns = None
        self.other_fees = {}


_GroupKey = tuple[str, str, str, str, str]


def _period_of(starts: Sequence[int | None], ts_ns: int) -> int:
    """The index of the period ``ts_ns`` is in (periods start at ``starts``, ascending; the
    last ends at the report's ``until_ns``), -1 before the first; ``[None]``: one period
    open at the start."""
    if starts[0] is None:
        return 0
    return bisect.bisect_right(starts, ts_ns) - 1  # type: ignore[type-var]


async def _pnl(
    db: LedgerReader,
    where: Where,
    markets: MarketResolver,
    marks: Marks,
    starts: Sequence[int | None],
    until_ns: int | None,
    *,
    by_bot: bool,
    last_fill_marks: bool,
) -> list[tuple[int, MarketPnl]]:
    """``(period index, row)`` of the fills ``where`` selects, per period (module docstring).

    The periods start at ``starts`` (ascending ns; ``[since_ns]`` for one
    period, ``since_ns`` None for one open at the start); the last ends at
    ``until_ns``. With one period, every group with fills before
    ``until_ns`` has a row, marked as the module docstring says (that of
    :func:`pnl_by_bot` / :func:`pnl_by_account`). With several, a group has
    a row for each period it has fills in, without a mark (the rows of
    :func:`pnl_by_bot_per_day`). Sorted by period, then group.
    """
    single = len(starts) == 1
    where.time_range("ts_event", None, until_ns)
    groups: dict[_GroupKey, _Group] = {}
    rows: list[tuple[int, _GroupKey, MarketPnl]] = []
    last_prices: dict[tuple[str, str], Decimal] = {}  # (data venue, symbol): latest fill's
    async with _snapshot(db) as conn:
        async for f in _fills(conn, where):
            key = (
                f["user_id"],
                f["source"] if by_bot else "",
                f["account_id"],
                f["venue"],
                f["symbol"],
            )
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group()
            period = _period_of(starts, f["ts_event"])
            if period >= 0 and period != group.period:
                if group.period >= 0:  # the group's last period is over: its row
                    closed = _row(key, group, markets, None, None, by_bot=by_bot)
                    rows.append((group.period, key, closed))
                group.enter(period)
            market = markets.market(f["account_id"], f["venue"], f["symbol"])
            cycle = cycle_of(f["intent_id"]) if by_bot else ""  # an account: average cost
            fee = group.book.apply_fill(
                cycle, f["side"], f["qty"], f["price"], f["fee"], f["fee_asset"], market
            )
            last_prices[(markets.data_venue(f["account_id"], f["venue"]), f["symbol"])] = f["price"]
            if period < 0:
                continue
            if fee is None:
                asset = f["fee_asset"]
                group.other_fees[asset] = group.other_fees.get(asset, ZERO) + f["fee"]
            group.fills += 1
            group.last_ns = f["ts_event"]
            if group.first_ns is None:
                group.first_ns = f["ts_event"]
    for key, group in groups.items():
        if not single:
            if group.period >= 0:
                closed = _row(key, group, markets, None, None, by_bot=by_bot)
                rows.append((group.period, key, closed))
            continue
        _, _, account, venue, symbol = key
        data_venue = markets.data_venue(account, venue)
        mark = marks.get((data_venue, symbol))
        mark_source: Literal["given", "last_fill"] | None = None if mark is None else "given"
        if mark is None and last_fill_marks:
            mark, mark_source = last_prices[(data_venue, symbol)], "last_fill"
        rows.append((0, key, _row(key, group, markets, mark, mark_source, by_bot=by_bot)))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(period, row) for period, _, row in rows]


def _row(
    key: _GroupKey,
    group: _Group,
    markets: MarketResolver,
    mark: Decimal | None,
    mark_source: Literal["given", "last_fill"] | None,
    *,
    by_bot: bool,
) -> MarketPnl:
    """The row of ``group`` for its current period: the changes since its start, the
    position now, valued at ``mark`` (None: not valued)."""
    user_id, source, account, venue, symbol = key
    end = group.position
    start = group.at_start or end  # no fill in the range: nothing happened in it
    market = markets.market(account, venue, symbol)
    return MarketPnl(
        user=UserId(user_id),
        bot=source if by_bot else None,
        account=AccountId(account),
        venue=venue,
        data_venue=markets.data_venue(account, venue),
        symbol=symbol,
        base=None if market is None else market.base,
        quote=None if market is None else market.quote,
        fills=group.fills,
        position=end.qty,
        avg_price=end.avg_price,
        realized_pnl=end.realized_pnl - start.realized_pnl,
        fees=end.fees - start.fees,
        other_fees=group.other_fees,
        bought_qty=end.bought_qty - start.bought_qty,
        bought_notional=end.bought_notional - start.bought_notional,
        sold_qty=end.sold_qty - start.sold_qty,
        sold_notional=end.sold_notional - start.sold_notional,
        mark=mark,
        mark_source=mark_source,
        unrealized_pnl=None if mark is None else end.unrealized_pnl(mark),
        first_fill_ns=group.first_ns,
        last_fill_ns=group.last_ns,
    )
