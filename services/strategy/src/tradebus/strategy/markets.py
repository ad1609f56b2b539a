"""The strategy host learns the markets' rules from execution, over the bus.

Execution loads each live venue's markets (ccxt ``load_markets``, refreshed
every ``markets_refresh_seconds``) and answers ``exec.query.markets`` with
them, the markets file filling in for paper venues. The host asks at start,
before it reads its bot file, and again every :data:`LEARN_EVERY_SECONDS`, so
a bot is built with the increments and minimums the venue itself states, not
with a copy of the file. Without an answer (execution not up yet, an old
execution) the host goes on with its markets file and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from nats.aio.client import Client as NATS

from tradebus.common import subjects
from tradebus.common.codec import decode_markets_reply, encode
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import ErrorReply, MarketsQuery

log = logging.getLogger(__name__)

ASK_TIMEOUT_SECONDS = 2.0
LEARN_EVERY_SECONDS = 60.0


async def learn_markets(nc: NATS, catalog: MarketCatalog) -> int | None:
    """Ask execution for its markets and take them into ``catalog`` (in place); the
    number that changed, None without an answer (logged; the catalog stays)."""
    try:
        msg = await nc.request(
            subjects.exec_query("markets"), encode(MarketsQuery()), timeout=ASK_TIMEOUT_SECONDS
        )
        reply = decode_markets_reply(msg.data)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
        log.warning(
            "execution did not tell its markets: the markets file's rules are used",
            extra={"error": type(exc).__name__},
        )
        return None
    if isinstance(reply, ErrorReply):
        log.warning("execution refused to tell its markets", extra={"error": reply.message})
        return None
    changed = catalog.update(reply.venues)
    if changed:
        log.info("market rules from execution", extra={"changed": len(changed)})
    for venue, market in changed:
        log.debug(
            "market rules from execution",
            extra={
                "venue": venue,
                "symbol": market.symbol,
                "tick": str(market.tick_size),
                "step": str(market.step_size),
            },
        )
    return len(changed)


async def keep_learning(
    nc: NATS, catalog: MarketCatalog, every_seconds: float = LEARN_EVERY_SECONDS
) -> None:
    """:func:`learn_markets` every ``every_seconds``, until cancelled."""
    while True:
        await asyncio.sleep(every_seconds)
        with contextlib.suppress(nats.errors.Error):
            await learn_markets(nc, catalog)
