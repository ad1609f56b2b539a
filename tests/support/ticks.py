"""Market ticks for tests: one trade or quote with only what a test cares about."""

from __future__ import annotations

from decimal import Decimal

from nats.aio.client import Client as NATS

from tradebus.common import subjects
from tradebus.common.codec import encode
from tradebus.common.messages import QuoteTick, Side, TradeTick

NS_PER_SECOND = 1_000_000_000


def trade(
    price: str | Decimal,
    ts: int,
    symbol: str = "BTCUSDT",
    venue: str = "binance",
    aggressor: Side | None = "buy",
    size: str | Decimal = "1",
) -> TradeTick:
    """A trade at ``price`` received at ``ts`` (ns; also its event and init time and id)."""
    return TradeTick(
        venue=venue,
        symbol=symbol,
        unified_symbol=symbol,
        price=Decimal(price),
        size=Decimal(size),
        aggressor=aggressor,
        trade_id=str(ts),
        ts_event=ts,
        ts_recv=ts,
        ts_init=ts,
    )


def quote(
    bid: str | Decimal, ask: str | Decimal, ts: int, symbol: str = "BTCUSDT", venue: str = "binance"
) -> QuoteTick:
    """A best bid/ask received at ``ts`` (ns), size 1 on each side."""
    return QuoteTick(
        venue=venue,
        symbol=symbol,
        unified_symbol=symbol,
        bid=Decimal(bid),
        bid_size=Decimal(1),
        ask=Decimal(ask),
        ask_size=Decimal(1),
        ts_event=ts,
        ts_recv=ts,
        ts_init=ts,
    )


class TradeTape:
    """Publishes the trades of one market to NATS (``md.trade.<venue>.<symbol>``), as
    marketdata does: each one second of market time after the last, unless given a time."""

    def __init__(
        self, nc: NATS, symbol: str = "BTCUSDT", venue: str = "binance", aggressor: Side = "sell"
    ) -> None:
        self.nc, self.symbol, self.venue, self.aggressor = nc, symbol, venue, aggressor
        self.ts = 0
        """The market time (ns) of the last trade published."""

    async def __call__(self, price: str | Decimal, ts: int | None = None) -> None:
        """Publish a trade at ``price``, received at ``ts`` (default: a second after the last)."""
        self.ts = self.ts + NS_PER_SECOND if ts is None else ts
        tick = trade(price, self.ts, self.symbol, self.venue, self.aggressor)
        await self.nc.publish(subjects.md_trade(self.venue, self.symbol), encode(tick))
