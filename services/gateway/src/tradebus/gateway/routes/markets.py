"""The markets bots can trade, with their precision: ``GET /api/v1/markets``.

Any signed-in user may read them (401 without a valid token). Each item is
one market of the markets file the gateway validates bots with
(:class:`~tradebus.common.markets.MarketCatalog`): ``venue``, ``symbol``,
``base``, ``quote``, ``kind`` (``spot`` or ``perpetual``), ``tick_size``
(price increment, quote asset), ``step_size`` (quantity increment, base
asset), ``min_notional`` (quote) and ``min_qty`` (base), as decimal strings.
The web page shows prices and quantities to these increments. ``venue``
narrows the list to one venue (an unknown venue: an empty list).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec
from litestar import Router, get
from litestar.params import Parameter

from tradebus.common.markets import MarketKind
from tradebus.gateway.auth import SECURED
from tradebus.gateway.context import Caller, Ctx


class MarketInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One tradable market and its increments (module docstring)."""

    venue: str
    symbol: str
    base: str
    quote: str
    kind: MarketKind
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal
    min_qty: Decimal


@get("/", security=SECURED, summary="The markets bots can trade, with their precision")
async def list_markets(
    ctx: Ctx,
    principal: Caller,
    venue: Annotated[str | None, Parameter(description="only this venue", max_length=64)] = None,
) -> list[MarketInfo]:
    """Every configured market (of ``venue`` when given), by venue then symbol."""
    del principal  # signed in is enough: markets are the same for everyone
    return [
        MarketInfo(
            venue=v,
            symbol=m.symbol,
            base=m.base,
            quote=m.quote,
            kind=m.kind,
            tick_size=m.tick_size,
            step_size=m.step_size,
            min_notional=m.min_notional,
            min_qty=m.min_qty,
        )
        for v, m in ctx.catalog.all_markets()
        if venue is None or v == venue
    ]


markets_router = Router(path="/api/v1/markets", route_handlers=[list_markets], tags=["markets"])
"""``/api/v1/markets`` (registered in :func:`tradebus.gateway.app.api_routers`)."""
