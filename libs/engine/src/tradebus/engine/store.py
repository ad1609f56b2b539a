"""Where the execution core keeps orders, refusals and fills: a port, and its in-memory form.

:class:`OrderStore` is everything the core (:mod:`tradebus.engine.core`) asks
of its store. The execution service gives it the Postgres ledger
(:class:`tradebus.ledger.store.Ledger`: durable, shared with the reconciler);
a backtest and the tests' simulation give it :class:`MemoryStore`. Both keep
the same rules, so the core behaves the same on either:

* an order row is keyed by ``(user_id, intent_id)``: inserting one that
  exists returns the existing row (a redelivery), and the venue client order
  id is allocated at the insert (1, 2, 3, ... in insert order; like the
  ledger's sequence, a single insert that finds the row uses a number up);
* a refusal is kept once per ``(stream, stream_seq)``; the earliest refusal
  of an intent id is what a later intent with that id is refused with;
* every status change is a compare-and-set under the order state machine
  (:mod:`tradebus.common.order_status`): a move the table does not allow from
  where the order is changes nothing and returns False;
* a fill is keyed by ``(venue, account_id, trade_id)`` (a duplicate is a
  no-op); it adds to the order's filled quantity, moves its status
  (:func:`~tradebus.common.order_status.after_fill`) and books its journal
  entries, whose ids count up from 1.

Every method is a coroutine so the Postgres ledger can be one; the memory
store's never wait, so a core on it runs to the end of each call without
yielding (:func:`tradebus.engine.sync.run_sync`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import msgspec

from tradebus.common import order_status
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.order_status import OrderStatus
from tradebus.ledger.entries import JournalEntry
from tradebus.ledger.rows import BookedFill, FillRow, IntentKey, NewOrder, OrderRow, Rejection

Found = OrderRow | tuple[str, str]
"""What a store holds of an intent id: its order row, or its earliest refusal
``(reason, message)``."""


class OrderStore(Protocol):
    """The execution core's store (module docstring)."""

    async def find_intents(self, keys: list[IntentKey]) -> dict[IntentKey, Found]:
        """For each key, its order row or earliest refusal; keys with neither are left out."""
        ...

    async def insert_order(self, order: NewOrder) -> tuple[OrderRow, bool]:
        """Insert ``order`` as ``new``; ``(row, created)``, the existing row if there is one."""
        ...

    async def find_or_insert_orders(
        self, keys: list[IntentKey], orders: list[NewOrder]
    ) -> tuple[dict[IntentKey, Found], dict[IntentKey, OrderRow]]:
        """:meth:`find_intents` of ``keys``, and the insert of each of ``orders`` whose key
        has neither a row nor a refusal; ``(found, created by key)``. A value the store
        cannot hold fails the whole call and inserts nothing."""
        ...

    async def get_order(self, user_id: UserId, intent_id: IntentId) -> OrderRow | None:
        """The order ``user_id`` placed with ``intent_id``, or None."""
        ...

    async def open_orders(
        self, account_id: AccountId, symbol: str | None = None, source: str | None = None
    ) -> list[OrderRow]:
        """Open orders of an account by client order id, optionally of one symbol or source."""
        ...

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
        """Move an order to ``status`` if the state machine allows it; True if it moved."""
        ...

    async def set_orders_status(
        self, updates: list[tuple[IntentKey, OrderStatus, str | None, str | None]], ts: int
    ) -> set[IntentKey]:
        """:meth:`set_order_status` of many ``(key, status, venue_order_id, reason)``; the keys
        that moved."""
        ...

    async def record_rejection(self, rejection: Rejection) -> None:
        """Keep a refused intent (once per stream message)."""
        ...

    async def record_fill(self, fill: FillRow) -> tuple[int, OrderRow] | None:
        """Book a fill and its journal entries; ``(last journal id, order as updated)``, or
        None for a duplicate."""
        ...

    async def fill_history(self) -> list[BookedFill]:
        """Every booked fill, in booking order."""
        ...

    async def last_journal_id(self) -> int:
        """Id of the newest journal entry (0 when none)."""
        ...


class MemoryStore:
    """:class:`OrderStore` in memory (module docstring): a backtest's, the tests' simulation's.

    Attributes
    ----------
    journal
        Every journal entry booked, in order (entry ``i`` has id ``i + 1``).
    rejections
        Every refusal kept, in order.
    """

    def __init__(self) -> None:
        self._orders: dict[IntentKey, OrderRow] = {}
        self._by_client_id: dict[int, IntentKey] = {}
        self._next_client_id = 0
        self._refused: dict[IntentKey, tuple[str, str]] = {}
        self._kept: set[tuple[str | None, int]] = set()
        self._fills: dict[tuple[str, str, str], BookedFill] = {}
        self.journal: list[JournalEntry] = []
        self.rejections: list[Rejection] = []

    async def find_intents(self, keys: list[IntentKey]) -> dict[IntentKey, Found]:
        """See :meth:`OrderStore.find_intents`."""
        return self._find(keys)

    def _find(self, keys: list[IntentKey]) -> dict[IntentKey, Found]:
        found: dict[IntentKey, Found] = {}
        for key in keys:
            row = self._orders.get(key)
            if row is not None:
                found[key] = row
            elif key in self._refused:
                found[key] = self._refused[key]
        return found

    async def insert_order(self, order: NewOrder) -> tuple[OrderRow, bool]:
        """See :meth:`OrderStore.insert_order`."""
        key = (order.user_id, order.intent_id)
        existing = self._orders.get(key)
        if existing is not None:
            self._next_client_id += 1  # as a Postgres sequence, a conflicting insert uses one
            return existing, False
        return self._insert(order), True

    def _insert(self, order: NewOrder) -> OrderRow:
        self._next_client_id += 1
        client_order_id = self._next_client_id
        row = OrderRow(
            user_id=order.user_id,
            intent_id=order.intent_id,
            account_id=order.account_id,
            source=order.source,
            client_order_id=client_order_id,
            venue_order_id=None,
            symbol=order.symbol,
            side=order.side,
            order_type=order.order_type,
            price=order.price,
            qty=order.qty,
            filled_qty=Decimal(0),
            status=OrderStatus.NEW,
            reason=None,
            trigger_ts=order.trigger_ts,
            created_ns=order.ts,
            time_in_force=order.time_in_force,
            reduce_only=order.reduce_only,
        )
        key = (order.user_id, order.intent_id)
        self._orders[key] = row
        self._by_client_id[client_order_id] = key
        return row

    async def find_or_insert_orders(
        self, keys: list[IntentKey], orders: list[NewOrder]
    ) -> tuple[dict[IntentKey, Found], dict[IntentKey, OrderRow]]:
        """See :meth:`OrderStore.find_or_insert_orders`."""
        found = self._find(keys)
        created: dict[IntentKey, OrderRow] = {}
        for order in orders:
            key = (order.user_id, order.intent_id)
            if key not in found and key not in self._orders:
                created[key] = self._insert(order)
        return found, created

    async def get_order(self, user_id: UserId, intent_id: IntentId) -> OrderRow | None:
        """See :meth:`OrderStore.get_order`."""
        return self._orders.get((user_id, intent_id))

    async def open_orders(
        self, account_id: AccountId, symbol: str | None = None, source: str | None = None
    ) -> list[OrderRow]:
        """See :meth:`OrderStore.open_orders`."""
        return sorted(
            (
                r
                for r in self._orders.values()
                if r.account_id == account_id
                and r.status in order_status.OPEN
                and (symbol is None or r.symbol == symbol)
                and (source is None or r.source == source)
            ),
            key=lambda r: r.client_order_id,
        )

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
        """See :meth:`OrderStore.set_order_status`."""
        return self._move((user_id, intent_id), status, venue_order_id, reason)

    def _move(
        self, key: IntentKey, status: OrderStatus, venue_order_id: str | None, reason: str | None
    ) -> bool:
        row = self._orders.get(key)
        if row is None or not order_status.can_become(row.status, status):
            return False
        self._orders[key] = _replace(
            row,
            status=OrderStatus(status),
            venue_order_id=venue_order_id if venue_order_id is not None else row.venue_order_id,
            reason=reason if reason is not None else row.reason,
        )
        return True

    async def set_orders_status(
        self, updates: list[tuple[IntentKey, OrderStatus, str | None, str | None]], ts: int
    ) -> set[IntentKey]:
        """See :meth:`OrderStore.set_orders_status`."""
        return {key for key, status, vid, reason in updates if self._move(key, status, vid, reason)}

    async def record_rejection(self, rejection: Rejection) -> None:
        """See :meth:`OrderStore.record_rejection`."""
        if rejection.stream_seq is not None:
            where = (rejection.stream, rejection.stream_seq)
            if where in self._kept:
                return
            self._kept.add(where)
        self.rejections.append(rejection)
        if rejection.user_id is not None and rejection.intent_id is not None:
            key = (rejection.user_id, rejection.intent_id)
            self._refused.setdefault(key, (rejection.reason, rejection.message))

    async def record_fill(self, fill: FillRow) -> tuple[int, OrderRow] | None:
        """See :meth:`OrderStore.record_fill`."""
        fill_key = (fill.venue, fill.account_id, fill.trade_id)
        if fill_key in self._fills:
            return None
        key = self._by_client_id[fill.client_order_id]
        row = self._orders[key]
        filled = row.filled_qty + fill.qty
        status = order_status.after_fill(row.status, filled, row.qty)
        row = self._orders[key] = _replace(row, filled_qty=filled, status=status)
        self._fills[fill_key] = BookedFill(
            account_id=fill.account_id,
            symbol=fill.symbol,
            side=fill.side,
            price=fill.price,
            qty=fill.qty,
            fee=fill.fee,
            fee_asset=fill.fee_asset,
            recorded_ns=fill.ts,
            source=row.source,
        )
        self.journal.extend(fill.entries)
        return (len(self.journal) if fill.entries else 0), row

    async def fill_history(self) -> list[BookedFill]:
        """See :meth:`OrderStore.fill_history`."""
        return list(self._fills.values())

    async def last_journal_id(self) -> int:
        """See :meth:`OrderStore.last_journal_id`."""
        return len(self.journal)

    def orders(self) -> list[OrderRow]:
        """Every order row, by client order id."""
        return sorted(self._orders.values(), key=lambda r: r.client_order_id)


def _replace(row: OrderRow, **changes: object) -> OrderRow:
    return msgspec.structs.replace(row, **changes)
