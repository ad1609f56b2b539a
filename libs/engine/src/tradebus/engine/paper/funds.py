"""Funds of the paper venue's accounts: balance report, order locks, fees, fill settlement.

Functions over one account's state (:mod:`tradebus.engine.paper.state`)
for :class:`~tradebus.engine.paper.exchange.PaperExchange`. Spot (funds rule of
:mod:`tradebus.engine.paper.exchange`): a buy locks ``price * qty`` plus the
worst-case fee in the quote asset, a sell locks ``qty`` of the base asset; a
fill releases the lock, swaps base and quote and pays the fee in quote.
Perpetual margin and settlement are :mod:`tradebus.engine.paper.perp`'s;
the functions here dispatch to it. Fees are charged in the quote asset:
``maker_fee_bps`` on passive fills, ``taker_fee_bps`` on marketable ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from tradebus.common.markets import Market
from tradebus.common.messages import AssetBalance
from tradebus.common.money import ZERO, bps_fee
from tradebus.engine.paper import perp as paper_perp
from tradebus.engine.paper.state import PaperAccount, PaperOrder
from tradebus.engine.venue import VenueOrder, VenueRejected
from tradebus.ledger.entries import position_asset

MARKET_BUY_LOCK_FACTOR = Decimal("1.05")
"""A market buy (or a perpetual market order) without a price cap locks funds at this
multiple of the last trade price."""


def report(acct: PaperAccount) -> list[AssetBalance]:
    """Balances of ``acct`` sorted by asset, perpetual positions as ``<symbol>-PERP``.

    A position's ``total = free =`` the signed quantity (base units) and
    ``locked = 0``; its margin is in the quote asset's ``locked``.
    """
    out = [
        AssetBalance(asset=a, total=b.total, free=b.total - b.locked, locked=b.locked)
        for a, b in acct.balances.items()
    ]
    out += [
        AssetBalance(asset=position_asset(symbol), total=p.qty, free=p.qty, locked=ZERO)
        for symbol, p in acct.positions.items()
    ]
    return sorted(out, key=lambda b: b.asset)


def lock_price(order: VenueOrder, last_trade: Decimal | None) -> Decimal:
    """The price an order's funds lock at: its limit, else a margin over ``last_trade``.

    Raises :class:`VenueRejected` ``no_market_price`` for a market order
    before any trade of its symbol.
    """
    if order.price is not None:
        return order.price
    if last_trade is None:
        raise VenueRejected("no_market_price", f"no trade of {order.symbol} yet")
    return last_trade * MARKET_BUY_LOCK_FACTOR


def order_lock(
    acct: PaperAccount,
    market: Market,
    order: VenueOrder,
    price: Decimal | None,
    perpetual: bool,
    resting: Iterable[PaperOrder],
) -> tuple[str, Decimal, Decimal | None]:
    """The asset and amount ``order`` locks at ``price``, and its lock price.

    Perpetual: quote margin behind the account's ``resting`` orders on the
    symbol (:func:`paper_perp.new_order_lock`); spot buy: quote; spot sell:
    its quantity of base (lock price None, ``price`` unused).
    """
    if perpetual:
        assert price is not None
        return market.quote, paper_perp.new_order_lock(acct, market, order, price, resting), price
    if order.side == "buy":
        assert price is not None
        notional = price * order.qty
        return market.quote, notional + bps_fee(notional, acct.lock_fee_bps), price
    return market.base, order.qty, None


def lock(acct: PaperAccount, asset: str, amount: Decimal, check_funds: bool) -> None:
    """Lock ``amount`` of ``asset``; with ``check_funds``, only if that much is free.

    Raises :class:`VenueRejected` ``insufficient_balance`` (the balance is
    created empty if absent, even then).
    """
    balance = acct.balance(asset)
    free = balance.total - balance.locked
    if check_funds and free < amount:
        raise VenueRejected("insufficient_balance", f"needs {amount} {asset}, free {free} {asset}")
    balance.locked += amount


def release(acct: PaperAccount, order: PaperOrder) -> None:
    """Release what a cancelled ``order`` locked (a perpetual one: the caller re-margins the
    account's other resting orders on the symbol, :func:`paper_perp.relock`)."""
    acct.balance(order.locked_asset).locked -= order.locked


def settle(
    acct: PaperAccount, order: PaperOrder, price: Decimal, market: Market
) -> tuple[Decimal, Decimal]:
    """Settle a full fill of ``order`` at ``price``; return ``(fee, realized P&L)`` in quote.

    The fee is taker for a marketable order, maker for a passive one. Spot
    realizes nothing; perpetual is :func:`paper_perp.settle_fill`.
    """
    notional = price * order.qty
    bps = acct.taker_fee_bps if order.marketable else acct.maker_fee_bps
    fee = bps_fee(notional, bps)
    if order.perpetual:
        return fee, paper_perp.settle_fill(acct, order, price, fee, market)
    settle_spot(acct, order, notional, fee, market)
    return fee, ZERO


def settle_spot(
    acct: PaperAccount, order: PaperOrder, notional: Decimal, fee: Decimal, market: Market
) -> None:
    """Spot: release the lock, swap base and quote, pay the fee in quote."""
    base = acct.balance(market.base)
    quote = acct.balance(market.quote)
    if order.side == "buy":
        quote.locked -= order.locked
        quote.total -= notional + fee
        base.total += order.qty
    else:
        base.locked -= order.locked
        base.total -= order.qty
        quote.total += notional - fee
