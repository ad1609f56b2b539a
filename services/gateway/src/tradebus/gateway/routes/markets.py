"""The markets bots can trade, with their precision, and their recent prices.

``GET /api/v1/markets``

Any signed-in user may read them (401 without a valid token). Each item is
one market of the markets file the gateway validates bots with
(:class:`~tradebus.common.markets.MarketCatalog`): ``venue``, ``symbol``,
``base``, ``quote``, ``kind`` (``spot`` or ``perpetual``), ``tick_size``
(price increment, quote asset), ``step_size`` (quantity increment, base
asset), ``min_notional`` (quote) and ``min_qty`` (base), as decimal strings.
The web page shows prices and quantities to these increments. ``venue``
narrows the list to one venue (an unknown venue: an empty list).

``GET /api/v1/markets/{venue}/{symbol}/prices``

The market's recent prices, oldest first, as ``{"ts": ns, "price": "..."}``
points (market time: the recorded time in a replay): what the bots on it
reported since the gateway started, at most about one a second
(:mod:`tradebus.gateway.prices`); the line of the bot page's price chart.
``since`` (ns) keeps the points at or after it. 404 for a market the markets
file does not hold; an empty list for one no bot runs on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get
from litestar.params import Parameter

from tradebus.common.markets import Market
from tradebus.gateway.auth import SECURED
from tradebus.gateway.context import Caller, Ctx
from tradebus.gateway.errors import not_found
from tradebus.gateway.events import EventHub
from tradebus.gateway.params import SymbolPath, VenuePath


class MarketInfo(Market, frozen=True, kw_only=True):
    """One tradable market (:class:`~tradebus.common.markets.Market`: symbol, assets, kind
    and increments) and its ``venue`` (module docstring)."""

    venue: str


@get("/", security=SECURED, summary="The markets bots can trade, with their precision")
async def list_markets(
    ctx: Ctx,
    principal: Caller,
    venue: Annotated[str | None, Parameter(description="only this venue", max_length=64)] = None,
) -> list[MarketInfo]:
    """Every configured market (of ``venue`` when given), by venue then symbol."""
    del principal  # signed in is enough: markets are the same for everyone
    return [
        MarketInfo(venue=v, **msgspec.structs.asdict(m))
        for v, m in ctx.catalog.all_markets()
        if venue is None or v == venue
    ]


class PricePoint(msgspec.Struct, frozen=True, kw_only=True):
    """One price of a market: ``ts`` (market time, ns) and ``price`` (quote per base)."""

    ts: int
    price: Decimal


class PriceTrail(msgspec.Struct, frozen=True, kw_only=True):
    """A market's recent prices, oldest first (module docstring)."""

    venue: str
    symbol: str
    points: list[PricePoint]


@get(
    "/{venue:str}/{symbol:str}/prices",
    security=SECURED,
    summary="A market's recent prices, as its bots reported them",
)
async def market_prices(
    ctx: Ctx,
    principal: Caller,
    request: Request[Any, Any, Any],
    venue: VenuePath,
    symbol: SymbolPath,
    since: Annotated[
        int | None, Parameter(description="only points at or after this time (ns)", ge=0)
    ] = None,
) -> PriceTrail:
    """The market's recent prices (module docstring)."""
    del principal  # signed in is enough: prices are the same for everyone
    if (venue, symbol) not in ctx.catalog:
        raise not_found("market", f"{venue}:{symbol}")
    hub: EventHub | None = request.app.state.get("events")
    points = [] if hub is None or hub.prices is None else hub.prices.trail(venue, symbol, since)
    return PriceTrail(
        venue=venue, symbol=symbol, points=[PricePoint(ts=ts, price=p) for ts, p in points]
    )


markets_router = Router(
    path="/api/v1/markets", route_handlers=[list_markets, market_prices], tags=["markets"]
)
"""``/api/v1/markets`` (registered in :func:`tradebus.gateway.app.api_routers`)."""
