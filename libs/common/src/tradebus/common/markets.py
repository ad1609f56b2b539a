"""Market specifications (tick size, step size, minimums) per venue and symbol.

A markets file is YAML::

    venues:
      binance:
        - {symbol: BTCUSDT, base: BTC, quote: USDT, tick_size: "0.01",
           step_size: "0.00001", min_notional: "5"}

Live venues (ccxt) load the same facts from the exchange; the file serves the
paper venue, replays and the strategy hosts.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec

from tradebus.common.config import ConfigError, load_yaml
from tradebus.common.subjects import TOKEN_PATTERN

MarketKind = Literal["spot", "perpetual"]


class Market(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One tradable market of a venue.

    ``symbol`` is the venue's native id (``BTCUSDT``), ``base``/``quote`` the
    assets; ``tick_size`` is the price increment (quote), ``step_size`` the
    quantity increment (base), ``min_notional`` the smallest order value in
    the quote asset, ``min_qty`` the smallest quantity in the base asset.
    ``oto`` says what the venue offers toward a one-triggers-other order (a buy whose
    sell the venue places when it fills) on this market, as execution read it from
    ccxt (:func:`tradebus.execution.oto.oto_offer`); empty where no live venue said
    (the paper venue, the markets file). The volume bot emulates OTO everywhere and
    shows this as the reason.
    """

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal = Decimal(0)
    min_qty: Decimal = Decimal(0)
    kind: MarketKind = "spot"
    oto: str = ""

    @property
    def unified_symbol(self) -> str:
        """ccxt-style ``BASE/QUOTE``."""
        return f"{self.base}/{self.quote}"


class MarketsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The markets YAML file: ``venues: {<venue>: [Market, ...]}``."""

    venues: dict[str, list[Market]]


class _RawMarketsFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The file's shape before each venue's markets are checked (:meth:`MarketCatalog.load`)."""

    venues: dict[str, list[dict[str, object]]]


class UnknownMarketError(KeyError):
    """No market with that venue and symbol is configured."""


class MarketCatalog:
    """Lookup of :class:`Market` by ``(venue, symbol)``."""

    def __init__(self, venues: dict[str, list[Market]]) -> None:
        self._markets: dict[tuple[str, str], Market] = {}
        for venue, markets in venues.items():
            for market in markets:
                self._markets[(venue, market.symbol)] = market

    @classmethod
    def load(cls, path: str | Path) -> MarketCatalog:
        """Read a markets file.

        Raises
        ------
        ConfigError
            If the file is unreadable or invalid (the path of the bad field is named),
            or a size is not positive.
        """
        raw = load_yaml(path, _RawMarketsFile)
        venues: dict[str, list[Market]] = {}
        for venue, items in raw.venues.items():
            try:  # one venue at a time: msgspec's error path would not name the dict key
                venues[venue] = msgspec.convert(items, list[Market])
            except msgspec.ValidationError as exc:
                msg, at, path_in = str(exc).rpartition(" - at `$")
                detail = f"$.venues.{venue}{path_in.rstrip('`')}: {msg}" if at else exc
                raise ConfigError(f"{path}: {detail}") from None
        parsed = MarketsFile(venues=venues)
        for venue, markets in parsed.venues.items():
            if not TOKEN_PATTERN.match(venue):
                raise ConfigError(f"{path}: $.venues: invalid venue name {venue!r}")
            for i, m in enumerate(markets):
                where = f"{path}: $.venues.{venue}[{i}]"
                if not TOKEN_PATTERN.match(m.symbol):
                    raise ConfigError(f"{where}.symbol: invalid symbol {m.symbol!r}")
                for field in ("tick_size", "step_size"):
                    value = getattr(m, field)
                    if not (value.is_finite() and value > 0):
                        raise ConfigError(f"{where}.{field}: must be > 0")
        return cls(parsed.venues)

    def get(self, venue: str, symbol: str) -> Market:
        """The market ``symbol`` of ``venue``.

        Raises
        ------
        UnknownMarketError
            If it is not configured.
        """
        try:
            return self._markets[(venue, symbol)]
        except KeyError:
            raise UnknownMarketError(f"unknown market {venue}:{symbol}") from None

    def all_markets(self) -> list[tuple[str, Market]]:
        """Every configured market as ``(venue, market)``, by venue then symbol."""
        return sorted(
            ((v, m) for (v, _), m in self._markets.items()), key=lambda vm: (vm[0], vm[1].symbol)
        )

    def venue_markets(self, venue: str) -> list[Market]:
        """Every configured market of ``venue``."""
        return [m for (v, _), m in self._markets.items() if v == venue]

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._markets

    def update(self, venues: dict[str, list[Market]]) -> list[tuple[str, Market]]:
        """Take ``venues``' markets as they are now, in place (every holder of this catalog
        sees them): a venue's own answer replaces the file's entry of the same symbol and
        adds the symbols the file lacks. Returns the ``(venue, market)`` that changed."""
        changed = []
        for venue, markets in venues.items():
            for market in markets:
                if self._markets.get((venue, market.symbol)) != market:
                    self._markets[(venue, market.symbol)] = market
                    changed.append((venue, market))
        return changed


def default_markets_path() -> Path:
    """The markets file shipped with tradebus-common (Binance spot majors)."""
    return Path(__file__).parent / "data" / "markets.yaml"
