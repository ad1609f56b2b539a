"""Markets and bot contexts for tests: only what a test cares about, the rest Binance's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.markets import Market
from tradebus.strategies.core import BotContext


def market(base: str, quote: str, step: str, tick: str = "0.01", **kw: Any) -> Market:
    """Market ``<base><quote>`` with price increment ``tick`` and quantity increment ``step``.

    ``kw``: the other :class:`Market` fields (``min_notional``, ``min_qty``, ``kind``).
    """
    return Market(
        symbol=base + quote,
        base=base,
        quote=quote,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        **kw,
    )


SOLUSDC = market("SOL", "USDC", step="0.001")
"""Round increments (tick 0.01, step 0.001) for hand-computed cases."""
BTCUSDT = market("BTC", "USDT", step="0.00001")
"""BTCUSDT's increments, no minimum order."""
BTCUSDT_MIN = market("BTC", "USDT", step="0.00001", min_notional=Decimal(5))
"""BTCUSDT as in the recorded data: its increments and a 5 USDT minimum order."""
BTCUSDT_PERP = market("BTC", "USDT", step="0.00001", kind="perpetual")
ETHUSDT_PERP = market("ETH", "USDT", step="0.0001", kind="perpetual")


def bot_context(
    bot: str, user: str, account: str, strategy: str, *markets: Market, **kw: Any
) -> BotContext:
    """Bot ``bot`` of ``user`` running ``strategy`` on ``account`` at venue ``binance``.

    It trades ``markets``, the first one its main market (a bot of one market
    leaves ``BotContext.markets`` empty). ``kw``: the other :class:`BotContext`
    fields (``group``, ``run``).
    """
    return BotContext(
        bot=BotId(bot),
        user=UserId(user),
        account=AccountId(account),
        strategy=strategy,
        venue="binance",
        market=markets[0],
        markets=markets if len(markets) > 1 else (),
        **kw,
    )
