"""Backpack's JSON shapes: what the REST endpoints answer and what the streams carry.

Every shape mirrors a documented Backpack object (docs.backpack.exchange, its
OpenAPI/AsyncAPI schemas) and the samples ccxt parses
(``ccxt/async_support/backpack.py`` ``parse_market``, ``parse_ticker``,
``parse_order``, ``parse_trade``, ``parse_balance``; ``ccxt/pro/backpack.py``
``parse_ws_bid_ask``, ``parse_ws_trade``, ``parse_ws_order``). Decimals are
strings, REST times are milliseconds (``createdAt`` of live orders) or naive
UTC ISO text (history), stream times ``E``/``T`` are microseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.backpack.market import Fill, MarketSpec, Order
    from tests.support.backpack.perp import FundingPayment, PerpPosition


def dec(value: Decimal | None) -> str | None:
    """A decimal as Backpack writes it: plain notation, no trailing zeros (``"0"`` for zero)."""
    if value is None:
        return None
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def naive_iso(ts_ms: int) -> str:
    """``2025-07-27T17:39:00.092``: UTC, no zone, milliseconds (history endpoints)."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}"


def error(code: str, message: str) -> dict[str, str]:
    """The ``ApiErrorResponse`` body: ``{"code": <ApiErrorCode>, "message": ..}``."""
    return {"code": code, "message": message}


# -- public ------------------------------------------------------------------


def market(spec: MarketSpec) -> dict[str, Any]:
    """``GET /api/v1/markets`` item (Backpack ``Market``; ccxt ``parse_market``).

    Backpack's filters have a price filter (tick size, min/max price, price
    bands) and a quantity filter (step size, min/max quantity), and no
    minimum notional: ccxt reports ``limits.cost.min = None`` for Backpack.
    A perpetual (``marketType: PERP``) has its funding interval and bounds and
    its margin functions (ccxt's backpack ``fetchMarkets`` fixture of
    ``SOL_USDC_PERP``).
    """
    body: dict[str, Any] = {
        "baseSymbol": spec.base,
        "createdAt": "2024-01-01T00:00:00.000000",
        "filters": {
            "price": {
                "borrowEntryFeeMaxMultiplier": None,
                "borrowEntryFeeMinMultiplier": None,
                "maxImpactMultiplier": "1.03",
                "maxMultiplier": dec(spec.band_max_multiplier),
                "maxPrice": dec(spec.max_price),
                "meanMarkPriceBand": None,
                "meanPremiumBand": None,
                "minImpactMultiplier": "0.97",
                "minMultiplier": dec(spec.band_min_multiplier),
                "minPrice": dec(spec.min_price),
                "tickSize": dec(spec.tick_size),
            },
            "quantity": {
                "maxQuantity": dec(spec.max_quantity),
                "minQuantity": dec(spec.min_quantity),
                "stepSize": dec(spec.step_size),
            },
        },
        "fundingInterval": None,
        "fundingRateLowerBound": None,
        "fundingRateUpperBound": None,
        "imfFunction": None,
        "marketType": "SPOT",
        "mmfFunction": None,
        "openInterestLimit": "0",
        "orderBookState": "Open",
        "quoteSymbol": spec.quote,
        "symbol": spec.symbol,
        "visible": True,
    }
    if spec.perp:
        body.update(
            fundingInterval=str(spec.funding_interval_ms),
            fundingRateLowerBound="-100",
            fundingRateUpperBound="100",
            imfFunction={"base": dec(spec.imf), "factor": "0.0001275", "type": "sqrt"},
            marketType="PERP",
            mmfFunction={"base": dec(spec.mmf), "factor": "0.0000765", "type": "sqrt"},
            openInterestLimit="4000000",
        )
    return body


def asset(symbol: str) -> dict[str, Any]:
    """``GET /api/v1/assets`` item (ccxt ``fetch_currencies``, called by ``load_markets``)."""
    return {
        "coingeckoId": None,
        "displayName": symbol,
        "symbol": symbol,
        "tokens": [
            {
                "blockchain": "Solana",
                "contractAddress": None,
                "depositEnabled": True,
                "displayName": symbol,
                "maximumWithdrawal": None,
                "minimumDeposit": "0.0001",
                "minimumWithdrawal": "0.0001",
                "withdrawEnabled": True,
                "withdrawalFee": "0",
            }
        ],
    }


# -- private REST --------------------------------------------------------------


def _nulls(*names: str) -> dict[str, None]:
    return dict.fromkeys(names)


_TRIGGER_FIELDS = (
    "stopLossLimitPrice",
    "stopLossTriggerBy",
    "stopLossTriggerPrice",
    "takeProfitLimitPrice",
    "takeProfitTriggerBy",
    "takeProfitTriggerPrice",
    "triggerBy",
    "triggerPrice",
    "triggerQuantity",
)


def order(o: Order) -> dict[str, Any]:
    """A live-order object (``OrderType``: ``LimitOrder`` or ``MarketOrder``).

    Answer of ``POST/GET/DELETE /api/v1/order``, ``GET/DELETE /api/v1/orders``
    (ccxt ``parse_order``): ``createdAt`` in ms, ``clientId`` a uint32 or null.
    """
    body: dict[str, Any] = {
        "clientId": o.client_id,
        "createdAt": o.created_ms,
        "executedQuantity": dec(o.executed_qty),
        "executedQuoteQuantity": dec(o.executed_quote),
        "id": o.id,
        "orderType": o.order_type,
        "reduceOnly": o.reduce_only or None,
        "relatedOrderId": None,
        "selfTradePrevention": o.self_trade_prevention,
        "side": o.side,
        "status": o.status,
        "strategyId": None,
        "symbol": o.symbol,
        "timeInForce": o.time_in_force,
        "triggeredAt": None,
        **_nulls(*_TRIGGER_FIELDS),
    }
    if o.order_type == "Limit":
        body.update(postOnly=o.post_only, price=dec(o.price), quantity=dec(o.quantity))
    else:
        body.update(quantity=dec(o.quantity), quoteQuantity=dec(o.quote_quantity))
    return dict(sorted(body.items()))


def order_history(o: Order) -> dict[str, Any]:
    """``GET /wapi/v1/history/orders`` item (Backpack ``Order``): ``createdAt`` as naive ISO."""
    body: dict[str, Any] = {
        "clientId": o.client_id,
        "createdAt": naive_iso(o.created_ms),
        "executedQuantity": dec(o.executed_qty),
        "executedQuoteQuantity": dec(o.executed_quote),
        "expiryReason": o.expiry_reason,
        "id": o.id,
        "orderType": o.order_type,
        "postOnly": o.post_only,
        "price": dec(o.price),
        "quantity": dec(o.quantity),
        "quoteQuantity": dec(o.quote_quantity),
        "selfTradePrevention": o.self_trade_prevention,
        "side": o.side,
        "status": o.status,
        "strategyId": None,
        "symbol": o.symbol,
        "systemOrderType": None,
        "timeInForce": o.time_in_force,
        **_nulls(*_TRIGGER_FIELDS),
    }
    return dict(sorted(body.items()))


def fill(f: Fill) -> dict[str, Any]:
    """``GET /wapi/v1/history/fills`` item (``OrderFill``; ccxt ``parse_trade`` of fetchMyTrades).

    ``clientId`` is text here (the schema says string), ``timestamp`` naive ISO.
    """
    return {
        "clientId": None if f.client_id is None else str(f.client_id),
        "fee": dec(f.fee),
        "feeSymbol": f.fee_symbol,
        "isMaker": f.is_maker,
        "orderId": f.order_id,
        "price": dec(f.price),
        "quantity": dec(f.quantity),
        "side": f.side,
        "symbol": f.symbol,
        "systemOrderType": None,
        "timestamp": naive_iso(f.ts_us // 1000),
        "tradeId": f.trade_id,
    }


def position(p: PerpPosition, spec: MarketSpec, mark: Decimal, user_id: int) -> dict[str, Any]:
    """``GET /api/v1/position`` item (``FuturePositionWithMargin``; ccxt ``parse_position``).

    ``netExposureQuantity`` would add the worst case of open orders; here it is the
    position itself. The liquidation price is estimated for an isolated position
    backed by its initial margin: ``entry * (1 - imf + mmf)`` for a long, ``entry *
    (1 + imf - mmf)`` for a short.
    """
    entry = p.entry_price
    unrealized = p.net_qty * mark - p.net_cost
    return {
        "breakEvenPrice": dec(entry),
        "cumulativeFundingPayment": dec(p.funding),
        "cumulativeInterest": "0",
        "entryPrice": dec(entry),
        "estLiquidationPrice": dec(_liquidation(p, spec)),
        "imf": dec(spec.imf),
        "imfFunction": {"base": dec(spec.imf), "factor": "0.0001275", "type": "sqrt"},
        "markPrice": dec(mark),
        "mmf": dec(spec.mmf),
        "mmfFunction": {"base": dec(spec.mmf), "factor": "0.0000765", "type": "sqrt"},
        "netCost": dec(p.net_cost),
        "netExposureNotional": dec(abs(p.net_qty) * mark),
        "netExposureQuantity": dec(abs(p.net_qty)),
        "netQuantity": dec(p.net_qty),
        "pnlRealized": dec(p.realized),
        "pnlUnrealized": dec(unrealized),
        "positionId": str(p.position_id),
        "subaccountId": None,
        "symbol": p.symbol,
        "userId": user_id,
    }


def _liquidation(p: PerpPosition, spec: MarketSpec) -> Decimal:
    """An isolated position's liquidation estimate: ``entry * (1 - imf + mmf)`` for a long,
    ``entry * (1 + imf - mmf)`` for a short; 0 when flat."""
    if not p.net_qty:
        return Decimal(0)
    if p.net_qty > 0:
        return p.entry_price * (1 - spec.imf + spec.mmf)
    return p.entry_price * (1 + spec.imf - spec.mmf)


def position_update(
    event: str, p: PerpPosition, spec: MarketSpec, mark: Decimal, now_us: int
) -> dict[str, Any]:
    """``account.positionUpdate`` payload (AsyncAPI ``PositionUpdateEvent``; ccxt.pro
    ``parse_ws_position``): ``event`` is ``positionOpened``, ``positionAdjusted`` or
    ``positionClosed``; ``q`` the net quantity, ``Q`` and ``n`` the net exposure, ``b``
    break-even and ``B`` entry price, ``M`` mark, ``l`` liquidation estimate, ``f``/``m``
    the margin fractions, ``p``/``P`` realized/unrealized P&L."""
    return {
        "e": event,
        "E": now_us,
        "s": p.symbol,
        "b": dec(p.entry_price),
        "B": dec(p.entry_price),
        "f": dec(spec.imf),
        "M": dec(mark),
        "m": dec(spec.mmf),
        "q": dec(p.net_qty),
        "Q": dec(abs(p.net_qty)),
        "n": dec(abs(p.net_qty) * mark),
        "i": p.position_id,
        "l": dec(_liquidation(p, spec)),
        "p": dec(p.realized),
        "P": dec(p.net_qty * mark - p.net_cost),
        "T": now_us,
    }


def funding(f: FundingPayment, user_id: int) -> dict[str, Any]:
    """``GET /wapi/v1/history/funding`` item (ccxt ``parse_income``): ``quantity`` received
    (negative: paid), ``intervalEndTimestamp`` naive ISO."""
    return {
        "fundingRate": dec(f.rate),
        "intervalEndTimestamp": naive_iso(f.interval_end_ms),
        "quantity": dec(f.quantity),
        "subaccountId": None,
        "symbol": f.symbol,
        "userId": user_id,
    }


# -- streams -------------------------------------------------------------------


def order_update(event: str, o: Order, now_us: int, f: Fill | None = None) -> dict[str, Any]:
    """``account.orderUpdate`` payload (AsyncAPI ``OrderUpdateEvent``; ccxt.pro ``parse_ws_order``).

    ``event`` is ``orderAccepted``, ``orderFill``, ``orderCancelled`` or
    ``orderExpired``. Optional letters are present only when they apply:
    ``c`` if the order has a client id, ``q``/``Q``/``p`` as set on the
    order, ``l L m n N`` on fills, ``R`` on expiry. ``t``, the trade id, is
    always there: the fill's on a fill, ``null`` otherwise (as a captured
    ``orderAccepted`` shows; added to the stream 2024-02-24, Backpack's changelog).
    """
    data: dict[str, Any] = {
        "e": event,
        "E": now_us,
        "s": o.symbol,
        "S": o.side,
        "o": o.order_type.upper(),
        "f": o.time_in_force,
        "X": o.status,
        "i": o.id,
        "z": dec(o.executed_qty),
        "Z": dec(o.executed_quote),
        "V": o.self_trade_prevention,
        "T": now_us,
        "O": "USER",
        "r": o.reduce_only,
        "t": None,
    }
    if o.client_id is not None:
        data["c"] = o.client_id
    if o.quantity is not None:
        data["q"] = dec(o.quantity)
    if o.quote_quantity is not None:
        data["Q"] = dec(o.quote_quantity)
    if o.price is not None:
        data["p"] = dec(o.price)
    if o.order_type == "Limit":
        data["y"] = o.post_only
    if f is not None:
        data.update(
            l=dec(f.quantity),
            L=dec(f.price),
            m=f.is_maker,
            n=dec(f.fee),
            N=f.fee_symbol,
            t=f.trade_id,
            T=f.ts_us,
        )
    if o.expiry_reason is not None and event == "orderExpired":
        data["R"] = o.expiry_reason
    return data
