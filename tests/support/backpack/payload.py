"""``POST /api/v1/order`` payload checks, in the order Backpack's API makes them.

Mirrors ``OrderExecutePayload`` of the Backpack API docs and what
``ccxt.backpack.create_order_request`` sends: ``symbol``, ``side``
(``Bid``/``Ask``), ``orderType`` (``Limit``/``Market``), ``price``,
``quantity`` or ``quoteQuantity`` (decimal strings), ``clientId`` (uint32),
``postOnly`` (bool), ``timeInForce`` (``GTC``/``IOC``/``FOK``),
``selfTradePrevention`` (``RejectTaker``, ``RejectMaker``, ``RejectBoth``, ``Allow``),
``reduceOnly`` (bool; perpetual markets, checked by the exchange).

Two kinds of refusal, as on Backpack:

* a payload the request parser cannot read (unknown enum value, a clientId
  outside uint32, a non-decimal price) -> :class:`PayloadError`, HTTP 400 with
  a plain-text body;
* a readable order the exchange refuses -> :class:`ApiError` with a JSON
  ``{"code", "message"}``: ``INVALID_MARKET``, ``INVALID_CLIENT_REQUEST``
  (wrong combination of fields, "Price decimal too long", "Quantity decimal too
  long", as Backpack's support FAQ lists them), ``INVALID_PRICE``,
  ``INVALID_QUANTITY``, ``INVALID_ORDER`` (below the minimum quantity),
  ``NOT_IMPLEMENTED`` (trigger/stop/margin options this server does not model).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.support.backpack.market import ZERO, ApiError, MarketSpec, PayloadError

UINT32_MAX = 2**32 - 1
_UNSUPPORTED = (
    "triggerPrice",
    "triggerQuantity",
    "stopLossTriggerPrice",
    "stopLossLimitPrice",
    "takeProfitTriggerPrice",
    "takeProfitLimitPrice",
    "autoBorrow",
    "autoBorrowRepay",
    "autoLend",
    "autoLendRedeem",
)


@dataclass(frozen=True)
class OrderRequest:
    """A parsed, filter-checked order (funds and post-only are the exchange's to check)."""

    symbol: str
    side: str
    order_type: str
    time_in_force: str
    self_trade_prevention: str
    post_only: bool
    client_id: int | None
    price: Decimal | None
    quantity: Decimal | None
    quote_quantity: Decimal | None
    reduce_only: bool = False


def payload_error(key: str, where: str = "OrderExecutePayload") -> PayloadError:
    """The parser's refusal of field ``key``."""
    return PayloadError(
        f'Bad Request parse request payload error: failed to parse "{key}"'
        f' (occurred while parsing "{where}")'
    )


def _decimal(payload: dict[str, Any], key: str) -> Decimal | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise payload_error(key)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise payload_error(key) from None
    if not number.is_finite():
        raise payload_error(key)
    return number


def _enum(payload: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = payload.get(key)
    if value is None and default:
        return default
    if value not in allowed:
        raise payload_error(key)
    return value


def client_id_of(value: Any, where: str = "OrderExecutePayload") -> int | None:
    """A ``clientId`` (uint32) or None; :class:`PayloadError` otherwise."""
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)  # query strings carry it as text
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT32_MAX:
        raise payload_error("clientId", where)
    return value


def parse_order(payload: Any, markets: dict[str, MarketSpec]) -> OrderRequest:
    """Read and check one order payload (see the module docstring for the refusals)."""
    if not isinstance(payload, dict):
        raise payload_error("OrderExecutePayload")
    symbol = payload.get("symbol")
    if not isinstance(symbol, str):
        raise payload_error("symbol")
    spec = markets.get(symbol)
    if spec is None:
        raise ApiError(400, "INVALID_MARKET", f"Invalid market {symbol}")
    side = _enum(payload, "side", ("Bid", "Ask"), "")
    order_type = _enum(payload, "orderType", ("Limit", "Market"), "")
    request = OrderRequest(
        symbol=symbol,
        side=side,
        order_type=order_type,
        time_in_force=_enum(payload, "timeInForce", ("GTC", "IOC", "FOK"), "GTC"),
        self_trade_prevention=_enum(
            payload,
            "selfTradePrevention",
            ("RejectTaker", "RejectMaker", "RejectBoth", "Allow"),
            "RejectTaker",
        ),
        post_only=_bool(payload, "postOnly"),
        client_id=client_id_of(payload.get("clientId")),
        price=_decimal(payload, "price"),
        quantity=_decimal(payload, "quantity"),
        quote_quantity=_decimal(payload, "quoteQuantity"),
        reduce_only=_bool(payload, "reduceOnly"),
    )
    for key in _UNSUPPORTED:
        if payload.get(key) not in (None, False):
            raise ApiError(400, "NOT_IMPLEMENTED", f"{key} is not supported by the local server")
    _check_shape(request)
    _check_filters(spec, request)
    return request


def _bool(payload: dict[str, Any], key: str) -> bool:
    value = payload.get(key, False)
    if not isinstance(value, bool):
        raise payload_error(key)
    return value


def _check_shape(r: OrderRequest) -> None:
    if r.order_type == "Limit":
        if r.price is None or r.quantity is None or r.quote_quantity is not None:
            raise ApiError(
                400, "INVALID_CLIENT_REQUEST", "Limit orders take a price and a quantity"
            )
        return
    if r.price is not None or (r.quantity is None) == (r.quote_quantity is None):
        raise ApiError(
            400,
            "INVALID_CLIENT_REQUEST",
            "Market orders take either a quantity or a quoteQuantity, and no price",
        )
    if r.post_only:
        raise ApiError(400, "INVALID_ORDER", "Market orders cannot be post only")
    if r.quote_quantity is not None and r.side == "Ask":
        raise ApiError(400, "NOT_IMPLEMENTED", "quoteQuantity sells are not supported")


def _check_filters(spec: MarketSpec, r: OrderRequest) -> None:
    price, qty = r.price, r.quantity
    if price is not None:
        if price <= 0:
            raise ApiError(400, "INVALID_PRICE", "Price must be positive")
        if price % spec.tick_size:
            raise ApiError(400, "INVALID_CLIENT_REQUEST", "Price decimal too long")
        if (spec.min_price is not None and price < spec.min_price) or (
            spec.max_price is not None and price > spec.max_price
        ):
            raise ApiError(400, "INVALID_PRICE", "Price is out of bounds")
    if qty is not None:
        if qty <= 0:
            raise ApiError(400, "INVALID_QUANTITY", "Quantity must be positive")
        if qty % spec.step_size:
            raise ApiError(400, "INVALID_CLIENT_REQUEST", "Quantity decimal too long")
        if qty < spec.min_quantity:
            raise ApiError(400, "INVALID_ORDER", "Quantity is below the minimum allowed value")
        if spec.max_quantity is not None and qty > spec.max_quantity:
            raise ApiError(400, "INVALID_ORDER", "Quantity is above the maximum allowed value")
    if r.quote_quantity is not None and r.quote_quantity <= 0:
        raise ApiError(400, "INVALID_QUANTITY", "Quote quantity must be positive")


def check_min_notional(spec: MarketSpec, r: OrderRequest, last: Decimal | None) -> None:
    """The optional, non-Backpack ``min_notional`` of ``spec`` (priced at ``last`` for markets)."""
    if spec.min_notional is None:
        return
    ref = r.price if r.price is not None else last
    if r.quote_quantity is not None:
        notional = r.quote_quantity
    elif ref is not None:
        notional = ref * (r.quantity or ZERO)
    else:
        return
    if notional < spec.min_notional:
        raise ApiError(400, "INVALID_ORDER", "Order value is below the minimum")


def check_price_band(spec: MarketSpec, r: OrderRequest, last: Decimal | None) -> None:
    """A limit price outside the market's band around the last trade price
    (:attr:`MarketSpec.band_min_multiplier`, ``band_max_multiplier``) is refused
    with ``INVALID_PRICE``; before the first trade there is no band."""
    if r.price is None or last is None:
        return
    if not spec.band_min_multiplier * last <= r.price <= spec.band_max_multiplier * last:
        raise ApiError(400, "INVALID_PRICE", "Price is too far from the last active price")
