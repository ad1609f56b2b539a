"""A grid bot for tradebus, written as any user writes a strategy of their own.

The package declares :data:`GRID` as the entry point ``grid`` of the group
``tradebus.strategies`` (its ``pyproject.toml``), so a bot file may say
``strategy: grid`` once the package is installed. ``params`` holds the
parameters and the price levels, ``state`` what a bot remembers (its
snapshot) and its status block, ``bot`` how it trades. The exact rules are
in the package's README.md.
"""

from tradebus.strategies.catalog import StrategyKind
from tradebus_grid.bot import GridBot
from tradebus_grid.params import GridParams

GRID = StrategyKind(params=GridParams, bot=GridBot)
"""The ``grid`` strategy: one market (the bot's ``symbol``)."""
