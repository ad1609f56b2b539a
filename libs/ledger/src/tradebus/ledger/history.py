"""Reads of the ledger's history: every fill booked, positions' fills, accepted orders.

Used at start-up: execution's risk state replays every booked fill
(:meth:`HistoryReads.fill_history`), and the paper venue is rebuilt from
the ledger (:mod:`tradebus.execution.paper_restore`). :class:`HistoryReads`
is a base of :class:`~tradebus.ledger.store.Ledger` (it needs its ``_pool``).
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import msgspec


class BookedFill(msgspec.Struct, frozen=True, kw_only=True):
    """A fill as the ledger holds it (:meth:`Ledger.fill_history`); ``recorded_ns`` is when
    execution booked it."""

    account_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    recorded_ns: int


class PositionFill(msgspec.Struct, frozen=True, kw_only=True):
    """A fill that moved a perpetual position (:meth:`Ledger.position_fills`).

    ``qty`` in base units (> 0), ``price`` in quote per base; ``journal_id``
    is the id of its position entry (booking order).
    """

    side: str
    qty: Decimal
    price: Decimal
    trade_id: str
    journal_id: int


class HistoryReads:
    """History queries of :class:`~tradebus.ledger.store.Ledger`."""

    _pool: asyncpg.Pool

    async def fill_history(self) -> list[BookedFill]:
        """Every booked fill of every account, in the order execution recorded them."""
        records = await self._pool.fetch(
            "SELECT account_id, symbol, side, price, qty, fee, fee_asset, recorded_ns"
            " FROM fills ORDER BY recorded_ns, ts_event, trade_id"
        )
        return [BookedFill(**dict(r)) for r in records]

    async def accepted_client_ids(self, account_id: str) -> list[int]:
        """Client order ids of every order of ``account_id`` a venue ever accepted.

        That is, every row with a venue order id (open or done), ascending.
        """
        records = await self._pool.fetch(
            "SELECT client_order_id FROM orders WHERE account_id = $1"
            " AND venue_order_id IS NOT NULL ORDER BY client_order_id",
            account_id,
        )
        return [r["client_order_id"] for r in records]

    async def position_fills(self, account_id: str, position_asset: str) -> list[PositionFill]:
        """The fills that moved a perpetual position, in booking order.

        ``position_asset`` is the position's pseudo-asset (``BTCUSDT-PERP``).
        A fill is matched to its journal entry of that asset by the entry's
        ``ref``, which execution writes as ``<venue>:<account>:<trade id>``;
        booking order is the order of those journal ids.
        """
        records = await self._pool.fetch(
            "SELECT f.side, f.qty, f.price, f.trade_id, j.id AS journal_id"
            " FROM journal j JOIN fills f ON f.account_id = j.account_id"
            "  AND j.ref = f.venue || ':' || f.account_id || ':' || f.trade_id"
            " WHERE j.account_id = $1 AND j.asset = $2 AND j.kind = 'fill'"
            " ORDER BY j.id",
            account_id,
            position_asset,
        )
        return [PositionFill(**dict(r)) for r in records]

    async def last_fill_price(self, account_ids: list[str], symbol: str) -> Decimal | None:
        """Price (quote per base) of the newest fill (by ``ts_event``) of ``symbol`` on
        any of ``account_ids``, or None."""
        return await self._pool.fetchval(
            "SELECT price FROM fills WHERE account_id = ANY($1::text[]) AND symbol = $2"
            " ORDER BY ts_event DESC, recorded_ns DESC LIMIT 1",
            account_ids,
            symbol,
        )
