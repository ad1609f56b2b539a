"""The venue interface execution talks to, and the errors a venue may answer with.

Two implementations (DESIGN.md, "Venues"): the paper venue (simulated, the
default) and, later, the ccxt venue. Nothing outside the implementations
branches on which one it is.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import msgspec

from tradebus.common.markets import MarketKind
from tradebus.common.messages import AssetBalance, Liquidity, OrderType, Side
from tradebus.common.money import ZERO


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order as sent to a venue. ``client_order_id`` was allocated by the ledger."""

    client_order_id: str
    intent_id: str
    symbol: str
    side: Side
    order_type: OrderType
    price: Decimal | None
    qty: Decimal
    trigger_ts: int | None


class VenueAck(msgspec.Struct, frozen=True, kw_only=True):
    """The venue took the order: its own order id."""

    venue_order_id: str


class VenueFill(msgspec.Struct, frozen=True, kw_only=True):
    """One fill reported by a venue; ``(venue, account, trade_id)`` is unique.

    ``price`` is quote per base, ``qty`` base units, ``fee`` in ``fee_asset``.
    ``market_kind`` says how it was traded: a ``spot`` fill moves base and
    quote; a ``perpetual`` fill moves the position, and ``realized_pnl``
    (quote, fees excluded, as venues report it: Binance USD-M
    ``realizedPnl``) is the P&L of the quantity it closed, zero if it only
    opened or added (see :mod:`tradebus.execution.perp`).
    """

    venue: str
    account: str
    client_order_id: str
    intent_id: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity
    trade_id: str
    ts_event: int
    market_kind: MarketKind = "spot"
    realized_pnl: Decimal = ZERO


class VenueRejected(Exception):
    """The venue refused the order for good. ``reason`` is a machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Venue(Protocol):
    """One account on one venue."""

    name: str
    account: str

    async def place(self, order: VenueOrder) -> VenueAck:
        """Place ``order``.

        Raises
        ------
        VenueRejected
            If the venue refuses it (insufficient balance, bad symbol, ...).
        """
        ...

    async def cancel(self, client_order_id: str, symbol: str) -> bool:
        """Cancel an open order of ``symbol``; False if not open (unknown, filled, canceled)."""
        ...

    async def find_order(self, client_order_id: str, symbol: str, since_ns: int = 0) -> str | None:
        """The venue's order id for ``client_order_id`` on ``symbol``; None if it is unknown.

        ``since_ns``: the order cannot be older than this (its ledger row's
        creation): how far back the venue's order history is searched.
        """
        ...

    def perpetual_exposure(self, symbol: str, side: Side) -> tuple[Decimal, Decimal] | None:
        """The account's signed perpetual position in ``symbol`` (base units, short < 0) and
        the base quantity of its open orders there on ``side``; None if this venue does not
        show execution both (then no perpetual order counts as closing:
        :func:`tradebus.execution.risk.is_closing`)."""
        ...

    async def balances(self) -> list[AssetBalance]:
        """Every asset balance of the account.

        A perpetual position is reported as its pseudo-asset
        (:func:`tradebus.ledger.entries.position_asset`, ``BTCUSDT-PERP``) with
        ``total = free =`` the signed quantity and ``locked = 0``; its margin is
        locked in the quote asset. This is what the ledger journals, so the
        reconciler compares positions like any asset.
        """
        ...
