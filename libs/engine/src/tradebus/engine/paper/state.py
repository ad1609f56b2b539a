"""The state of the paper venue: resting orders, balances and accounts (plain structs).

Shared by :mod:`tradebus.engine.paper.exchange` (the exchange),
:mod:`tradebus.engine.paper.book` (its order book),
:mod:`tradebus.engine.paper.funds` (account funds) and
:mod:`tradebus.engine.paper.perp` (perpetual funds). Amounts are
Decimal: quantities in base units, prices in quote per base, balances in
their asset, fees in basis points.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.ids import AccountId, IntentId
from tradebus.common.markets import MarketKind
from tradebus.common.money import ONE, ZERO
from tradebus.engine.perp import PerpPosition


class PaperOrder(msgspec.Struct, kw_only=True):
    """A resting paper order and the funds it locks.

    ``locked`` of ``locked_asset`` is what it holds now (perpetual orders are
    re-margined as the position changes); ``lock_price`` is the price its
    funds are locked at (its limit, or a margin over the last trade for a
    market order); ``perpetual`` says how it settles.
    """

    account: AccountId
    client_order_id: str
    intent_id: IntentId
    symbol: str
    side: str
    order_type: str
    price: Decimal | None
    qty: Decimal
    trigger_ts: int | None
    locked_asset: str
    locked: Decimal
    live: bool = False
    marketable: bool = False
    perpetual: bool = False
    lock_price: Decimal | None = None


class PaperBalance(msgspec.Struct, kw_only=True):
    """``total`` and ``locked`` of one asset (``free = total - locked``)."""

    total: Decimal = ZERO
    locked: Decimal = ZERO


class PaperAccount(msgspec.Struct, kw_only=True):
    """One paper account: balances, fee schedule (basis points), perpetual positions.

    ``market_kind`` and ``leverage`` come from the accounts file; perpetual
    positions are keyed by symbol.
    """

    balances: dict[str, PaperBalance]
    maker_fee_bps: Decimal
    taker_fee_bps: Decimal
    market_kind: MarketKind = "spot"
    leverage: Decimal = ONE
    positions: dict[str, PerpPosition] = {}

    @property
    def lock_fee_bps(self) -> Decimal:
        """The worst-case fee rate (bps) an open order locks for."""
        return max(self.taker_fee_bps, self.maker_fee_bps)

    def balance(self, asset: str) -> PaperBalance:
        """The balance of ``asset``, created empty if absent."""
        return self.balances.setdefault(asset, PaperBalance())
