"""The venues an account can be on, and the credentials each one needs.

* ``GET /api/v1/venues``: ``{"venues": ["paper", <every ccxt exchange id>]}``,
  the values ``POST /api/v1/accounts`` accepts as ``venue``.
* ``GET /api/v1/venues/{venue}``: ``{"venue", "paper", "credentials"}``: the
  credential names the venue requires, in ccxt's ``requiredCredentials`` order
  (``apiKey``, ``secret``, and ``password``, ``uid``... where the venue asks;
  none for ``paper``). The web page's account form shows exactly these
  fields. 404 for a venue that is neither ``paper`` nor a ccxt exchange.

Any signed-in user may read them (401 without a valid token).
"""

from __future__ import annotations

import msgspec
from litestar import Router, get

from tradebus.gateway.auth import SECURED
from tradebus.gateway.context import Caller
from tradebus.gateway.errors import not_found
from tradebus.gateway.exchanges import ccxt_exchanges
from tradebus.gateway.live import PAPER
from tradebus.gateway.params import VenuePath
from tradebus.gateway.routes.accounts import required_credentials


class VenueList(msgspec.Struct, frozen=True, kw_only=True):
    """Every venue an account can be on: ``paper`` first, then ccxt's exchange ids."""

    venues: list[str]


class VenueInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One venue: whether it is the paper venue, and the credential names it requires."""

    venue: str
    paper: bool
    credentials: list[str]


@get("/", security=SECURED, summary="The venues an account can be on")
async def list_venues(principal: Caller) -> VenueList:
    """``paper`` and every ccxt exchange id."""
    del principal  # signed in is enough
    return VenueList(venues=[PAPER, *ccxt_exchanges()])


@get("/{venue:str}", security=SECURED, summary="The credentials a venue requires")
async def venue_info(principal: Caller, venue: VenuePath) -> VenueInfo:
    """The venue's required credential names (module docstring)."""
    del principal  # signed in is enough
    if venue == PAPER:
        return VenueInfo(venue=venue, paper=True, credentials=[])
    if venue not in ccxt_exchanges():
        raise not_found("venue", venue)
    needed = [name for name, required in required_credentials(venue).items() if required]
    return VenueInfo(venue=venue, paper=False, credentials=needed)


venues_router = Router(
    path="/api/v1/venues", route_handlers=[list_venues, venue_info], tags=["accounts"]
)
"""``/api/v1/venues`` (registered in :func:`tradebus.gateway.app.api_routers`)."""
