"""What a ``martingale`` bot remembers, and the status block built from it.

Source: shared/STRATEGIES.md §2 (seed 002): the phases of a cycle, the state
:class:`~tradebus.strategies.martingale.bot.MartingaleBot` keeps (its snapshot), and
the §2 status block with the martingale figures in ``details`` (worst-case
capital, base price, safety orders filled, take-profit and stop-loss prices,
next safety price, end of the cooldown).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from tradebus.common.ids import IntentId
from tradebus.common.messages import BotStatus
from tradebus.common.money import HUNDRED, ONE, ZERO, floor_to
from tradebus.common.positions import Position
from tradebus.strategies.core import BotContext, BotState
from tradebus.strategies.martingale.params import (
    MartingaleParams,
    cooldown_ns,
    take_profit_price,
    worst_case_capital,
)
from tradebus.strategies.status_fields import bot_status, position_figures, text_or_none

Phase = Literal["checking", "waiting", "entering", "active", "stop_loss", "trailing_exit",
                "closing", "cooldown", "flattening", "stopped", "failed"]  # fmt: skip
"""``checking``: waits for balances; ``waiting``: the next market event opens a cycle;
``entering``: the base order is out; ``active``: safety orders and take-profit rest;
``stop_loss``: cancels, then sells; ``trailing_exit``: the trailing take-profit fell
back: cancels, then sells; ``closing``: sold, leftover orders being canceled;
``cooldown``: cycle done, the next waits for ``cooldown_until``; ``flattening``: a force
exit waits for its cancels and its market sell."""
RUNNING = frozenset({"entering", "active", "stop_loss", "trailing_exit", "closing"})
MARKET_EXITS: dict[str, str] = {"stop_loss": "sl", "trailing_exit": "tt"}
"""The phases that sell the position marketably, with the legs of their sells."""


class MartingaleState(BotState, kw_only=True):
    """Everything a martingale bot remembers; ``snapshot()`` is this, encoded.

    ``safety_ids`` maps level j to the intent id of its latest order;
    ``unsettled`` maps a canceled order to the filled quantity its cancel
    reported, while some of those fills are still unheard; ``sold``: the
    position was sold (cycle over once nothing is open); ``end_pending``: the
    next market event stamps ``cycle_end_ts``; ``trail_peak``: the highest ``p``
    since the trailing take-profit was armed (None: not armed), ``tt_count`` its
    sells (both with defaults, so older snapshots load).
    """

    phase: Phase = "checking"
    resume_phase: Phase = "checking"
    cycle: int = 0
    restarts: int = 0
    base_price: Decimal | None = None
    base_filled_quote: Decimal = ZERO
    base_filled_qty: Decimal = ZERO
    cycle_filled_quote: Decimal = ZERO
    cycle_filled_qty: Decimal = ZERO
    safeties_due: bool = False
    safety_ids: dict[int, IntentId] = msgspec.field(default_factory=dict)
    safety_filled: int = 0
    tp_count: int = 0
    sl_count: int = 0
    tp_stale: bool = False
    sold: bool = False
    end_pending: bool = False
    cycle_end_ts: int | None = None
    unsettled: dict[IntentId, Decimal] = msgspec.field(default_factory=dict)
    last_price: Decimal | None = None
    has_trade: bool = False
    last_ts: int = 0
    cycles_completed: int = 0
    error: str | None = None
    position: Position = msgspec.field(default_factory=Position)
    trail_peak: Decimal | None = None
    tt_count: int = 0


def martingale_status(ctx: BotContext, prm: MartingaleParams, s: MartingaleState) -> BotStatus:
    """The status block of STRATEGIES.md §2, martingale figures in ``details``
    (with the trailing take-profit's ``trailing_peak`` and ``trailing_stop_price``
    ``peak * (1 - Tr/100)``, None until armed)."""
    pos, tick = s.position, ctx.market.tick_size
    p, avg = s.last_price, pos.avg_price
    progress = tp_price = sl_price = None
    if avg is not None:
        tp_price = take_profit_price(avg, prm, ctx.market)
        if prm.stop_loss_pct:
            sl_price = floor_to(avg * (ONE - prm.stop_loss_pct / HUNDRED), tick)
        if p is not None:
            pct = (p - avg) / avg * HUNDRED / prm.take_profit_pct * HUNDRED
            progress = max(ZERO, min(HUNDRED, pct))
    peak, tr = s.trail_peak, prm.trailing_take_profit_pct
    trail_stop = None if peak is None else peak * (ONE - tr / HUNDRED)
    safeties = [o.price for o in s.orders.open_orders("buy") if o.leg != "b" and o.price]
    end = s.cycle_end_ts
    return bot_status(
        ctx,
        s.orders,
        symbol=ctx.market.symbol,
        phase=s.phase,
        cycle=s.cycle,
        filled_quote=s.cycle_filled_quote,
        filled_qty=s.cycle_filled_qty,
        **position_figures(pos, p),
        take_profit_progress_pct=progress or ZERO,
        cycles_completed=s.cycles_completed,
        error=s.error,
        details={
            "worst_case_capital": str(worst_case_capital(prm)),
            "base_price": text_or_none(s.base_price),
            "safety_orders_filled": s.safety_filled,
            "max_safety_orders": prm.max_safety_orders,
            "take_profit_price": text_or_none(tp_price),
            "stop_loss_price": text_or_none(sl_price),
            "next_safety_price": text_or_none(max(safeties, default=None)),
            "cooldown_until_ns": None if end is None else end + cooldown_ns(prm),
            "trailing_peak": text_or_none(peak),
            "trailing_stop_price": text_or_none(trail_stop),
        },
    )
