"""The four built-in strategies as :class:`~tradebus.strategies.catalog.StrategyKind` s.

``tradebus-strategies`` declares each as an entry point of group
``tradebus.strategies`` (its ``pyproject.toml``), exactly as a user's own
strategy package does; :func:`~tradebus.strategies.catalog.strategy_catalog`
loads them from there. Sources: shared/STRATEGIES.md §1-§4.
"""

from __future__ import annotations

from typing import Any

from tradebus.strategies.catalog import StrategyKind
from tradebus.strategies.ladder.bot import LadderBot
from tradebus.strategies.ladder.params import LadderParams
from tradebus.strategies.martingale.bot import MartingaleBot
from tradebus.strategies.martingale.params import MartingaleParams
from tradebus.strategies.registry import BotSpec
from tradebus.strategies.spread.bot import SpreadBot
from tradebus.strategies.spread.params import SpreadParams
from tradebus.strategies.volume.bot import VolumeBot
from tradebus.strategies.volume.params import VolumeParams


def _spread_symbols(spec: BotSpec, params: Any) -> list[str]:
    """A spread bot trades its two legs, ``symbol_a`` first (STRATEGIES.md §3)."""
    return list(params.symbols())


LADDER = StrategyKind(LadderParams, LadderBot)
"""``ladder``: STRATEGIES.md §1 (seeds 000/001)."""
MARTINGALE = StrategyKind(MartingaleParams, MartingaleBot)
"""``martingale``: STRATEGIES.md §2 (seed 002)."""
SPREAD = StrategyKind(SpreadParams, SpreadBot, _spread_symbols)
"""``spread``: STRATEGIES.md §3 (seed 003), two markets."""
VOLUME = StrategyKind(VolumeParams, VolumeBot)
"""``volume``: STRATEGIES.md §4 (seed 004)."""
