"""What a ``spread`` bot remembers (shared/STRATEGIES.md §3): its round, references and legs."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from tradebus.common.positions import Position
from tradebus.strategies.core import BotState

Phase = Literal["waiting", "watching", "open", "closing", "flattening", "stopped", "failed"]
"""``waiting``: for both prices (new references); ``watching``: for the entry spread;
``open``: a round holds legs (or waits for them); ``closing``: both legs are being closed;
``flattening``: a force exit waits for its cancels and its market closes."""
Direction = Literal["", "short_a", "long_a"]
"""``short_a``: short A, long B (entered at ``spread >= E``); ``long_a`` the opposite."""


class SpreadState(BotState, kw_only=True):
    """Everything a spread bot remembers; ``snapshot()`` is this, encoded.

    ``prices`` is ``p`` per native symbol (quote per base), ``traded`` whether
    that symbol has had a trade yet (until then ``p`` is its quote mid);
    ``ref_a``/``ref_b`` the round's references; ``pos_a``/``pos_b`` the legs.
    """

    phase: Phase = "waiting"
    resume_phase: Phase = "waiting"
    round: int = 0
    rounds_completed: int = 0
    round_traded: bool = False
    ref_a: Decimal | None = None
    ref_b: Decimal | None = None
    prices: dict[str, Decimal] = {}
    traded: dict[str, bool] = {}
    last_ts: int = 0
    direction: Direction = ""
    adds_done: int = 0
    closes: int = 0
    broken: bool = False
    fail_after_close: bool = False
    error: str | None = None
    pos_a: Position = msgspec.field(default_factory=Position)
    pos_b: Position = msgspec.field(default_factory=Position)
