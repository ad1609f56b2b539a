"""The ledger's rows as Python values, and what reads them from records.

:class:`NewOrder` (an order before the venue is asked), :class:`OrderRow`,
:class:`FillRow` (a fill to book), :class:`BookedFill` (a fill as booked),
:class:`Rejection`, the order statuses, and the column lists and record
readers the ledger's statements share (:mod:`tradebus.ledger.store`,
:mod:`tradebus.ledger.batches`).
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import msgspec

from tradebus.common import order_status
from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.order_status import OrderStatus
from tradebus.ledger.entries import JournalEntry

OPEN_STATUSES: tuple[str, ...] = tuple(sorted(s.value for s in order_status.OPEN))
"""Statuses of an order that may still change (:mod:`tradebus.common.order_status`)."""


class NewOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order row before the venue is asked (status ``new``)."""

    intent_id: IntentId
    account_id: AccountId
    user_id: UserId
    source: str
    symbol: str
    side: str
    order_type: str
    price: Decimal | None
    qty: Decimal
    trigger_ts: int | None
    stream_seq: int | None
    ts: int
    time_in_force: str = "gtc"
    reduce_only: bool = False


class OrderRow(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the ledger knows it; ``(user_id, intent_id)`` is its key."""

    user_id: UserId
    intent_id: IntentId
    account_id: AccountId
    source: str
    client_order_id: int
    venue_order_id: str | None
    symbol: str
    side: str
    order_type: str
    price: Decimal | None
    qty: Decimal
    filled_qty: Decimal
    status: OrderStatus
    reason: str | None
    trigger_ts: int | None
    created_ns: int = 0
    """When the row was inserted (ns), before the venue was asked."""
    time_in_force: str = "gtc"
    """``gtc`` or ``ioc``, as the intent asked (migration 0008)."""
    reduce_only: bool = False
    """The order may only shrink a perpetual position (migration 0010)."""


class FillRow(msgspec.Struct, frozen=True, kw_only=True):
    """A fill to record: its venue key, the order it fills and its journal entries."""

    venue: str
    trade_id: str
    client_order_id: int
    account_id: AccountId
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: str
    ts_event: int
    ts: int
    entries: list[JournalEntry]


class BookedFill(msgspec.Struct, frozen=True, kw_only=True):
    """A fill as the ledger holds it (:meth:`~tradebus.ledger.store.Ledger.fill_history`).

    ``price`` in quote per base, ``qty`` in base units, ``fee`` in
    ``fee_asset``; ``recorded_ns`` is when execution booked it; ``source`` the
    source of its order (a bot id, ``manual``...).
    """

    account_id: AccountId
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    recorded_ns: int
    source: str = ""


class Rejection(msgspec.Struct, frozen=True, kw_only=True):
    """A refused intent to keep (payload truncated to :data:`MAX_PAYLOAD_BYTES`).

    ``stream`` and ``stream_seq`` say where it was stored (``INTENTS_<user>``); a
    redelivery of the same message is kept once.
    """

    stream: str | None
    stream_seq: int | None
    subject: str
    user_id: UserId | None
    source: str | None
    intent_id: IntentId | None
    account_id: AccountId | None
    reason: str
    message: str
    payload: bytes
    ts: int


ORDER_COLUMNS = ", ".join(OrderRow.__struct_fields__)
ORDER_COLUMNS_OF_O = ", ".join(f"o.{c}" for c in OrderRow.__struct_fields__)

IntentKey = tuple[UserId, IntentId]
"""``(user_id, intent_id)``: the key of an order row."""


def order_row(record: asyncpg.Record) -> OrderRow:
    """An :class:`OrderRow` from a record of exactly its columns."""
    return OrderRow(**dict(record))


def order_row_of(record: asyncpg.Record) -> OrderRow:
    """An :class:`OrderRow` from a record that holds its columns among others."""
    return OrderRow(**{c: record[c] for c in OrderRow.__struct_fields__})


class BotAdjustmentRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of ``bot_adjustments`` (migration 0011), in column order: a correction of a
    bot's position (``source``) in ``asset``; ``qty`` signed base units, prices in quote
    per base, ``ts`` ns. See :class:`tradebus.common.messages.BotAdjustment`."""

    account_id: AccountId
    user_id: UserId
    source: str
    symbol: str
    asset: str
    kind: str
    qty: Decimal
    price: Decimal | None
    old_average: Decimal | None
    new_average: Decimal | None
    held: Decimal | None
    actor: str
    ref: str
    ts: int


class SourceFills(msgspec.Struct, frozen=True, kw_only=True):
    """An order source's fills of one account summed per ``symbol``, ``side`` and
    ``fee_asset``: total ``qty`` (base) and ``fee`` (in ``fee_asset``)."""

    source: str
    symbol: str
    side: str
    fee_asset: str
    qty: Decimal
    fee: Decimal
