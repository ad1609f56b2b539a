"""What a grid bot remembers (its snapshot) and its status block.

Every field has a default, so a snapshot written by an older version of the
bot still loads (tradebus checks this when it loads the strategy).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from tradebus.common.ids import IntentId
from tradebus.common.messages import BotStatus
from tradebus.common.money import ZERO
from tradebus.common.positions import Position
from tradebus.strategies.core import BotContext, BotState
from tradebus.strategies.status_fields import bot_status, position_figures, text_or_none
from tradebus_grid.params import GridParams

Phase = Literal["waiting", "running", "flattening", "stopped", "failed"]
"""``waiting``: no price yet; ``running``: the grid trades; ``flattening``: a force
exit waits for its cancels and its market sell; ``stopped``: stopped by its user;
``failed``: stopped on an error (``error`` says which)."""


class GridLevel(msgspec.Struct, kw_only=True):
    """One level ``i`` of the grid: its buy at ``price_i`` and the sell of that buy at
    ``price_(i+1)``.

    ``order``: the level's open order (buy or sell), None when idle;
    ``held``: base bought at this level and not sold yet; ``cost``: the quote
    those buys cost, fees included; ``proceeds``: the quote the sell brought
    in so far, net of fees; ``placed``: orders placed; ``round``: the cycle
    number of the level's current round (its buy and the sells of what it
    bought share it: the intent ids' cycle, by which tradebus books realized
    P&L); ``sells``: sells placed in that round; ``round_trips``: buys sold
    one level up.
    """

    order: IntentId | None = None
    held: Decimal = ZERO
    cost: Decimal = ZERO
    proceeds: Decimal = ZERO
    placed: int = 0
    round: int = 0
    sells: int = 0
    round_trips: int = 0


class GridState(BotState, kw_only=True):
    """Everything a grid bot remembers; ``snapshot()`` is this, encoded.

    ``levels`` maps a level index to its :class:`GridLevel` (levels that
    never traded are absent); ``grid_profit``: the sum over completed round
    trips of sell proceeds minus buy cost (quote, fees included);
    ``resume_phase``: the phase a stop interrupted; ``rounds``: rounds started
    (a level's buy starts one; it numbers the cycles).
    """

    phase: Phase = "waiting"
    resume_phase: Phase = "waiting"
    levels: dict[int, GridLevel] = msgspec.field(default_factory=dict)
    round_trips: int = 0
    rounds: int = 0
    grid_profit: Decimal = ZERO
    bought_quote: Decimal = ZERO
    bought_qty: Decimal = ZERO
    position: Position = msgspec.field(default_factory=Position)
    last_price: Decimal | None = None
    has_trade: bool = False
    last_ts: int = 0
    error: str | None = None


def grid_status(ctx: BotContext, params: GridParams, s: GridState) -> BotStatus:
    """The status block: position and P&L figures, the grid's own in ``details``."""
    open_orders = s.orders.open_orders()
    return bot_status(
        ctx,
        s.orders,
        symbol=ctx.market.symbol,
        phase=s.phase,
        cycle=s.round_trips,
        filled_quote=s.bought_quote,
        filled_qty=s.bought_qty,
        **position_figures(s.position, s.last_price),
        cycles_completed=s.round_trips,
        error=s.error,
        details={
            "lower_price": str(params.lower_price),
            "upper_price": str(params.upper_price),
            "grid_levels": params.grid_levels,
            "quote_per_level": str(params.quote_per_level),
            "buys_open": sum(o.side == "buy" for o in open_orders),
            "sells_open": sum(o.side == "sell" for o in open_orders),
            "round_trips": s.round_trips,
            "grid_profit": text_or_none(s.grid_profit),
        },
    )
