"""Ledger statements for many orders in one round trip: execution's group commit.

:meth:`BatchWrites.find_intents`, :meth:`BatchWrites.find_or_insert_orders`
and :meth:`BatchWrites.set_orders_status` do for a fetch batch of intents,
in one statement (and at most one commit), what
:meth:`~tradebus.ledger.store.Ledger.get_order`,
:meth:`~tradebus.ledger.store.Ledger.find_rejection`,
:meth:`~tradebus.ledger.store.Ledger.insert_order` and
:meth:`~tradebus.ledger.store.Ledger.set_order_status` do for one.
:class:`BatchWrites` is a base of :class:`~tradebus.ledger.store.Ledger`
(it needs its ``_pool``).
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from tradebus.common import order_status
from tradebus.ledger.rows import (
    ORDER_COLUMNS,
    ORDER_COLUMNS_OF_O,
    IntentKey,
    NewOrder,
    OrderRow,
    OrderStatus,
    order_row_of,
)

_ALLOWED_MOVES: tuple[list[str], list[str]] = (
    [old.value for old, nxt in order_status.TRANSITIONS.items() for _ in nxt],
    [new.value for nxt in order_status.TRANSITIONS.values() for new in nxt],
)
"""Every ``(old, new)`` move of the order state machine, as two parallel arrays."""


def _numeric_text(value: Decimal | None) -> str | None:
    """A NUMERIC as text for a ``text[]`` parameter (cast in SQL), as the codec sends it."""
    return None if value is None else str(value)


_FIND_OR_INSERT_ORDERS = (
    # what the ledger holds of the keys: one primary-key probe each (LIMIT 1: a
    # lateral subquery, never turned into a join that could scan every order)
    "WITH found AS (SELECT k.user_id AS k_user, k.intent_id AS k_intent,"
    f" o.user_id IS NOT NULL AS has_order, {ORDER_COLUMNS_OF_O},"
    " r.reason AS r_reason, r.message AS r_message"
    " FROM unnest($1::text[], $2::text[]) AS k(user_id, intent_id)"
    f" LEFT JOIN LATERAL (SELECT {ORDER_COLUMNS} FROM orders"
    "   WHERE user_id = k.user_id AND intent_id = k.intent_id LIMIT 1) o ON true"
    " LEFT JOIN LATERAL (SELECT ri.reason, ri.message FROM rejected_intents ri"
    "   WHERE ri.user_id = k.user_id AND ri.intent_id = k.intent_id"
    "   AND o.user_id IS NULL ORDER BY ri.id LIMIT 1) r ON true"
    " WHERE o.user_id IS NOT NULL OR r.reason IS NOT NULL),"
    # the new orders, unless found
    " created AS (INSERT INTO orders (intent_id, account_id, user_id, source, symbol, side,"
    " order_type, price, qty, status, trigger_ts, stream_seq, created_ns, updated_ns)"
    " SELECT t.intent_id, t.account_id, t.user_id, t.source, t.symbol, t.side,"
    " t.order_type, t.price::numeric, t.qty::numeric, 'new', t.trigger_ts,"
    " t.stream_seq, t.ts, t.ts"
    " FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
    " $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[],"
    " $14::bigint[]) WITH ORDINALITY AS t(intent_id, account_id, user_id, source,"
    " symbol, side, order_type, price, qty, trigger_ts, stream_seq, ts, n)"
    " WHERE NOT EXISTS (SELECT 1 FROM found"
    "   WHERE found.k_user = t.user_id AND found.k_intent = t.intent_id)"
    " ORDER BY t.n"
    f" ON CONFLICT (user_id, intent_id) DO NOTHING RETURNING {ORDER_COLUMNS})"
    " SELECT true AS created, user_id AS k_user, intent_id AS k_intent, true AS has_order,"
    f" {ORDER_COLUMNS}, NULL::text AS r_reason, NULL::text AS r_message FROM created"
    " UNION ALL SELECT false, * FROM found"
)


def _find_or_insert_args(keys: list[IntentKey], orders: list[NewOrder]) -> list[list[object]]:
    """The parameters of :data:`_FIND_OR_INSERT_ORDERS`: keys, then the orders column-wise."""
    return [
        [k[0] for k in keys],
        [k[1] for k in keys],
        [o.intent_id for o in orders],
        [o.account_id for o in orders],
        [o.user_id for o in orders],
        [o.source for o in orders],
        [o.symbol for o in orders],
        [o.side for o in orders],
        [o.order_type for o in orders],
        [_numeric_text(o.price) for o in orders],
        [_numeric_text(o.qty) for o in orders],
        [o.trigger_ts for o in orders],
        [o.stream_seq for o in orders],
        [o.ts for o in orders],
    ]


class BatchWrites:
    """The batch statements of the ledger (module docstring)."""

    _pool: asyncpg.Pool

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
            _FIND_OR_INSERT_ORDERS, *_find_or_insert_args(keys, orders)
        )
        found: dict[IntentKey, OrderRow | tuple[str, str]] = {}
        created: dict[IntentKey, OrderRow] = {}
        for r in records:
            key = (r["k_user"], r["k_intent"])
            if r["created"]:
                created[key] = order_row_of(r)
            elif r["has_order"]:
                found[key] = order_row_of(r)
            else:
                found[key] = (r["r_reason"], r["r_message"])
        return found, created

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
            "UPDATE orders o SET status = u.status, updated_ns = $6,"
            " venue_order_id = COALESCE(u.venue_order_id, o.venue_order_id),"
            " reason = COALESCE(u.reason, o.reason)"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
            " AS u(user_id, intent_id, status, venue_order_id, reason)"
            " WHERE o.user_id = u.user_id AND o.intent_id = u.intent_id"
            " AND EXISTS (SELECT 1 FROM unnest($7::text[], $8::text[]) AS t(old, new)"
            "             WHERE t.old = o.status AND t.new = u.status)"
            " RETURNING o.user_id, o.intent_id",
            [u[0][0] for u in updates],
            [u[0][1] for u in updates],
            [u[1] for u in updates],
            [u[2] for u in updates],
            [u[3] for u in updates],
            ts,
            *_ALLOWED_MOVES,
        )
        return {(r["user_id"], r["intent_id"]) for r in records}
