"""The market data execution listens to: trades and quotes that fill paper orders, and the
last trade price of the markets live accounts trade (notional limits of market orders).

Core NATS subscriptions (no JetStream: a tick missed while execution restarts
is gone, as it is for a real exchange):

* ``md.*.<venue>.*`` for every market-data venue of a paper account: each
  trade is matched against that venue's :class:`PaperExchange` (its fills
  booked through the engine, under its lock), each quote makes due orders live;
* ``md.trade.<venue>.*`` for every market-data venue only live accounts use:
  the last trade price per symbol.

Venues are added as accounts are loaded, at start or at run time
(:meth:`MarketFeed.watch_paper`, :meth:`MarketFeed.watch_live`); a
subscription stays until execution stops (another account may need it).
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from tradebus.common import subjects
from tradebus.common.codec import decode_market
from tradebus.common.messages import TradeTick
from tradebus.engine.core import ExecutionEngine
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.execution.metrics import ExecutionMetrics

MD_PENDING_MSGS = 2_000_000
MD_PENDING_BYTES = 1024 * 1024 * 1024


class MarketFeed:
    """Market data for paper venues and live accounts' prices (module docstring).

    Parameters
    ----------
    nc
        The service's NATS connection.
    exchanges
        Paper exchanges by market-data venue (shared: accounts loaded at run time add
        theirs to it).
    metrics
        Execution metrics (ticks, paper fills).
    """

    def __init__(
        self, nc: NATS, exchanges: dict[str, PaperExchange], metrics: ExecutionMetrics
    ) -> None:
        self._nc = nc
        self._exchanges = exchanges
        self._metrics = metrics
        self._engine: ExecutionEngine | None = None
        self._subs: dict[str, Any] = {}
        self._trade_prices: dict[tuple[str, str], Decimal] = {}
        self._tick_counters: dict[tuple[str, str], Any] = {}

    def attach(self, engine: ExecutionEngine) -> None:
        """The engine that books paper fills (set once it exists)."""
        self._engine = engine

    def last_price(self, venue: str, symbol: str) -> Decimal | None:
        """The last trade price of ``symbol`` on market-data venue ``venue``, or None."""
        exchange = self._exchanges.get(venue)
        if exchange is not None:
            return exchange.last_trade(symbol)
        return self._trade_prices.get((venue, symbol))

    async def watch_paper(self, venue: str) -> None:
        """Feed ``venue``'s trades and quotes to its paper exchange (once per venue)."""
        key = f"paper:{venue}"
        if key not in self._subs:
            self._subs[key] = await self._nc.subscribe(
                f"md.*.{subjects.token(venue, 'venue')}.*",
                cb=self._on_market,
                pending_msgs_limit=MD_PENDING_MSGS,
                pending_bytes_limit=MD_PENDING_BYTES,
            )

    async def watch_live(self, venue: str) -> None:
        """Keep the last trade prices of ``venue`` (once; not needed for a paper venue)."""
        key = f"live:{venue}"
        if key not in self._subs and venue not in self._exchanges:
            self._subs[key] = await self._nc.subscribe(
                f"md.trade.{subjects.token(venue, 'venue')}.*", cb=self._on_live_trade
            )

    async def close(self) -> None:
        """Unsubscribe from everything."""
        for sub in self._subs.values():
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    async def _on_market(self, msg: Msg) -> None:
        try:
            tick = decode_market(msg.data)
        except msgspec.MsgspecError:
            return
        exchange = self._exchanges.get(tick.venue)
        engine = self._engine
        if exchange is None or engine is None:
            return
        key = (tick.venue, tick.symbol)
        counter = self._tick_counters.get(key)
        if counter is None:
            counter = self._tick_counters[key] = self._metrics.ticks.labels(
                venue=tick.venue, symbol=tick.symbol
            )
        counter.inc()
        async with engine.lock:
            if isinstance(tick, TradeTick):
                fills = exchange.on_trade(tick)
                if fills:
                    self._metrics.venue_fills.labels(venue="paper").inc(len(fills))
                    await engine.record_fills(fills)
            else:
                exchange.on_quote(tick)

    async def _on_live_trade(self, msg: Msg) -> None:
        with contextlib.suppress(msgspec.MsgspecError):
            tick = decode_market(msg.data)
            if isinstance(tick, TradeTick):
                self._trade_prices[(tick.venue, tick.symbol)] = tick.price
