"""One-triggers-other orders: what a ccxt venue offers, and why tradebus emulates them.

Seed 004's volume loop places an OTO order: a limit buy whose limit sell (at
``F * (1 + sell_profit_pct/100)``, F the buy's fill price) goes live when the buy
fills. tradebus emulates it on every venue (STRATEGIES.md §4): the volume bot
places the sell itself when it hears of the buy's fill. A native OTO would be
used only where a venue offers that exact order through ccxt's unified API and
the local exchange of the tests implements it; at ccxt 4.5 none does:

* **Backpack** (``POST /api/v1/order``) takes ``takeProfitTriggerPrice`` /
  ``takeProfitLimitPrice`` on an order, which ccxt sends for
  ``createOrder(..., params={"takeProfit": {...}})`` and declares as
  ``has["createOrderWithTakeProfitAndStopLoss"]``; but ccxt documents it for swap
  markets only (``features["spot"]["createOrder"]["attachedStopLossTakeProfit"]``
  is unset), and it is a price trigger that fires when the market reaches it,
  not a limit sell resting from the fill. The local Backpack exchange
  (``tests/support/backpack/payload.py``) refuses those fields as
  ``NOT_IMPLEMENTED``.
* **Binance** spot has OTO order lists (``POST /api/v3/orderList/oto``): the
  working order's fill places the pending one. ccxt reaches it only as the raw
  endpoint ``private_post_orderlist_oto``, with no unified order, fill or cancel
  handling, and ``has["createOrderWithTakeProfitAndStopLoss"]`` is false.
* **OKX, Bybit** and others attach take-profit *trigger* orders
  (``features[...]["createOrder"]["attachedStopLossTakeProfit"]``): the same
  trigger semantics as Backpack's, not the seed's resting sell.

:func:`oto_offer` says which of these holds for one market, from ccxt's own
``has`` and ``features`` declarations; execution puts it in the market's
:attr:`~tradebus.common.markets.Market.oto` and the volume bot's status shows
``oto: emulated`` with it.
"""

from __future__ import annotations

from typing import Any

ORDER_LIST_OTO = "private_post_orderlist_oto"
"""ccxt's raw method for Binance's ``POST /api/v3/orderList/oto``."""


def _create_order_features(exchange: Any, market: dict[str, Any]) -> dict[str, Any]:
    """``features[<type>][<linear|inverse>]["createOrder"]`` of ccxt for ``market``'s type."""
    features = getattr(exchange, "features", None) or {}
    if market.get("swap"):
        kinds = features.get("swap") or {}
        kind = kinds.get("inverse" if market.get("inverse") else "linear") or {}
    else:
        kind = features.get("spot") or {}
    return dict(kind.get("createOrder") or {})


def oto_offer(exchange: Any, market: dict[str, Any]) -> str:
    """What the ccxt ``exchange`` offers toward an OTO order on ``market`` (a ccxt market
    dict) and why the volume bot emulates it there; one sentence for the bot's status.

    Read from ccxt's declarations only (``exchange.has``, ``exchange.features``, its
    implicit API methods), so no request is made.
    """
    name = exchange.id
    kind = "swap" if market.get("swap") else "spot"
    features = _create_order_features(exchange, market)
    trigger = (
        "a take-profit trigger order (fired when the price reaches it), not a limit sell"
        " resting from the buy's fill"
    )
    if features.get("attachedStopLossTakeProfit"):
        return f"{name} {kind}: ccxt attaches only {trigger}"
    if exchange.has.get("createOrderWithTakeProfitAndStopLoss"):
        if features:  # declared for this kind of market, without an attached take-profit
            return (
                f"{name} {kind}: ccxt attaches no take-profit to {kind} orders (where it"
                f" does, it is {trigger})"
            )
        return f"{name} {kind}: ccxt's attached take-profit is {trigger}"
    if kind == "spot" and callable(getattr(exchange, ORDER_LIST_OTO, None)):
        return (
            f"{name} {kind}: OTO order lists (orderList/oto) only through ccxt's raw"
            " endpoint, without unified order, fill or cancel handling"
        )
    return f"{name} {kind}: ccxt offers no OTO order"
