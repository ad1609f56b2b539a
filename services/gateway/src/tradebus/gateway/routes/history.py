"""History and P&L from the ledger: orders, fills, P&L per bot and account, a bot's P&L
over time; JSON pages or CSV downloads.

Routes (all ``GET``, all signed in)::

    /api/v1/history/orders            orders, newest first, a page at a time
    /api/v1/history/fills             fills, newest (venue trade time) first
    /api/v1/pnl/bots                  position and P&L per bot and market
    /api/v1/pnl/accounts              position and P&L per account and market
    /api/v1/pnl/bots/{bot_id}/series  one bot's P&L after each fill, for charts

Query parameters (each route takes those that make sense for it):

* ``user``: whose rows. A user reads only their own (``user`` absent or
  theirs; anyone else's is 404). An admin reads everyone's by default, or
  one user's with ``user=``;
* ``bot``, ``account``, ``symbol``, ``status`` (orders): filters. A ``bot``
  or ``account`` that is not the caller's (or not within ``user=`` for an
  admin) is 404, the same answer as one that does not exist. ``bot=manual``
  names the orders a person sent;
* ``since``, ``until``: the range ``[since, until)``, each an integer of ns
  since the epoch or ISO 8601 (``2024-03-01``, ``2024-03-01T12:00:00Z``, up to
  nine fraction digits; without an offset it is UTC). Orders are in a range by
  their creation time, fills and P&L by the venue's trade time;
* ``cursor``, ``limit`` (1..1000, default 100): keyset pages of orders and
  fills (``next_cursor`` of a page continues it; null on the last one);
* ``format``: ``json`` (default) or ``csv``. CSV is a download
  (``Content-Disposition: attachment``) of every row that matches the filters
  (from ``cursor`` on, if given; ``limit`` is for JSON pages only), read a
  page at a time as it is sent; times have an ISO-8601 column beside the ns
  one (:mod:`tradebus.ledger.reports.export`).

Unrealized P&L is valued at a mark per market. For a range that is open at
the end (no ``until``), the mark is the ``last_price`` of a running bot's
status on that market (the hosts' ``ctl.bots.list``, :class:`~tradebus.gateway.live.BotStatuses`;
a public market price, whoever's bot reports it); a market no running bot
watches, and any range with ``until``, are marked at the price of the latest
fill of the report before ``until``. ``mark_source`` of each row says which
(``given``: a bot's status, ``last_fill``: the latest fill).

Bad parameters are 400 naming the parameter (``field``: ``cursor``,
``since``, ``limit``...), never 500.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

import msgspec
from litestar import Response, Router, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from tradebus.common.ids import UserId
from tradebus.gateway.auth import SECURED
from tradebus.gateway.context import Caller, Ctx, GatewayContext, Principal
from tradebus.gateway.errors import ApiError, ErrorBody, invalid, not_found
from tradebus.gateway.live import account_info, data_venues
from tradebus.gateway.params import BotIdPath
from tradebus.ledger.reports.export import CsvFormat
from tradebus.ledger.reports.history import FillRecord, OrderRecord, fills_page, orders_page
from tradebus.ledger.reports.pnl import (
    MAX_POINTS,
    MarketPnl,
    MarketResolver,
    PnlPoint,
    pnl_by_account,
    pnl_by_bot,
    pnl_series,
)
from tradebus.ledger.reports.scope import (
    ALL_USERS,
    MAX_LIMIT,
    Page,
    ReportArgumentError,
    UserScope,
    check_text,
)

MANUAL = "manual"
"""The source of the orders a person sent (not a bot)."""
CSV_PAGE = MAX_LIMIT
"""Rows read per query while a CSV download streams."""

Format = Literal["json", "csv"]
R = TypeVar("R", bound=msgspec.Struct)
T = TypeVar("T")

# a report's argument name -> the query parameter a caller wrote
_QUERY_NAMES = {"since_ns": "since", "until_ns": "until"}
_INT_TIME = re.compile(r"-?\d{1,19}")
_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_ISO_FRACTION = re.compile(r"(T\d{2}:\d{2}:\d{2})[.,](\d{1,9})")

UserQuery = Annotated[
    str | None,
    Parameter(
        description="Whose rows: yours; an admin: anyone's (everyone's if absent)",
        min_length=1,
        max_length=200,
    ),
]
BotQuery = Annotated[
    str | None,
    Parameter(description="One bot's rows (its id; `manual`: orders a person sent)", min_length=1),
]
AccountQuery = Annotated[
    str | None, Parameter(description="One account's rows (its id)", min_length=1)
]
SymbolQuery = Annotated[
    str | None, Parameter(description="One market's rows (the venue's id, BTCUSDT)", min_length=1)
]
SinceQuery = Annotated[
    str | None,
    Parameter(description="Start of the range (inclusive): int ns since the epoch or ISO 8601"),
]
UntilQuery = Annotated[
    str | None,
    Parameter(description="End of the range (exclusive): int ns since the epoch or ISO 8601"),
]
CursorQuery = Annotated[
    str | None,
    Parameter(description="`next_cursor` of the page before (with the same filters)"),
]
LimitQuery = Annotated[int, Parameter(description="Rows per JSON page", ge=1, le=MAX_LIMIT)]
FormatQuery = Annotated[
    Format,
    Parameter(description="json: a page; csv: a download of every matching row from `cursor` on"),
]


class OrdersPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of orders, newest first; ``next_cursor`` continues it (null: the last page)."""

    items: list[OrderRecord]
    next_cursor: str | None


class FillsPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of fills, newest first; ``next_cursor`` continues it (null: the last page)."""

    items: list[FillRecord]
    next_cursor: str | None


class PnlReport(msgspec.Struct, frozen=True, kw_only=True):
    """Position and P&L per bot (or account) and market over ``[since_ns, until_ns)``
    (null: open); amounts as :class:`~tradebus.ledger.reports.pnl.MarketPnl` says."""

    rows: list[MarketPnl]
    since_ns: int | None
    until_ns: int | None


class PnlSeries(msgspec.Struct, frozen=True, kw_only=True):
    """``bot``'s P&L after each of its fills in the range (at most ``max_points`` points,
    the last one its latest state), for charts."""

    bot: str
    points: list[PnlPoint]


def _responses(body: type[msgspec.Struct]) -> dict[int, ResponseSpec]:
    """The OpenAPI answers of a route whose JSON answer is ``body`` (its handler returns a
    JSON ``Response`` or a CSV ``Stream``, which Litestar cannot describe by itself)."""
    return {
        200: ResponseSpec(
            data_container=body,
            description="JSON as shown; with format=csv a text/csv attachment of the same rows",
        ),
        400: ResponseSpec(data_container=ErrorBody, description="A bad parameter (`field`)"),
        404: ResponseSpec(
            data_container=ErrorBody, description="A user, bot or account that is not yours"
        ),
    }


# ------------------------------------------------------------------ parameters
def parse_time(field: str, text: str | None) -> int | None:
    """A time parameter as int ns since the epoch (None if absent).

    ``text`` is an integer of ns, or ISO 8601 (a date, or a date and time with
    up to nine fraction digits and an optional offset; no offset is UTC).

    Raises
    ------
    ApiError
        400 naming ``field`` if it is neither, or out of the int64 range.
    """
    if text is None:
        return None
    text = text.strip()
    if _INT_TIME.fullmatch(text):
        value = int(text)
    else:
        nanos = 0
        fraction = _ISO_FRACTION.search(text)
        if fraction:
            nanos = int(fraction.group(2).ljust(9, "0"))
            text = text[: fraction.start(2) - 1] + text[fraction.end(2) :]
        try:
            when = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise invalid(
                field, "expected int nanoseconds or ISO 8601 (2024-03-01T12:00:00Z)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delta = when - datetime(1970, 1, 1, tzinfo=UTC)
        value = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + nanos
    if not -(2**63) <= value < 2**63:
        raise invalid(field, "out of range")
    return value


def report_error(exc: ReportArgumentError) -> ApiError:
    """A report's argument error as a 400 naming the query parameter."""
    field = _QUERY_NAMES.get(exc.field, exc.field)
    message = str(exc).partition(": ")[2] or str(exc)
    return invalid(field, message)


async def _call(report: Awaitable[T]) -> T:
    """``await report``, its argument errors as 400s (:func:`report_error`)."""
    try:
        return await report
    except ReportArgumentError as exc:
        raise report_error(exc) from None


def text(field: str, value: str | None) -> str | None:
    """``value`` if None or text Postgres can hold (no NUL).

    Raises
    ------
    ApiError
        400 naming ``field`` otherwise.
    """
    try:
        return check_text(field, value)
    except ReportArgumentError as exc:
        raise report_error(exc) from None


async def scope_of(ctx: GatewayContext, principal: Principal, user: str | None) -> UserScope:
    """Whose rows the caller reads (module docstring).

    Raises
    ------
    ApiError
        404 for a user the caller may not read, or (for an admin) who does not exist.
    """
    if text("user", user) is None:
        return ALL_USERS if principal.is_admin else principal.user
    assert user is not None
    if not principal.may_see(user):
        raise not_found("user", user)
    if user != principal.user and await ctx.users.get(UserId(user)) is None:
        raise not_found("user", user)
    return UserId(user)


async def check_bot(ctx: GatewayContext, scope: UserScope, bot: str | None) -> None:
    """404 unless ``bot`` (if given) is within ``scope``: a bot of KV ``bots`` owned by the
    scope's user, or a source of their orders in the ledger (a bot deleted since).
    ``manual`` is every user's; an admin reading everyone's may name any bot."""
    if text("bot", bot) is None or bot == MANUAL or scope is ALL_USERS:
        return
    assert bot is not None
    found = await ctx.bots.get(bot)
    if found is not None and found[0].user == scope:
        return
    had_orders = await ctx.pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM orders WHERE user_id = $1 AND source = $2)", scope, bot
    )
    if not had_orders:
        raise not_found("bot", bot)


async def check_account(ctx: GatewayContext, scope: UserScope, account: str | None) -> None:
    """404 unless ``account`` (if given) exists and is within ``scope`` (deleted accounts
    included: their history stays readable)."""
    if text("account", account) is None:
        return
    assert account is not None
    info = await account_info(ctx.pool, account)
    if info is None or (scope is not ALL_USERS and info.owner != scope):
        raise not_found("account", account)


async def _resolver(ctx: GatewayContext, scope: UserScope) -> MarketResolver:
    venues = await data_venues(ctx.pool, None if scope is ALL_USERS else scope)
    return MarketResolver(ctx.catalog, data_venues=venues)


async def _marks(ctx: GatewayContext, until_ns: int | None) -> dict[tuple[str, str], Decimal]:
    """Running bots' last prices by (market-data venue, symbol); none for a closed range."""
    if until_ns is not None:
        return {}
    return {
        (s.venue, s.symbol): s.last_price
        for s in (await ctx.statuses.all()).values()
        if s.last_price is not None
    }


def _pnl_answer(
    name: str, rows: list[MarketPnl], since_ns: int | None, until_ns: int | None, fmt: str
) -> Response[PnlReport] | Stream:
    """A P&L report as JSON, or as the CSV download ``<name>.csv`` when ``fmt`` is csv."""
    if fmt == "csv":
        return _csv_download(name, MarketPnl, Page(items=rows, next_cursor=None), None)
    return Response(PnlReport(rows=rows, since_ns=since_ns, until_ns=until_ns))


def _csv_download(
    name: str,
    record_type: type[R],
    first: Page[R],
    more: Callable[[str], Awaitable[Page[R]]] | None,
) -> Stream:
    """A CSV attachment of ``first``'s rows and (with ``more``) every page after it."""
    fmt = CsvFormat(record_type)

    async def lines() -> AsyncIterator[str]:
        yield fmt.header_line()
        page = first
        while True:
            for line in fmt.lines(page.items):
                yield line
            if more is None or page.next_cursor is None:
                return
            page = await more(page.next_cursor)

    return Stream(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


# ---------------------------------------------------------------------- routes
@get(
    "/history/orders",
    security=SECURED,
    responses=_responses(OrdersPage),
    summary="Orders, newest first (JSON page or CSV)",
)
async def history_orders(
    ctx: Ctx,
    principal: Caller,
    user: UserQuery = None,
    bot: BotQuery = None,
    account: AccountQuery = None,
    symbol: SymbolQuery = None,
    status: Annotated[str | None, Parameter(description="One order status (filled...)")] = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    format: FormatQuery = "json",
) -> Response[OrdersPage] | Stream:
    """A page of the caller's orders, by creation time (module docstring)."""
    since_ns, until_ns = parse_time("since", since), parse_time("until", until)
    scope = await scope_of(ctx, principal, user)
    await check_bot(ctx, scope, bot)
    await check_account(ctx, scope, account)

    def fetch(after: str | None, rows: int) -> Awaitable[Page[OrderRecord]]:
        return _call(
            orders_page(
                ctx.pool,
                scope,
                bot=bot,
                account=account,
                symbol=symbol,
                status=status,
                since_ns=since_ns,
                until_ns=until_ns,
                cursor=after,
                limit=rows,
            )
        )

    if format == "csv":
        first = await fetch(cursor, CSV_PAGE)
        return _csv_download("orders", OrderRecord, first, lambda c: fetch(c, CSV_PAGE))
    page = await fetch(cursor, limit)
    return Response(OrdersPage(items=page.items, next_cursor=page.next_cursor))


@get(
    "/history/fills",
    security=SECURED,
    responses=_responses(FillsPage),
    summary="Fills, newest first (JSON page or CSV)",
)
async def history_fills(
    ctx: Ctx,
    principal: Caller,
    user: UserQuery = None,
    bot: BotQuery = None,
    account: AccountQuery = None,
    symbol: SymbolQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
    format: FormatQuery = "json",
) -> Response[FillsPage] | Stream:
    """A page of the caller's fills, by the venue's trade time (module docstring)."""
    since_ns, until_ns = parse_time("since", since), parse_time("until", until)
    scope = await scope_of(ctx, principal, user)
    await check_bot(ctx, scope, bot)
    await check_account(ctx, scope, account)

    def fetch(after: str | None, rows: int) -> Awaitable[Page[FillRecord]]:
        return _call(
            fills_page(
                ctx.pool,
                scope,
                bot=bot,
                account=account,
                symbol=symbol,
                since_ns=since_ns,
                until_ns=until_ns,
                cursor=after,
                limit=rows,
            )
        )

    if format == "csv":
        first = await fetch(cursor, CSV_PAGE)
        return _csv_download("fills", FillRecord, first, lambda c: fetch(c, CSV_PAGE))
    page = await fetch(cursor, limit)
    return Response(FillsPage(items=page.items, next_cursor=page.next_cursor))


@get(
    "/pnl/bots",
    security=SECURED,
    responses=_responses(PnlReport),
    summary="Position and P&L per bot and market",
)
async def pnl_bots(
    ctx: Ctx,
    principal: Caller,
    user: UserQuery = None,
    bot: BotQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    format: FormatQuery = "json",
) -> Response[PnlReport] | Stream:
    """Realized and unrealized P&L of each of the caller's bots per market over the range
    (module docstring: marks)."""
    since_ns, until_ns = parse_time("since", since), parse_time("until", until)
    scope = await scope_of(ctx, principal, user)
    await check_bot(ctx, scope, bot)
    rows = await _call(
        pnl_by_bot(
            ctx.pool,
            scope,
            markets=await _resolver(ctx, scope),
            marks=await _marks(ctx, until_ns),
            bot=bot,
            since_ns=since_ns,
            until_ns=until_ns,
            last_fill_marks=True,
        )
    )
    return _pnl_answer("pnl-bots", rows, since_ns, until_ns, format)


@get(
    "/pnl/accounts",
    security=SECURED,
    responses=_responses(PnlReport),
    summary="Position and P&L per account and market",
)
async def pnl_accounts(
    ctx: Ctx,
    principal: Caller,
    user: UserQuery = None,
    account: AccountQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    format: FormatQuery = "json",
) -> Response[PnlReport] | Stream:
    """Realized and unrealized P&L of each of the caller's accounts per market (all its bots'
    and manual fills in one position) over the range (module docstring: marks)."""
    since_ns, until_ns = parse_time("since", since), parse_time("until", until)
    scope = await scope_of(ctx, principal, user)
    await check_account(ctx, scope, account)
    rows = await _call(
        pnl_by_account(
            ctx.pool,
            scope,
            markets=await _resolver(ctx, scope),
            marks=await _marks(ctx, until_ns),
            account=account,
            since_ns=since_ns,
            until_ns=until_ns,
            last_fill_marks=True,
        )
    )
    return _pnl_answer("pnl-accounts", rows, since_ns, until_ns, format)


@get(
    "/pnl/bots/{bot_id:str}/series",
    security=SECURED,
    responses=_responses(PnlSeries),
    summary="One bot's P&L after each fill, for charts",
)
async def pnl_bot_series(
    ctx: Ctx,
    principal: Caller,
    bot_id: BotIdPath,
    user: UserQuery = None,
    symbol: SymbolQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    max_points: Annotated[
        int,
        Parameter(
            description="At most this many points (the last of equal time buckets)",
            ge=1,
            le=MAX_POINTS,
        ),
    ] = 1000,
    format: FormatQuery = "json",
) -> Response[PnlSeries] | Stream:
    """The bot's realized, unrealized (at each market's latest fill price) and total P&L
    after each of its fills in the range (404 if it is not the caller's)."""
    since_ns, until_ns = parse_time("since", since), parse_time("until", until)
    text("bot_id", bot_id)
    scope = await scope_of(ctx, principal, user)
    if bot_id == MANUAL and scope is ALL_USERS:
        raise invalid("user", "manual orders are charted per user: name one")
    await check_bot(ctx, scope, bot_id)
    points = await _call(
        pnl_series(
            ctx.pool,
            scope,
            bot_id,
            markets=await _resolver(ctx, scope),
            symbol=symbol,
            since_ns=since_ns,
            until_ns=until_ns,
            max_points=max_points,
        )
    )
    if format == "csv":
        page = Page(items=points, next_cursor=None)
        return _csv_download(f"pnl-{_FILE_NAME.sub('_', bot_id)}", PnlPoint, page, None)
    return Response(PnlSeries(bot=bot_id, points=points))


history_router = Router(
    path="/api/v1",
    route_handlers=[history_orders, history_fills, pnl_bots, pnl_accounts, pnl_bot_series],
    tags=["history"],
)
"""``/api/v1/history/*`` and ``/api/v1/pnl/*`` (module docstring)."""
