"""The ledger as execution's order store, over asyncpg.

:class:`Ledger` holds what execution, and only execution, writes
(accounts, orders, refusals, fills and their journal entries, adjustment
entries) and the reads its core needs: it is the execution service's
:class:`tradebus.engine.store.OrderStore`. The reconciler reads and writes
through :class:`tradebus.ledger.reconciliation.ReconciliationLedger`; the
paper venue is rebuilt at start from
:class:`tradebus.ledger.history.LedgerHistory`. Each takes a pool from
:func:`tradebus.ledger.pool.create_pool`.

Every multi-row write is one transaction. Idempotency (DESIGN.md, "Execution"):

* an order row is keyed by its ``intent_id``: :meth:`Ledger.insert_order`
  returns the existing row on a redelivery instead of creating a second one;
* a fill is keyed by ``(venue, account_id, trade_id)`` (both sides of a trade
  between two of our accounts are booked): :meth:`Ledger.record_fill` books a
  duplicate as a no-op;
* a rejected intent is keyed by its JetStream stream sequence;
* adjustment entries are written once per ``ref``, and so are a bot's position
  corrections (``bot_adjustments``, once per account and ``ref``).

The batch methods (:meth:`Ledger.find_intents`,
:meth:`Ledger.find_or_insert_orders`, :meth:`Ledger.set_orders_status`, whose
statements are in :mod:`tradebus.ledger.batches`) do for many orders in one
round trip what the single-order methods do for one; the row types are in
:mod:`tradebus.ledger.rows`. Every status change is a compare-and-set under
the order state machine (:mod:`tradebus.common.order_status`).
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from tradebus.common import order_status
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.order_status import OrderStatus
from tradebus.ledger import batches
from tradebus.ledger.entries import JournalEntry
from tradebus.ledger.rows import (
    OPEN_STATUSES,
    ORDER_COLUMNS,
    BookedFill,
    BotAdjustmentRow,
    FillRow,
    IntentKey,
    NewOrder,
    OrderRow,
    Rejection,
    SourceFills,
    order_row,
)

MAX_PAYLOAD_BYTES = 65_536
"""Bytes of a refused intent's payload kept with its refusal (the rest is cut off)."""


class Ledger:
    """Execution's order store: the Postgres ledger behind an :class:`asyncpg.Pool`
    (module docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # ---------------------------------------------------------------- accounts
    async def ensure_account(
        self,
        account_id: AccountId,
        user_id: UserId,
        venue: str,
        deposits: list[JournalEntry],
        ts: int,
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
                assert existing is not None, "the insert conflicted with it"
                if (existing["user_id"], existing["venue"]) != (user_id, venue):
                    raise ValueError(
                        f"account {account_id} exists for user {existing['user_id']} on "
                        f"{existing['venue']}, config says user {user_id} on {venue}"
                    )
                return False
            await _insert_entries(conn, deposits, ts)
            return True

    # ------------------------------------------------------------------ orders
    async def insert_order(self, order: NewOrder) -> tuple[OrderRow, bool]:
        """Insert ``order`` as ``new``; on an existing ``intent_id`` return that row.

        Returns ``(row, created)``; ``created`` is False for a redelivery.
        The venue client order id is allocated here, before any venue call.
        """
        async with self._pool.acquire() as conn:
            record = await conn.fetchrow(
                "INSERT INTO orders (intent_id, account_id, user_id, source, symbol, side,"
                " order_type, price, qty, status, trigger_ts, stream_seq, created_ns, updated_ns,"
                " time_in_force, reduce_only)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'new',$10,$11,$12,$12,$13,$14)"
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
                order.time_in_force,
                order.reduce_only,
            )
            if record is not None:
                return order_row(record), True
            record = await conn.fetchrow(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND intent_id = $2",
                order.user_id,
                order.intent_id,
            )
            assert record is not None, "the insert conflicted with it"
            return order_row(record), False

    async def get_order(self, user_id: UserId, intent_id: IntentId) -> OrderRow | None:
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

    async def get_order_by_venue_id(
        self, account_id: AccountId, venue_order_id: str
    ) -> OrderRow | None:
        """The order of ``account_id`` the venue knows as ``venue_order_id``, or None."""
        record = await self._pool.fetchrow(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = $1 AND venue_order_id = $2",
            account_id,
            venue_order_id,
        )
        return None if record is None else order_row(record)

    async def oldest_open_order_ns(self, account_id: AccountId) -> int | None:
        """When the oldest open order of ``account_id`` was created (ns), or None."""
        return await self._pool.fetchval(
            "SELECT min(created_ns) FROM orders WHERE account_id = $1 AND status = ANY($2::text[])",
            account_id,
            list(OPEN_STATUSES),
        )

    async def open_orders(
        self, account_id: AccountId, symbol: str | None = None, source: str | None = None
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
        user_id: UserId,
        intent_id: IntentId,
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

    # ----------------------------------------------------- orders, in batches
    async def find_intents(
        self, keys: list[IntentKey]
    ) -> dict[IntentKey, OrderRow | tuple[str, str]]:
        """What the ledger already holds of these intents, in one round trip.

        For each ``(user_id, intent_id)``: its order row if there is one (as
        :meth:`get_order`), else the ``(reason, message)`` of its earliest
        refusal (as :meth:`find_rejection`); keys with neither are left out.
        """
        found, _ = await self._find_or_insert(keys, [])
        return found

    async def find_or_insert_orders(
        self, keys: list[IntentKey], orders: list[NewOrder]
    ) -> tuple[dict[IntentKey, OrderRow | tuple[str, str]], dict[IntentKey, OrderRow]]:
        """:meth:`find_intents` of ``keys`` and the insert of ``orders`` as ``new``, in
        one statement (one round trip, one commit).

        An order is inserted only if its key has neither a row nor a refusal
        (as the statement began: what it finds is what was there before).
        Client order ids are allocated in the order of ``orders``. Returns
        ``(found, created)``: what :meth:`find_intents` returns, and the rows
        created by ``(user_id, intent_id)``. A value the ledger cannot hold
        fails the whole statement: nothing is inserted.
        """
        return await self._find_or_insert(keys, orders)

    async def _find_or_insert(
        self, keys: list[IntentKey], orders: list[NewOrder]
    ) -> tuple[dict[IntentKey, OrderRow | tuple[str, str]], dict[IntentKey, OrderRow]]:
        if not keys and not orders:
            return {}, {}
        records = await self._pool.fetch(
            batches.FIND_OR_INSERT_ORDERS, *batches.find_or_insert_args(keys, orders)
        )
        return batches.found_and_created(records)

    async def set_orders_status(
        self,
        updates: list[tuple[IntentKey, OrderStatus, str | None, str | None]],
        ts: int,
    ) -> set[IntentKey]:
        """:meth:`set_order_status` for many orders in one statement (one commit).

        ``updates`` holds ``((user_id, intent_id), status, venue_order_id,
        reason)``; each order moves only if the order state machine allows it
        from where it is (:func:`tradebus.common.order_status.can_become`).
        Returns the keys of the rows that changed.
        """
        if not updates:
            return set()
        records = await self._pool.fetch(
            batches.SET_ORDERS_STATUS, *batches.set_orders_status_args(updates, ts)
        )
        return {(r["user_id"], r["intent_id"]) for r in records}

    # ------------------------------------------------------------------- fills
    async def record_fill(self, fill: FillRow) -> tuple[int, OrderRow] | None:
        """Book ``fill`` and its journal entries in one transaction.

        Updates the order's filled quantity and status. Returns the id of the
        last journal entry written and the order as updated, or None if the
        fill was already recorded (a duplicate is a no-op).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                # user_id and source are the order's (history by user and bot, migration
                # 0007); no such order leaves them NULL and the insert fails (NOT NULL)
                "INSERT INTO fills (venue, trade_id, client_order_id, account_id, symbol, side,"
                " price, qty, fee, fee_asset, liquidity, ts_event, recorded_ns, user_id, source)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,"
                " (SELECT o.user_id FROM orders o WHERE o.client_order_id = $3),"
                " (SELECT o.source FROM orders o WHERE o.client_order_id = $3))"
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
            assert record is not None, "a fill's order exists (foreign key)"
            last_id = await _insert_entries(conn, fill.entries, fill.ts)
            return last_id, order_row(record)

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

    async def find_rejection(self, user_id: UserId, intent_id: IntentId) -> tuple[str, str] | None:
        """``(reason, message)`` of an earlier refusal of this user's intent id, or None."""
        record = await self._pool.fetchrow(
            "SELECT reason, message FROM rejected_intents WHERE user_id = $1 AND intent_id = $2"
            " ORDER BY id LIMIT 1",
            user_id,
            intent_id,
        )
        return None if record is None else (record["reason"], record["message"])

    # ----------------------------------------------------------------- journal
    async def record_adjustment(
        self,
        account_id: AccountId,
        rows: list[tuple[str, Decimal, Decimal | None]],
        ref: str,
        ts: int,
    ) -> bool:
        """Write ``(asset, amount, price)`` adjustment entries once per ``ref``.

        Execution writes them on the reconciler's request (``exec.adjust``):
        a drift is corrected by new entries (kind ``adjustment``, valued at
        ``price``), never by changing old ones. Returns False, writing
        nothing, if entries with this ``ref`` exist for the account.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                "SELECT 1 FROM journal WHERE account_id = $1 AND kind = 'adjustment'"
                " AND ref = $2 LIMIT 1",
                account_id,
                ref,
            )
            if done:
                return False
            await conn.executemany(
                "INSERT INTO journal (account_id, asset, amount, kind, ref, ts, price)"
                " VALUES ($1, $2, $3, 'adjustment', $4, $5, $6)",
                [(account_id, asset, amount, ref, ts, price) for asset, amount, price in rows],
            )
        return True

    async def record_bot_adjustment(self, row: BotAdjustmentRow) -> bool:
        """Journal one correction of a bot's position (migration 0011) once per
        ``(account, ref)``; False, writing nothing, if it was journaled before."""
        done = await self._pool.fetchval(
            "INSERT INTO bot_adjustments (account_id, user_id, source, symbol, asset, kind,"
            " qty, price, old_average, new_average, held, actor, ref, ts)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)"
            " ON CONFLICT (account_id, ref) DO NOTHING RETURNING id",
            *msgspec.structs.astuple(row),
        )
        return done is not None

    async def source_fills(self, account_id: AccountId) -> list[SourceFills]:
        """Every order source's fills of an account summed per symbol, side and fee asset
        (what :func:`tradebus.common.positions.position_change` needs per group)."""
        rows = await self._pool.fetch(
            "SELECT source, symbol, side, fee_asset, sum(qty) AS qty, sum(fee) AS fee"
            " FROM fills WHERE account_id = $1 GROUP BY source, symbol, side, fee_asset",
            account_id,
        )
        return [SourceFills(**dict(r)) for r in rows]

    async def source_adjustments(self, account_id: AccountId) -> dict[tuple[str, str], Decimal]:
        """``(source, asset) -> qty`` summed over the account's bot position corrections."""
        rows = await self._pool.fetch(
            "SELECT source, asset, sum(qty) AS qty FROM bot_adjustments"
            " WHERE account_id = $1 GROUP BY source, asset",
            account_id,
        )
        return {(r["source"], r["asset"]): r["qty"] for r in rows}

    async def record_funding(
        self, account_id: AccountId, asset: str, amount: Decimal, ref: str, ts: int
    ) -> bool:
        """Write one ``funding`` entry (received > 0, paid < 0, in ``asset``) once per
        ``ref`` (:func:`~tradebus.ledger.entries.funding_ref`, migration 0009); False if
        it was booked before."""
        done = await self._pool.fetchval(
            "INSERT INTO journal (account_id, asset, amount, kind, ref, ts)"
            " VALUES ($1, $2, $3, 'funding', $4, $5)"
            " ON CONFLICT (account_id, ref) WHERE kind = 'funding' DO NOTHING RETURNING id",
            account_id,
            asset,
            amount,
            ref,
            ts,
        )
        return done is not None

    async def fill_history(self) -> list[BookedFill]:
        """Every booked fill of every account, in the order execution recorded them.

        Execution's risk state replays them at start.
        """
        return await self._fills("")

    async def account_fills(self, account_id: AccountId) -> list[BookedFill]:
        """Every booked fill of ``account_id`` with its order's source, in booking order."""
        return await self._fills(" WHERE f.account_id = $1", account_id)

    async def _fills(self, where: str, *args: object) -> list[BookedFill]:
        records = await self._pool.fetch(
            "SELECT f.account_id, f.symbol, f.side, f.price, f.qty, f.fee, f.fee_asset,"
            " f.recorded_ns, o.source FROM fills f"
            " JOIN orders o ON o.client_order_id = f.client_order_id"
            f"{where} ORDER BY f.recorded_ns, f.ts_event, f.trade_id",
            *args,
        )
        return [BookedFill(**dict(r)) for r in records]

    async def last_journal_id(self) -> int:
        """Id of the newest journal entry (0 when empty)."""
        return await self._pool.fetchval("SELECT coalesce(max(id), 0) FROM journal")


async def _insert_entries(conn: PoolConnectionProxy, entries: list[JournalEntry], ts: int) -> int:
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
