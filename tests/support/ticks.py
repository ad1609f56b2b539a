"""Market ticks for tests: one trade or quote with only what a test cares about."""

from __future__ import annotations

from decimal import Decimal

from tradebus.common.messages import QuoteTick, Side, TradeTick


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
