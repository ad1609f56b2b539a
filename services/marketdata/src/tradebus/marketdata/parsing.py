"""What every venue parser gives the feed: the frame kinds and the parser protocol.

A parser turns one raw WebSocket frame into ``(FrameKind, tick or None)`` and
one raw REST answer into a :class:`QuoteTick` (the stale-feed fallback). The
feed, the de-duplication and the health tracking never look inside frames.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Protocol

from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick

Tick = QuoteTick | TradeTick


class FrameKind(StrEnum):
    """What a frame was, for counting."""

    QUOTE = "quote"
    TRADE = "trade"
    DEPTH = "depth"
    SNAPSHOT = "snapshot"
    OTHER_SYMBOL = "other_symbol"
    OTHER = "other"
    CONTROL = "control"
    """A venue's answer to a request of ours (subscription result or error)."""


class Parser(Protocol):
    """A venue's frame and REST parser (:class:`~tradebus.marketdata.binance.BinanceParser`,
    :class:`~tradebus.marketdata.backpack.BackpackParser`)."""

    @property
    def venue(self) -> str:
        """Venue name used in ticks and subjects."""
        ...

    @property
    def symbols(self) -> list[str]:
        """Native symbols this parser publishes."""
        ...

    def parse(self, raw: bytes, ts_recv: int, ts_init: int) -> tuple[FrameKind, Tick | None]:
        """One WebSocket frame received at ``ts_recv`` (ns); ``ts_init`` stamps the tick."""
        ...

    def parse_rest_quote(
        self, raw: bytes, symbol: str, ts_recv: int, ts_init: int
    ) -> QuoteTick | None:
        """The venue's REST best bid/ask answer for ``symbol``; None if a side is empty."""
        ...


def unified_symbols(
    catalog: MarketCatalog, venue: str, only: set[str] | None = None
) -> dict[str, str]:
    """``{native symbol: unified symbol}`` of ``venue``'s configured markets (``only`` filters)."""
    return {
        m.symbol: m.unified_symbol
        for m in catalog.venue_markets(venue)
        if only is None or m.symbol in only
    }


class ParserBase:
    """What the venue parsers share: their venue name and the symbols they publish.

    Parameters
    ----------
    catalog
        Markets; frames for a symbol not configured under ``venue`` are
        :attr:`FrameKind.OTHER_SYMBOL` and not published.
    venue
        Venue name used in ticks and subjects (default: the parser's venue).
    only
        If given, publish only these native symbols; frames of others count
        as :attr:`FrameKind.OTHER_SYMBOL`.
    """

    default_venue: ClassVar[str]

    def __init__(
        self, catalog: MarketCatalog, venue: str | None = None, only: set[str] | None = None
    ) -> None:
        self._venue = venue or self.default_venue
        self._unified = unified_symbols(catalog, self._venue, only)

    @property
    def venue(self) -> str:
        """Venue name of the ticks."""
        return self._venue

    @property
    def symbols(self) -> list[str]:
        """Native symbols published."""
        return list(self._unified)
