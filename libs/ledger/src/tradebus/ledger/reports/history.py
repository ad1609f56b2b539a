"""Pages of a user's orders and fills, newest first, with filters.

:func:`orders_page` and :func:`fills_page` are keyset pages
(:mod:`tradebus.ledger.reports.scope`):

* orders in the order of ``(created_ns, client_order_id)`` (when execution
  wrote the row; the client order id is unique);
* fills in the order of ``(ts_event, seq)`` (the venue's time of the trade;
  ``seq`` is the ledger's booking order, migration 0007).

Each filter narrows an index range of migration 0007 (user, user and bot,
account; time), so a page costs about the same at the first row as at the
millionth (about 1-3 ms over 100,000 rows). ``symbol`` and ``status`` only
filter the rows of that range: a page of a rare status over a long history
reads through it. A time range is ``[since_ns, until_ns)`` in ns since the epoch.
Money is :class:`~decimal.Decimal` in the units the ledger holds (price in
quote per base, quantities in base units, fees in ``fee_asset``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

import asyncpg
import msgspec

from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.order_status import OrderStatus
from tradebus.ledger.reports.scope import (
    LedgerReader,
    Page,
    Report,
    ReportArgumentError,
    UserScope,
    Where,
    check_limit,
    chosen_rows,
    decode_cursor,
    encode_cursor,
)


class OrderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One order as the history shows it.

    ``bot`` is the order's source: the bot id, or ``manual`` for an intent a
    person sent. ``price`` is None for a market order. ``filled_qty`` (base)
    is what the ledger has booked; ``avg_fill_price`` (quote per base) the
    quantity-weighted price of its fills, None before the first.
    ``created_ns`` is when execution wrote the order (before asking the
    venue), ``updated_ns`` its last change (ns).
    """

    TIME_FIELDS: ClassVar[dict[str, str]] = {"created_ns": "created_at", "updated_ns": "updated_at"}
    """Time fields (int ns) and the name of their ISO-8601 column in CSV
    (:mod:`tradebus.ledger.reports.export`)."""

    user: UserId
    intent_id: IntentId
    bot: str
    account: AccountId
    venue: str
    symbol: str
    side: str
    type: str
    price: Decimal | None
    qty: Decimal
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    status: OrderStatus
    reason: str | None
    client_order_id: int
    venue_order_id: str | None
    created_ns: int
    updated_ns: int


class FillRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One fill as the history shows it.

    ``price`` in quote per base, ``qty`` in base units, ``notional`` = ``price
    * qty`` (quote); ``fee`` is in ``fee_asset`` as the venue charged it (the
    base asset for Backpack buys). ``ts_event`` is the venue's time of the
    trade, ``recorded_ns`` when execution booked it (ns). ``intent_id`` and
    ``bot`` are those of the order it fills.
    """

    TIME_FIELDS: ClassVar[dict[str, str]] = {"ts_event": "time", "recorded_ns": "recorded_at"}
    """Time fields (int ns) and the name of their ISO-8601 column in CSV."""

    user: UserId
    trade_id: str
    intent_id: IntentId
    bot: str
    account: AccountId
    venue: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    notional: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: str
    ts_event: int
    recorded_ns: int


_STATUSES = frozenset(s.value for s in OrderStatus)

_ORDERS_SELECT = (
    "SELECT o.user_id, o.intent_id, o.source, o.account_id, a.venue, o.symbol, o.side,"
    " o.order_type, o.price, o.qty, o.filled_qty, o.status, o.reason, o.client_order_id,"
    " o.venue_order_id, o.created_ns, o.updated_ns, fs.fill_qty, fs.fill_notional"
    " FROM orders o JOIN accounts a ON a.id = o.account_id"
    " LEFT JOIN LATERAL (SELECT sum(f.qty) AS fill_qty, sum(f.qty * f.price) AS fill_notional"
    "   FROM fills f WHERE f.client_order_id = o.client_order_id) fs ON true"
)

_FILLS_SELECT = (
    "SELECT f.user_id, f.trade_id, o.intent_id, f.source, f.account_id, f.venue, f.symbol,"
    " f.side, f.price, f.qty, f.fee, f.fee_asset, f.liquidity, f.ts_event, f.recorded_ns, f.seq"
    " FROM fills f JOIN orders o ON o.client_order_id = f.client_order_id"
)


async def orders_page(
    db: LedgerReader,
    user: UserScope,
    *,
    bot: str | None = None,
    account: str | None = None,
    symbol: str | None = None,
    status: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    cursor: str | None = None,
    limit: int = 100,
    newest_first: bool = True,
) -> Page[OrderRecord]:
    """One page of ``user``'s orders (:data:`~.scope.ALL_USERS`: everyone's).

    Filters (None: any): ``bot`` (the source: a bot id or ``manual``),
    ``account``, ``symbol`` (the venue's id, ``BTCUSDT``), ``status`` (an
    :class:`~tradebus.common.order_status.OrderStatus` value), and
    ``since_ns <= created_ns < until_ns``. Newest first unless
    ``newest_first`` is False; ``cursor`` is the ``next_cursor`` of the page
    before (with any filters: it only positions), ``limit`` rows at most
    (1..1000).

    Raises
    ------
    ReportArgumentError
        An argument is invalid; ``field`` names it.
    InvalidCursor
        ``cursor`` is not one this report made for this direction.
    """
    where = chosen_rows(user, since_ns, until_ns, "o.", bot=bot, account=account, symbol=symbol)
    check_limit(limit)
    if status is not None and status not in _STATUSES:
        raise ReportArgumentError("status", f"expected one of {sorted(_STATUSES)}, got {status!r}")
    where.equal("o.status", status)
    where.time_range("o.created_ns", since_ns, until_ns)
    records, next_cursor = await _keyset(
        db, _ORDERS_SELECT, where, "orders", ("o.created_ns", "o.client_order_id"),
        cursor, limit, newest_first,
    )  # fmt: skip
    return Page(items=[_order_record(r) for r in records], next_cursor=next_cursor)


async def fills_page(
    db: LedgerReader,
    user: UserScope,
    *,
    bot: str | None = None,
    account: str | None = None,
    symbol: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    cursor: str | None = None,
    limit: int = 100,
    newest_first: bool = True,
) -> Page[FillRecord]:
    """One page of ``user``'s fills (:data:`~.scope.ALL_USERS`: everyone's).

    Filters (None: any): ``bot`` (the source of the filled order),
    ``account``, ``symbol``, and ``since_ns <= ts_event < until_ns``. Newest
    (by the venue's trade time) first unless ``newest_first`` is False;
    ``cursor`` and ``limit`` as in :func:`orders_page`.

    Raises
    ------
    ReportArgumentError
        An argument is invalid; ``field`` names it.
    InvalidCursor
        ``cursor`` is not one this report made for this direction.
    """
    where = chosen_rows(user, since_ns, until_ns, "f.", bot=bot, account=account, symbol=symbol)
    check_limit(limit)
    where.time_range("f.ts_event", since_ns, until_ns)
    records, next_cursor = await _keyset(
        db, _FILLS_SELECT, where, "fills", ("f.ts_event", "f.seq"), cursor, limit, newest_first
    )
    return Page(items=[_fill_record(r) for r in records], next_cursor=next_cursor)


async def _keyset(
    db: LedgerReader,
    select: str,
    where: Where,
    report: Report,
    keys: tuple[str, str],
    cursor: str | None,
    limit: int,
    newest_first: bool,
) -> tuple[list[asyncpg.Record], str | None]:
    """One keyset page of ``select`` under ``where``, ordered by the two columns ``keys``
    (a time and a unique tie-breaker): at most ``limit`` records after ``cursor``, and
    the cursor of the next page (None on the last).

    Raises
    ------
    InvalidCursor
        ``cursor`` is not one ``report`` made for this direction.
    """
    first, second = keys
    if cursor is not None:
        after = decode_cursor(cursor, report, newest_first)
        where.add(f"({first}, {second}) {'<' if newest_first else '>'} ({{}}, {{}})", *after)
    direction = "DESC" if newest_first else "ASC"
    records = await db.fetch(
        f"{select} {where.sql()} ORDER BY {first} {direction}, {second} {direction}"
        f" LIMIT {where.param(limit + 1)}",
        *where.args,
    )
    if len(records) <= limit:
        return list(records), None
    last = records[limit - 1]
    columns = (first.split(".")[-1], second.split(".")[-1])
    next_cursor = encode_cursor(report, newest_first, (last[columns[0]], last[columns[1]]))
    return list(records[:limit]), next_cursor


def _order_record(r: asyncpg.Record) -> OrderRecord:
    fill_qty: Decimal | None = r["fill_qty"]
    return OrderRecord(
        user=r["user_id"],
        intent_id=r["intent_id"],
        bot=r["source"],
        account=r["account_id"],
        venue=r["venue"],
        symbol=r["symbol"],
        side=r["side"],
        type=r["order_type"],
        price=r["price"],
        qty=r["qty"],
        filled_qty=r["filled_qty"],
        avg_fill_price=r["fill_notional"] / fill_qty if fill_qty else None,
        status=OrderStatus(r["status"]),
        reason=r["reason"],
        client_order_id=r["client_order_id"],
        venue_order_id=r["venue_order_id"],
        created_ns=r["created_ns"],
        updated_ns=r["updated_ns"],
    )


def _fill_record(r: asyncpg.Record) -> FillRecord:
    return FillRecord(
        user=r["user_id"],
        trade_id=r["trade_id"],
        intent_id=r["intent_id"],
        bot=r["source"],
        account=r["account_id"],
        venue=r["venue"],
        symbol=r["symbol"],
        side=r["side"],
        price=r["price"],
        qty=r["qty"],
        notional=r["price"] * r["qty"],
        fee=r["fee"],
        fee_asset=r["fee_asset"],
        liquidity=r["liquidity"],
        ts_event=r["ts_event"],
        recorded_ns=r["recorded_ns"],
    )
