"""What a ``ladder`` bot remembers (shared/STRATEGIES.md §1): its phase, cycle and position."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from tradebus.common.money import ZERO
from tradebus.common.positions import Position
from tradebus.strategies.core import BotState

Phase = Literal["waiting", "buying", "restarting", "closing", "flattening", "stopped", "failed"]
"""``restarting``: a no-fill restart waits for its cancels; ``closing``: a take-profit
or a stop-loss (``exit``) waits for its sell (and cancels); ``flattening``: a force exit
waits for its cancels and its market sell."""
Exit = Literal["take_profit", "stop_loss"]
"""Why a cycle is closing: its take-profit (also trailing) or its stop-loss."""


class LadderState(BotState, kw_only=True):
    """Everything a ladder bot remembers; ``snapshot()`` is this, encoded.

    Market time and prices are those of the ticks (``last_ts`` ns, ``last_price``
    quote asset); the cycle's fills are in quote (``cycle_filled_quote``) and
    base (``cycle_filled_qty``); ``orders`` (from :class:`BotState`) holds every
    order of the cycle. ``exit`` says why the cycle is ``closing``;
    ``trail_peak`` is the highest ``p`` since the take-profit level was reached
    (None: the trailing take-profit is not armed); ``stop_losses`` counts the
    cycles a stop-loss closed. These three have defaults, so older snapshots load.
    """

    phase: Phase = "waiting"
    cycle: int = 0
    cycle_start_ts: int = 0
    cycle_buy_fills: int = 0
    cycle_filled_quote: Decimal = ZERO
    cycle_filled_qty: Decimal = ZERO
    sells: int = 0
    last_price: Decimal | None = None
    has_trade: bool = False
    last_ts: int = 0
    cycles_completed: int = 0
    error: str | None = None
    position: Position = msgspec.field(default_factory=Position)
    exit: Exit = "take_profit"
    trail_peak: Decimal | None = None
    stop_losses: int = 0
