"""Ledger statements for many orders in one round trip: execution's group commit.

The SQL, its parameters and the reading of its records, with no I/O:
:class:`~tradebus.ledger.store.Ledger` runs them. With them
:meth:`~tradebus.ledger.store.Ledger.find_intents`,
:meth:`~tradebus.ledger.store.Ledger.find_or_insert_orders` and
:meth:`~tradebus.ledger.store.Ledger.set_orders_status` do for a fetch batch
of intents, in one statement (and at most one commit), what
:meth:`~tradebus.ledger.store.Ledger.get_order`,
:meth:`~tradebus.ledger.store.Ledger.find_rejection`,
:meth:`~tradebus.ledger.store.Ledger.insert_order` and
:meth:`~tradebus.ledger.store.Ledger.set_order_status` do for one.

* :data:`FIND_OR_INSERT_ORDERS` with :func:`find_or_insert_args`, read by
  :func:`found_and_created`: what the ledger holds of some intent keys, and
  the insert of the new orders (none: a pure lookup);
* :data:`SET_ORDERS_STATUS` with :func:`set_orders_status_args`: many
  compare-and-set status moves; its records are the keys that moved.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from tradebus.common import order_status
from tradebus.common.order_status import OrderStatus
from tradebus.ledger.rows import (
    ORDER_COLUMNS,
    ORDER_COLUMNS_OF_O,
    IntentKey,
    NewOrder,
    OrderRow,
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


FIND_OR_INSERT_ORDERS = (
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
    " order_type, price, qty, status, trigger_ts, stream_seq, created_ns, updated_ns,"
    " time_in_force, reduce_only)"
    " SELECT t.intent_id, t.account_id, t.user_id, t.source, t.symbol, t.side,"
    " t.order_type, t.price::numeric, t.qty::numeric, 'new', t.trigger_ts,"
    " t.stream_seq, t.ts, t.ts, t.time_in_force, t.reduce_only"
    " FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
    " $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[],"
    " $14::bigint[], $15::text[], $16::boolean[]) WITH ORDINALITY AS t(intent_id,"
    " account_id, user_id, source, symbol, side, order_type, price, qty, trigger_ts,"
    " stream_seq, ts, time_in_force, reduce_only, n)"
    " WHERE NOT EXISTS (SELECT 1 FROM found"
    "   WHERE found.k_user = t.user_id AND found.k_intent = t.intent_id)"
    " ORDER BY t.n"
    f" ON CONFLICT (user_id, intent_id) DO NOTHING RETURNING {ORDER_COLUMNS})"
    " SELECT true AS created, user_id AS k_user, intent_id AS k_intent, true AS has_order,"
    f" {ORDER_COLUMNS}, NULL::text AS r_reason, NULL::text AS r_message FROM created"
    " UNION ALL SELECT false, * FROM found"
)
"""What the ledger holds of some ``(user_id, intent_id)`` keys (an order row, else the
earliest refusal), and the insert as ``new`` of each order whose key has neither, client
order ids allocated in the orders' order; one statement, one commit."""


def find_or_insert_args(keys: list[IntentKey], orders: list[NewOrder]) -> list[list[object]]:
    """The parameters of :data:`FIND_OR_INSERT_ORDERS`: keys, then the orders column-wise."""
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
        [o.time_in_force for o in orders],
        [o.reduce_only for o in orders],
    ]


def found_and_created(
    records: list[asyncpg.Record],
) -> tuple[dict[IntentKey, OrderRow | tuple[str, str]], dict[IntentKey, OrderRow]]:
    """``(found, created)`` from the records of :data:`FIND_OR_INSERT_ORDERS`.

    ``found`` maps each key the ledger held to its order row or to the
    ``(reason, message)`` of its earliest refusal; ``created`` maps the key of
    each order inserted to its new row.
    """
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


SET_ORDERS_STATUS = (
    "UPDATE orders o SET status = u.status, updated_ns = $6,"
    " venue_order_id = COALESCE(u.venue_order_id, o.venue_order_id),"
    " reason = COALESCE(u.reason, o.reason)"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
    " AS u(user_id, intent_id, status, venue_order_id, reason)"
    " WHERE o.user_id = u.user_id AND o.intent_id = u.intent_id"
    " AND EXISTS (SELECT 1 FROM unnest($7::text[], $8::text[]) AS t(old, new)"
    "             WHERE t.old = o.status AND t.new = u.status)"
    " RETURNING o.user_id, o.intent_id"
)
"""Move each order to its status where the order state machine allows it from where the
order is; returns the ``user_id, intent_id`` of the rows that moved."""


def set_orders_status_args(
    updates: list[tuple[IntentKey, OrderStatus, str | None, str | None]], ts: int
) -> list[object]:
    """The parameters of :data:`SET_ORDERS_STATUS`: the updates column-wise, ``ts`` (ns),
    and every allowed ``(old, new)`` move."""
    return [
        [u[0][0] for u in updates],
        [u[0][1] for u in updates],
        [u[1] for u in updates],
        [u[2] for u in updates],
        [u[3] for u in updates],
        ts,
        *_ALLOWED_MOVES,
    ]
