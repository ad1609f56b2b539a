"""The status block fields every strategy core fills alike.

Source: shared/STRATEGIES.md §1-§4 (each strategy's status block) and the
seeds' displays: the bot's identity and order counts, and the figures of a
single-market position (ladder, martingale, volume). What only one strategy
shows goes in ``details``, built by that strategy.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradebus.common.messages import BotStatus
from tradebus.common.money import HUNDRED, ZERO
from tradebus.common.positions import Position
from tradebus.strategies.core import BotContext, OrderTracker


def text_or_none(value: Decimal | None) -> str | None:
    """A decimal as a ``details`` string (None stays None)."""
    return None if value is None else str(value)


def position_figures(pos: Position, p: Decimal | None) -> dict[str, Any]:
    """The status fields of one position at price ``p`` (None: no price yet)."""
    unrealized = pos.unrealized_pnl(p) if p is not None else ZERO
    cost = pos.open_cost + pos.open_fees
    return {
        "avg_price": pos.avg_price,
        "position": pos.qty,
        "last_price": p,
        "position_value": pos.qty * p if p is not None else ZERO,
        "unrealized_pnl": unrealized,
        "unrealized_pct": unrealized / cost * HUNDRED if cost else ZERO,
        "realized_pnl": pos.realized_pnl,
    }


def bot_status(ctx: BotContext, orders: OrderTracker, **figures: Any) -> BotStatus:
    """A status block: the bot's identity (``ctx``) and order counts, then ``figures``."""
    return BotStatus(
        bot=ctx.bot,
        user=ctx.user,
        account=ctx.account,
        strategy=ctx.strategy,
        venue=ctx.venue,
        run=ctx.run,
        orders_placed=orders.placed,
        orders_filled=orders.filled,
        open_orders=len(orders.open_orders()),
        **figures,
    )
