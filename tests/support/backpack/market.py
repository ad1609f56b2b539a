"""The local Backpack exchange's records: markets, balances, orders, fills, errors."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.support.backpack import wire

ZERO = Decimal(0)
BPS = Decimal(10_000)
DAY_US = 86_400_000_000


class ApiError(Exception):
    """An error answer: HTTP ``status`` and Backpack's JSON ``{"code", "message"}``.

    ccxt maps ``code`` through ``backpack.describe()['exceptions']['exact']``
    (``INSUFFICIENT_FUNDS`` -> InsufficientFunds, ``INVALID_ORDER`` ->
    InvalidOrder, ``RESOURCE_NOT_FOUND`` -> ExchangeNotAvailable, ...).
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class PayloadError(Exception):
    """A body Backpack's API cannot deserialize: HTTP 400 with a *plain-text* body.

    Backpack answers these from its request parser, before any business
    logic, as text (ccxt quotes one: ``Bad Request parse request payload
    error: failed to parse "MarketSymbol" ...``). Not being JSON, ccxt maps it
    by HTTP status: 400 -> ExchangeNotAvailable.
    """


@dataclass(frozen=True)
class MarketSpec:
    """One spot market as ``GET /api/v1/markets`` describes it.

    ``min_notional`` is not a Backpack filter (its markets publish none, and
    ccxt reports ``limits.cost.min = None``); when set, the server still
    refuses orders below it with ``INVALID_ORDER``.
    """

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_quantity: Decimal
    max_quantity: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    min_notional: Decimal | None = None
    band_min_multiplier: Decimal = Decimal("0.75")
    band_max_multiplier: Decimal = Decimal("1.25")
    """The price band (``filters.price.minMultiplier``/``maxMultiplier``): a limit
    price below ``min * last`` or above ``max * last`` is refused with
    ``INVALID_PRICE`` ("Price is too far from the last active price", the answer
    ccxt's backpack error map quotes)."""
    perp: bool = False
    """A perpetual future (``marketType: PERP``, symbol ``<BASE>_<QUOTE>_PERP``): fills
    move the account's position, not its base asset (:mod:`tests.support.backpack.perp`)."""
    imf: Decimal = Decimal("0.02")
    """Initial margin fraction (``imfFunction.base``): an order locks ``notional * imf``."""
    mmf: Decimal = Decimal("0.0125")
    """Maintenance margin fraction (``mmfFunction.base``)."""
    funding_interval_ms: int = 28_800_000
    trade_id_start: int | None = None
    """First trade id of the market. Backpack numbers trades per symbol, so its ids can
    repeat across symbols; by default the server starts market ``i`` (in the order
    given) at ``(i + 1) * 10_000_000`` so ids are unique server-wide. Give the same
    start to two markets to reproduce Backpack's collisions."""


def spot_market(
    base: str, quote: str, tick: str, step: str, min_quantity: str | None = None, **kw: Any
) -> MarketSpec:
    """Spot market ``<BASE>_<QUOTE>`` (min price = tick, min quantity = step unless given)."""
    return MarketSpec(
        symbol=f"{base}_{quote}",
        base=base,
        quote=quote,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_quantity=Decimal(min_quantity or step),
        min_price=Decimal(tick),
        **kw,
    )


def perp_market(base: str, quote: str, tick: str, step: str, **kw: Any) -> MarketSpec:
    """Perpetual ``<BASE>_<QUOTE>_PERP`` (min price = tick, min quantity = step)."""
    return MarketSpec(
        symbol=f"{base}_{quote}_PERP",
        base=base,
        quote=quote,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_quantity=Decimal(step),
        min_price=Decimal(tick),
        perp=True,
        **kw,
    )


BTC_USDC = spot_market("BTC", "USDC", tick="0.1", step="0.00001")
"""Backpack's BTC_USDC increments (tick 0.1, step 0.00001)."""
ETH_USDC = spot_market("ETH", "USDC", tick="0.01", step="0.0001")
SOL_USDC = spot_market("SOL", "USDC", tick="0.01", step="0.01")
BTC_USDC_PERP = perp_market("BTC", "USDC", tick="0.1", step="0.0001")
ETH_USDC_PERP = perp_market("ETH", "USDC", tick="0.01", step="0.001")


def private_streams(symbol: str) -> tuple[str, str]:
    """The order-update streams an order of ``symbol`` is published on."""
    return ("account.orderUpdate", f"account.orderUpdate.{symbol}")


@dataclass
class Balance:
    """One asset of one account: ``available = total - locked``."""

    total: Decimal = ZERO
    locked: Decimal = ZERO

    @property
    def available(self) -> Decimal:
        return self.total - self.locked


@dataclass
class Order:
    """An order as the exchange keeps it (Backpack ``LimitOrder``/``MarketOrder`` fields)."""

    id: str
    account: str
    symbol: str
    side: str  # Bid | Ask
    order_type: str  # Limit | Market
    client_id: int | None
    price: Decimal | None
    quantity: Decimal | None
    quote_quantity: Decimal | None
    time_in_force: str
    post_only: bool
    self_trade_prevention: str
    created_ms: int
    seq: int
    marketable: bool
    locked_asset: str
    locked: Decimal
    reduce_only: bool = False
    status: str = "New"
    executed_qty: Decimal = ZERO
    executed_quote: Decimal = ZERO
    expiry_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in ("New", "PartiallyFilled")

    @property
    def remaining(self) -> Decimal | None:
        return None if self.quantity is None else self.quantity - self.executed_qty


@dataclass(frozen=True)
class Fill:
    """One fill of one order (``GET /wapi/v1/history/fills`` item)."""

    trade_id: int
    order_id: str
    client_id: int | None
    account: str
    symbol: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_symbol: str
    is_maker: bool
    ts_us: int


@dataclass(frozen=True)
class PublicTrade:
    """A trade printed on the public tape (the replayed recorded trades)."""

    trade_id: int
    price: Decimal
    quantity: Decimal
    buyer_maker: bool
    ts_us: int
    buyer_order: str
    seller_order: str

    def frame(self, symbol: str) -> dict[str, Any]:
        """``trade.<symbol>`` payload (AsyncAPI ``TradeEvent``; ccxt.pro ``parse_ws_trade``)."""
        return {
            "e": "trade",
            "E": self.ts_us,
            "s": symbol,
            "p": wire.dec(self.price),
            "q": wire.dec(self.quantity),
            "b": self.buyer_order,
            "a": self.seller_order,
            "t": self.trade_id,
            "T": self.ts_us,
            "m": self.buyer_maker,
        }

    def rest(self) -> dict[str, Any]:
        """``GET /api/v1/trades`` item (ccxt ``parse_trade`` of fetchTrades)."""
        return {
            "id": self.trade_id,
            "isBuyerMaker": self.buyer_maker,
            "price": wire.dec(self.price),
            "quantity": wire.dec(self.quantity),
            "quoteQuantity": wire.dec(self.price * self.quantity),
            "timestamp": self.ts_us // 1000,
        }


@dataclass
class TickerStats:
    """Rolling 24 h statistics of one market's trades (``ticker`` stream and REST)."""

    window: deque[tuple[int, Decimal, Decimal]] = field(default_factory=deque)
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    high: Decimal | None = None
    low: Decimal | None = None

    def add(self, ts_us: int, price: Decimal, qty: Decimal) -> None:
        self.window.append((ts_us, price, qty))
        self.volume += qty
        self.quote_volume += price * qty
        self.high = price if self.high is None else max(self.high, price)
        self.low = price if self.low is None else min(self.low, price)
        stale = False
        while self.window and self.window[0][0] < ts_us - DAY_US:
            _, p, q = self.window.popleft()
            self.volume -= q
            self.quote_volume -= p * q
            stale = True
        if stale:
            self.high = max(p for _, p, _ in self.window)
            self.low = min(p for _, p, _ in self.window)

    def rest(self, symbol: str) -> dict[str, Any]:
        """``GET /api/v1/ticker`` body (ccxt ``parse_ticker``)."""
        first = self.window[0][1] if self.window else ZERO
        last = self.window[-1][1] if self.window else ZERO
        change = last - first
        return {
            "firstPrice": wire.dec(first),
            "high": wire.dec(self.high or ZERO),
            "lastPrice": wire.dec(last),
            "low": wire.dec(self.low or ZERO),
            "priceChange": wire.dec(change),
            "priceChangePercent": wire.dec((change / first).quantize(Decimal("0.000001")))
            if first
            else "0",
            "quoteVolume": wire.dec(self.quote_volume),
            "symbol": symbol,
            "trades": str(len(self.window)),
            "volume": wire.dec(self.volume),
        }

    def frame(self, symbol: str, now_us: int) -> dict[str, Any]:
        """``ticker.<symbol>`` payload (AsyncAPI ``TickerEvent``; ccxt.pro ``parse_ws_ticker``)."""
        rest = self.rest(symbol)
        return {
            "e": "ticker",
            "E": now_us,
            "s": symbol,
            "o": rest["firstPrice"],
            "c": rest["lastPrice"],
            "h": rest["high"],
            "l": rest["low"],
            "v": rest["volume"],
            "V": rest["quoteVolume"],
            "n": len(self.window),
        }


@dataclass(frozen=True)
class Published:
    """A stream payload: sent to each connection subscribed to one of ``streams``
    (a private one only to connections authenticated as ``account``)."""

    streams: tuple[str, ...]
    data: dict[str, Any]
    account: str | None = None
    kind: str = ""
    """The event type: ``trade``, ``bookTicker``, ``ticker``, ``orderAccepted``, ``orderFill``..."""
