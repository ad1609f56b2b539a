"""Ledger writes and reads over asyncpg.

Only execution calls the order/fill/journal writers; the reconciler calls
:meth:`Ledger.insert_recon_report` and the reads. Every multi-row write is one
transaction. Idempotency (DESIGN.md, "Execution"):

* an order row is keyed by its ``intent_id``: :meth:`Ledger.insert_order`
  returns the existing row on a redelivery instead of creating a second one;
* a fill is keyed by ``(venue, account_id, trade_id)`` (both sides of a trade
  between two of our accounts are booked): :meth:`Ledger.record_fill` books a
  duplicate as a no-op;
* a rejected intent is keyed by its JetStream stream sequence.

The batch statements (:mod:`tradebus.ledger.batches`) do for many orders in
one round trip what the single-order methods here do for one; the row types
are in :mod:`tradebus.ledger.rows`. Every status change is a compare-and-set
under the order state machine (:mod:`tradebus.common.order_status`).
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from tradebus.common import order_status
from tradebus.ledger.batches import BatchWrites
from tradebus.ledger.entries import FILL_KINDS, JournalEntry
from tradebus.ledger.history import HistoryReads
from tradebus.ledger.reconciliation import ReconciliationWrites
from tradebus.ledger.rows import (
    OPEN_STATUSES,
    ORDER_COLUMNS,
    FillRow,
    NewOrder,
    OrderRow,
    OrderStatus,
    Rejection,
    order_row,
)

MAX_PAYLOAD_BYTES = 65_536


async def init_connection(conn: asyncpg.Connection) -> None:
    """Read NUMERIC as text, so ``60000`` comes back as ``Decimal("60000")``, not ``6E+4``.

    Pass as ``init=`` to :func:`asyncpg.create_pool`.
    """
    await conn.set_type_codec(
        "numeric", encoder=str, decoder=Decimal, schema="pg_catalog", format="text"
    )


SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}
"""Session settings of every ledger connection.

Each execution of a prepared statement is planned for its values and the
table as it is now. A generic plan is fixed once, after five executions: on
a young ledger (a few hundred orders, no statistics yet) it chose the
``orders_by_source`` index for a primary-key lookup of an order, so every
later lookup scanned all of that user's orders (1 ms at 25,000 orders, and
growing). The ledger's statements are few and cheap to plan.
"""


async def create_pool(url: str, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """An asyncpg pool to the ledger with :func:`init_connection` and
    :data:`SERVER_SETTINGS` applied."""
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        server_settings=SERVER_SETTINGS,
    )


class Ledger(BatchWrites, HistoryReads, ReconciliationWrites):
    """The Postgres ledger behind an :class:`asyncpg.Pool`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # ---------------------------------------------------------------- accounts
    async def ensure_account(
        self, account_id: str, user_id: str, venue: str, deposits: list[JournalEntry], ts: int
    ) -> bool:
        """Create the account with its starting ``deposits`` unless it exists.

        Returns True if it was created now. An existing account is left as it
        is (its owner is not changed: ownership is fixed at creation).

        Raises
        ------
        ValueError
            If the account exists with another owner or venue.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO accounts (id, user_id, venue, created_ns) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (id) DO NOTHING RETURNING id",
                account_id,
                user_id,
                venue,
                ts,
            )
            if row is None:
                existing = await conn.fetchrow(
                    "SELECT user_id, venue FROM accounts WHERE id = $1", account_id
                )
                if (existing["user_id"], existing["venue"]) != (user_id, venue):
                    raise ValueError(
                        f"account {account_id} exists for user {existing['user_id']} on "
                        f"{existing['venue']}, config says user {user_id} on {venue}"
                    )
                return False
            await _insert_entries(conn, deposits, ts)
            return True

    async def account_ids(self) -> list[str]:
        """Every account of the ledger, by id."""
        return [r["id"] for r in await self._pool.fetch("SELECT id FROM accounts ORDER BY id")]

    # ------------------------------------------------------------------ orders
    async def insert_order(self, order: NewOrder) -> tuple[OrderRow, bool]:
        """Insert ``order`` as ``new``; on an existing ``intent_id`` return that row.

        Returns ``(row, created)``; ``created`` is False for a redelivery.
        The venue client order id is allocated here, before any venue call.
        """
        async with self._pool.acquire() as conn:
            record = await conn.fetchrow(
                "INSERT INTO orders (intent_id, account_id, user_id, source, symbol, side,"
                " order_type, price, qty, status, trigger_ts, stream_seq, created_ns, updated_ns)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'new',$10,$11,$12,$12)"
                f" ON CONFLICT (user_id, intent_id) DO NOTHING RETURNING {ORDER_COLUMNS}",
                order.intent_id,
                order.account_id,
                order.user_id,
                order.source,
                order.symbol,
                order.side,
                order.order_type,
                order.price,
                order.qty,
                order.trigger_ts,
                order.stream_seq,
                order.ts,
            )
            if record is not None:
                return order_row(record), True
            record = await conn.fetchrow(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND intent_id = $2",
                order.user_id,
                order.intent_id,
            )
            return order_row(record), False

    async def get_order(self, user_id: str, intent_id: str) -> OrderRow | None:
        """The order ``user_id`` placed with ``intent_id``, or None."""
        record = await self._pool.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND intent_id = $2",
            user_id,
            intent_id,
        )
        return None if record is None else order_row(record)

    async def get_order_by_client_id(self, client_order_id: int) -> OrderRow | None:
        """The order with that venue client order id, or None."""
        record = await self._pool.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE client_order_id = $1", client_order_id
        )
        return None if record is None else order_row(record)

    async def get_order_by_venue_id(self, account_id: str, venue_order_id: str) -> OrderRow | None:
        """The order of ``account_id`` the venue knows as ``venue_order_id``, or None."""
        record = await self._pool.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = $1 AND venue_order_id = $2",
            account_id,
            venue_order_id,
        )
        return None if record is None else order_row(record)

    async def oldest_open_order_ns(self, account_id: str) -> int | None:
        """When the oldest open order of ``account_id`` was created (ns), or None."""
        return await self._pool.fetchval(
            "SELECT min(created_ns) FROM orders WHERE account_id = $1 AND status = ANY($2::text[])",
            account_id,
            list(OPEN_STATUSES),
        )

    async def open_orders(
        self, account_id: str, symbol: str | None = None, source: str | None = None
    ) -> list[OrderRow]:
        """Open orders of an account (oldest first), optionally of one symbol or source."""
        records = await self._pool.fetch(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = $1"
            " AND status = ANY($2::text[])"
            " AND ($3::text IS NULL OR symbol = $3) AND ($4::text IS NULL OR source = $4)"
            " ORDER BY client_order_id",
            account_id,
            list(OPEN_STATUSES),
            symbol,
            source,
        )
        return [order_row(r) for r in records]

    async def set_order_status(
        self,
        user_id: str,
        intent_id: str,
        status: OrderStatus,
        ts: int,
        *,
        venue_order_id: str | None = None,
        reason: str | None = None,
    ) -> bool:
        """Move an order to ``status`` if the order state machine allows it from where it is
        (:func:`tradebus.common.order_status.sources`: compare-and-set).

        A fill recorded concurrently may already have moved it on; the guard
        keeps a late ``accepted`` from overwriting ``filled``. Returns True if
        the row changed.
        """
        result = await self._pool.execute(
            "UPDATE orders SET status = $2, updated_ns = $3,"
            " venue_order_id = COALESCE($4, venue_order_id), reason = COALESCE($5, reason)"
            " WHERE user_id = $7 AND intent_id = $1 AND status = ANY($6::text[])",
            intent_id,
            status,
            ts,
            venue_order_id,
            reason,
            list(order_status.sources(status)),
            user_id,
        )
        return result.endswith(" 1")

    # ------------------------------------------------------------------- fills
    async def record_fill(self, fill: FillRow) -> tuple[int, OrderRow] | None:
        """Book ``fill`` and its journal entries in one transaction.

        Updates the order's filled quantity and status. Returns the id of the
        last journal entry written and the order as updated, or None if the
        fill was already recorded (a duplicate is a no-op).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO fills (venue, trade_id, client_order_id, account_id, symbol, side,"
                " price, qty, fee, fee_asset, liquidity, ts_event, recorded_ns)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)"
                " ON CONFLICT (venue, account_id, trade_id) DO NOTHING RETURNING 1",
                fill.venue,
                fill.trade_id,
                fill.client_order_id,
                fill.account_id,
                fill.symbol,
                fill.side,
                fill.price,
                fill.qty,
                fill.fee,
                fill.fee_asset,
                fill.liquidity,
                fill.ts_event,
                fill.ts,
            )
            if inserted is None:
                return None
            # order_status.after_fill: an open order becomes filled or partially filled,
            # a terminal one keeps its status (its filled quantity still counts)
            record = await conn.fetchrow(
                "UPDATE orders SET filled_qty = filled_qty + $2, updated_ns = $3,"
                " status = CASE WHEN status <> ALL($4::text[]) THEN status"
                "               WHEN filled_qty + $2 >= qty THEN 'filled'"
                "               ELSE 'partially_filled' END"
                f" WHERE client_order_id = $1 RETURNING {ORDER_COLUMNS}",
                fill.client_order_id,
                fill.qty,
                fill.ts,
                list(OPEN_STATUSES),
            )
            last_id = await _insert_entries(conn, fill.entries, fill.ts)
            return last_id, order_row(record)

    # ------------------------------------------------- paper venue restore (reads)
    async def open_orders_in_placement_order(self, account_id: str) -> list[OrderRow]:
        """Open orders of an account in the order the venue most likely took them.

        Accepted / partially filled rows first, by ``updated_ns`` (ns; the
        paper venue fills in full, so an open paper row was last updated when
        the venue accepted it), then ``new`` / ``unknown`` rows (the venue has
        not answered them); ties by client order id. Used to rebuild the paper
        venue, whose perpetual margin depends on placement order.
        """
        records = await self._pool.fetch(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = $1"
            " AND status = ANY($2::text[])"
            " ORDER BY status IN ('new', 'unknown'), updated_ns, client_order_id",
            account_id,
            list(OPEN_STATUSES),
        )
        return [order_row(r) for r in records]

    # -------------------------------------------------------------- rejections
    async def record_rejection(self, rejection: Rejection) -> None:
        """Keep a refused intent; a redelivered one (same stream and sequence) is kept once."""
        await self._pool.execute(
            "INSERT INTO rejected_intents (stream_seq, subject, user_id, source, intent_id,"
            " account_id, reason, message, payload, ts, stream)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
            " ON CONFLICT (stream, stream_seq) DO NOTHING",
            rejection.stream_seq,
            rejection.subject,
            rejection.user_id,
            rejection.source,
            rejection.intent_id,
            rejection.account_id,
            rejection.reason,
            rejection.message,
            rejection.payload[:MAX_PAYLOAD_BYTES],
            rejection.ts,
            rejection.stream,
        )

    async def find_rejection(self, user_id: str, intent_id: str) -> tuple[str, str] | None:
        """``(reason, message)`` of an earlier refusal of this user's intent id, or None."""
        record = await self._pool.fetchrow(
            "SELECT reason, message FROM rejected_intents WHERE user_id = $1 AND intent_id = $2"
            " ORDER BY id LIMIT 1",
            user_id,
            intent_id,
        )
        return None if record is None else (record["reason"], record["message"])

    # ---------------------------------------------------------------- balances
    async def balances(self, account_id: str, up_to_id: int | None = None) -> dict[str, Decimal]:
        """Ledger balance per asset of one account: the sum of its journal entries.

        With ``up_to_id`` (a venue snapshot's watermark), the entries fills
        book (``fill``, ``fee``, ``realized_pnl``: :data:`FILL_KINDS`) newer
        than it are left out: they are fills the snapshot does not reflect
        yet. Every other entry (deposits, adjustments) always counts, so
        nothing written behind execution's back can hide from a comparison.
        A perpetual position appears as its pseudo-asset (``BTCUSDT-PERP``).
        """
        records = await self._pool.fetch(
            "SELECT asset, sum(amount) AS total FROM journal WHERE account_id = $1"
            " AND ($2::bigint IS NULL OR id <= $2 OR kind <> ALL($3::text[]))"
            " GROUP BY asset ORDER BY asset",
            account_id,
            up_to_id,
            list(FILL_KINDS),
        )
        return {r["asset"]: r["total"] for r in records}

    async def last_journal_id(self) -> int:
        """Id of the newest journal entry (0 when empty)."""
        return await self._pool.fetchval("SELECT coalesce(max(id), 0) FROM journal")


async def _insert_entries(conn: asyncpg.Connection, entries: list[JournalEntry], ts: int) -> int:
    """Insert journal entries; return the id of the last one (0 if none)."""
    last = 0
    for e in entries:
        last = await conn.fetchval(
            "INSERT INTO journal (account_id, asset, amount, kind, ref, ts)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            e.account,
            e.asset,
            e.amount,
            e.kind,
            e.ref,
            ts,
        )
    return last
