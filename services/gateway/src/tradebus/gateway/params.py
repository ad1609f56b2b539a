"""Path parameters shared by the routes: ids checked against the bus's id pattern.

An id in a path (a bot, an account, a user, a venue, a symbol) must match
:data:`tradebus.common.subjects.TOKEN_PATTERN` (1-64 of ``A-Z a-z 0-9 _ -``),
the pattern every id on the bus has. Anything else (a NUL byte, a subject
wildcard, 300 characters) is a 400 naming the parameter before a handler
runs, so no such value reaches NATS or PostgreSQL.
"""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter

from tradebus.common.subjects import TOKEN_PATTERN

_ID = "(1-64 of A-Z a-z 0-9 _ -)"

BotIdPath = Annotated[
    str, PathParameter(pattern=TOKEN_PATTERN.pattern, description=f"a bot id {_ID}")
]
"""A path parameter naming a bot."""
AccountIdPath = Annotated[
    str, PathParameter(pattern=TOKEN_PATTERN.pattern, description=f"an account id {_ID}")
]
"""A path parameter naming an exchange account."""
UserIdPath = Annotated[
    str, PathParameter(pattern=TOKEN_PATTERN.pattern, description=f"a user id {_ID}")
]
"""A path parameter naming a user."""
VenuePath = Annotated[
    str, PathParameter(pattern=TOKEN_PATTERN.pattern, description=f"a venue {_ID}")
]
"""A path parameter naming a venue (``binance``, ``backpack``)."""
SymbolPath = Annotated[
    str,
    PathParameter(pattern=TOKEN_PATTERN.pattern, description=f"a venue's market symbol {_ID}"),
]
"""A path parameter naming a market by the venue's symbol (``BTCUSDT``, ``BTC_USDC``)."""
