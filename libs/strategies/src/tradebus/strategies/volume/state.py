"""What a ``volume`` bot remembers (shared/STRATEGIES.md §4): its loops, volumes and position."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from tradebus.common.ids import IntentId
from tradebus.common.money import ZERO
from tradebus.common.positions import CycleBook, Position
from tradebus.strategies.core import BotState


class Loop(msgspec.Struct, kw_only=True):
    """One buy->sell loop: its buy's fills (base ``qty``, quote ``cost``) and what left since."""

    cycle: int
    buy_id: IntentId
    qty: Decimal = ZERO
    cost: Decimal = ZERO
    buy_done: bool = False
    sold: Decimal = ZERO
    written_off: Decimal = ZERO
    sells: int = 0
    sell_id: IntentId | None = None
    stuck: bool = False

    @property
    def unsold(self) -> Decimal:
        """Base quantity bought and not yet sold or written off."""
        return self.qty - self.sold - self.written_off


class PriceAt(msgspec.Struct, array_like=True):
    """A reference price (quote) at a market time (ns): one entry of the volatility window."""

    ts: int
    price: Decimal


Phase = Literal["waiting", "trading", "target_reached", "flattening", "stopped"]
"""``waiting``: no market event yet; ``target_reached``: no more buys, sells still rest;
``flattening``: a force exit waits for its cancels and its market sells."""


class VolumeState(BotState, kw_only=True):
    """Everything a volume bot remembers; ``snapshot()`` is this, encoded.

    ``next_buy_ts`` is the market time (ns) of the next interval; ``own_volume``
    this bot's filled buy notional (quote); ``group_volume`` and
    ``user_volumes`` the largest group numbers the host reported. ``book``
    is the position booked per loop (STRATEGIES.md §4, rule 6: each sell
    realizes against its own loop's buy); ``position`` is only read from a
    snapshot older than ``book`` (one average-cost position), which
    :meth:`~tradebus.strategies.volume.bot.VolumeBot.restore` moves into ``book``.

    ``highs`` / ``lows``: the window's running maximum and minimum of the
    reference price (monotonic queues, oldest first: the first of each is the
    window's high / low); ``pause`` why the buys pause (None: they do not).
    ``turns``: the group's users in play as the host last reported them, and
    whether each holds a turn (None: no report heard yet); ``turn``: this bot
    holds one (``max_concurrent_users``).
    """

    phase: Phase = "waiting"
    loop: int = 0
    loops: list[Loop] = msgspec.field(default_factory=list)
    next_buy_ts: int | None = None
    last_price: Decimal | None = None
    has_trade: bool = False
    last_ts: int = 0
    own_volume: Decimal = ZERO
    group_volume: Decimal = ZERO
    user_volumes: dict[str, Decimal] = msgspec.field(default_factory=dict)
    cycles_completed: int = 0
    buy_error: str | None = None
    error: str | None = None
    book: CycleBook = msgspec.field(default_factory=CycleBook)
    position: Position | None = None
    highs: list[PriceAt] = msgspec.field(default_factory=list)
    lows: list[PriceAt] = msgspec.field(default_factory=list)
    pause: str | None = None
    turns: dict[str, bool] | None = None
    turn: bool = False
