"""The venue interface execution talks to, and the one hierarchy of venue errors.

Two implementations (DESIGN.md, "Venues"): the paper venue
(:mod:`tradebus.engine.paper`, simulated, the default) and the ccxt venue of
the execution service. Nothing outside the implementations branches on which
one it is: what only one of them can do (late fills of the paper venue, a
perpetual position it shows) is in the protocol, answered trivially by the other.

What a venue call can end in (freqtrade's taxonomy, by what the caller must do):

* an answer (:class:`VenueAck`, ``True``/``False``, a balance list);
* :class:`VenueRejected`: a definite refusal, with a machine-readable reason;
* :class:`VenueUnavailable`: no definite answer, its :class:`VenueError`'s
  ``kind`` says what now: ``transient`` (retries used up: try later),
  ``configuration`` (keys, permissions: halt the account), ``unknown_outcome``
  (a place or cancel may have happened: resolve by client id), and
  ``permanent`` for a classified refusal raised where no order exists yet.

Each live venue translates its own exceptions into these at its boundary
(the ccxt venue: ``tradebus.execution.venue_errors``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Protocol

import msgspec

from tradebus.common.ids import AccountId, IntentId
from tradebus.common.markets import MarketKind
from tradebus.common.messages import (
    AssetBalance,
    Liquidity,
    OrderType,
    PositionRisk,
    Side,
    TimeInForce,
)
from tradebus.common.money import ZERO


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order as sent to a venue. ``client_order_id`` was allocated by the ledger."""

    client_order_id: str
    intent_id: IntentId
    symbol: str
    side: Side
    order_type: OrderType
    price: Decimal | None
    qty: Decimal
    trigger_ts: int | None
    time_in_force: TimeInForce = "gtc"
    reduce_only: bool = False


class VenueOpenOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order open at the venue as it lists them, whoever placed it: ``client_order_id``
    is the id tradebus gave it (None for an order placed without one, e.g. on the venue's
    web page); ``symbol`` the native market id; ``qty`` what is still open (base units)."""

    venue_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    price: Decimal | None
    qty: Decimal


class VenueFunding(msgspec.Struct, frozen=True, kw_only=True):
    """One funding payment of a perpetual position, as the venue reports it: ``amount``
    of ``asset`` received (negative: paid) for ``symbol`` (native id) at the end of the
    interval ``interval_end_ms`` (venue ms)."""

    symbol: str
    asset: str
    amount: Decimal
    interval_end_ms: int


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
    opened or added (see :mod:`tradebus.engine.perp`).
    """

    venue: str
    account: AccountId
    client_order_id: str
    intent_id: IntentId
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
    realized_pnl: Decimal | None = ZERO
    """None: the venue does not report it (Backpack's fills); execution computes it from
    the account's position when it books the fill (:func:`~tradebus.common.positions.price_pnl`)."""


ErrorKind = Literal["transient", "permanent", "configuration", "unknown_outcome"]
"""What a failed venue call means for the caller (module docstring)."""


class VenueError(msgspec.Struct, frozen=True, kw_only=True):
    """A venue exception, classified.

    ``reason`` is a machine-readable code for rejections and alerts;
    ``message`` the exception's text, safe to log (never the request's
    credentials); ``rate_limited`` says the venue asked us to slow down (429).
    """

    kind: ErrorKind
    reason: str
    message: str
    rate_limited: bool = False


class VenueUnavailable(Exception):
    """A venue call failed without a definite refusal; ``error.kind`` says how.

    ``unknown_outcome``: a place or cancel may or may not have happened (mark
    the order ``unknown``, resolve it by client id); ``configuration``: halt
    the account; ``transient``: the retries were used up.
    """

    def __init__(self, error: VenueError) -> None:
        super().__init__(f"{error.kind}: {error.reason}: {error.message}")
        self.error = error


class VenueRejected(Exception):
    """The venue refused the order for good. ``reason`` is a machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Venue(Protocol):
    """One account on one venue."""

    name: str
    account: AccountId

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

    async def open_orders(self) -> list[VenueOpenOrder]:
        """Every order open at the venue on this account, in every market, whoever placed
        it (tradebus or not): what ``at_start.cancel_open_orders`` looks at."""
        ...

    async def cancel_by_venue_id(self, venue_order_id: str, symbol: str) -> bool:
        """Cancel the open order ``venue_order_id`` of ``symbol`` (one that may have no
        client id of ours); False if it is not open."""
        ...

    async def last_price(self, symbol: str) -> Decimal | None:
        """The venue's last trade price of ``symbol`` (quote per base), None if it has
        none: what ``at_start.sweep_assets`` values an asset at."""
        ...

    def take_late_fills(self) -> list[VenueFill]:
        """Fills this venue made while placing an order that reached it late (the paper
        venue matching an order against the events after its trigger); each handed out once.
        A venue that reports fills on its own (a live venue: its order stream) has none."""
        ...

    def perpetual_exposure(self, symbol: str, side: Side) -> tuple[Decimal, Decimal] | None:
        """The account's signed perpetual position in ``symbol`` (base units, short < 0) and
        the base quantity of its open orders there on ``side``; None if this venue does not
        show execution both (then no perpetual order counts as closing:
        :func:`tradebus.engine.risk.is_closing`)."""
        ...

    def positions_seen(self) -> list[PositionRisk]:
        """The open perpetual positions, with the venue's risk figures, that the last
        :meth:`balances` saw; empty where the venue gives none (the paper venue)."""
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
