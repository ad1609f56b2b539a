"""What every venue parser gives its users: frame kinds, the parser protocol, the shared base.

A parser turns one raw WebSocket frame into ``(FrameKind, tick or None)`` and
one raw REST answer into a :class:`QuoteTick` (the stale-feed fallback). The
marketdata feed, its de-duplication and its health tracking never look
inside frames. Recorded frames (a capture read by :mod:`tradebus.feeds.readers`)
go through :meth:`ParserBase.recorded`, which a venue may speed up for the
frames its captures are made of (:meth:`~tradebus.feeds.binance.BinanceParser.recorded`)
as long as every tick stays the one :meth:`Parser.parse` gives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Protocol, Self

import msgspec

from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.files import DataFileError

Tick = QuoteTick | TradeTick

Frame = tuple[int, bytes]
"""``(ts_recv, raw frame)``: one frame and its receive time, ns since the epoch."""

RecordedFrame = tuple[int, bytes, Path, int]
"""``(ts_recv, raw frame, file, line number)``: one frame of a recorded file."""


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
    """A venue's frame and REST parser (:class:`~tradebus.feeds.binance.BinanceParser`,
    :class:`~tradebus.feeds.backpack.BackpackParser`,
    :class:`~tradebus.feeds.ccxt_parser.CcxtParser`)."""

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

    def recorded(self, frames: Iterable[RecordedFrame]) -> Iterator[Tick]:
        """The ticks of recorded frames, ``ts_init = ts_recv`` (see :meth:`ParserBase.recorded`)."""
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


class ParserBase(ABC):
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
    frame_name: ClassVar[str]
    """How errors name the venue's frames (``bad Binance frame``)."""

    def __init__(
        self, catalog: MarketCatalog, venue: str | None = None, only: set[str] | None = None
    ) -> None:
        self._venue = venue or self.default_venue
        self._unified = unified_symbols(catalog, self._venue, only)

    @classmethod
    def of_symbols(cls, symbols: Mapping[str, str], venue: str | None = None) -> Self:
        """A parser of exactly ``symbols`` (``{native: unified}``), without a market catalog.

        For files replayed as one market (the backtest names a market by its
        native symbol: ``{"BTCUSDT": "BTCUSDT"}``).
        """
        parser = cls(MarketCatalog({}), venue or cls.default_venue)
        parser._unified = dict(symbols)
        return parser

    @property
    def venue(self) -> str:
        """Venue name of the ticks."""
        return self._venue

    @property
    def symbols(self) -> list[str]:
        """Native symbols published."""
        return list(self._unified)

    @abstractmethod
    def parse(self, raw: bytes, ts_recv: int, ts_init: int) -> tuple[FrameKind, Tick | None]:
        """One frame received at ``ts_recv`` (ns); ``ts_init`` stamps the tick (per venue)."""

    @abstractmethod
    def parse_rest_quote(
        self, raw: bytes, symbol: str, ts_recv: int, ts_init: int
    ) -> QuoteTick | None:
        """The venue's REST best bid/ask answer for ``symbol`` (per venue)."""

    def recorded(self, frames: Iterable[RecordedFrame]) -> Iterator[Tick]:
        """The quotes and trades of recorded frames, in their order, ``ts_init = ts_recv``.

        Each tick is the one :meth:`parse` gives for the frame received at
        ``ts_recv`` (a replay is deterministic: no wall clock); frames without
        a tick (depth, snapshots, other symbols, control) are skipped.

        Raises
        ------
        DataFileError
            While iterating, on a frame :meth:`parse` refuses:
            ``<file>:<line>: bad <venue> frame: <why>``.
        """
        for ts, raw, path, line in frames:
            tick = self._parse_recorded(raw, ts, path, line)
            if tick is not None:
                yield tick

    def _parse_recorded(self, raw: bytes, ts: int, path: Path, line: int) -> Tick | None:
        """:meth:`parse` of one recorded frame, its errors naming ``path:line``."""
        try:
            return self.parse(raw, ts, ts)[1]
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DataFileError(f"{path}:{line}: bad {self.frame_name} frame: {exc}") from None
