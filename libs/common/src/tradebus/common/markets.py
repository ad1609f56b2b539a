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
from typing import Any, Literal

import msgspec

from tradebus.common.configfile import (
    FileErrors,
    Problem,
    convert_fields,
    file_schema,
    join,
    read_doc,
    says_nothing_new,
    unknown,
)
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


def market_problems(data: dict[str, Any]) -> tuple[list[Problem], dict[str, list[Market]]]:
    """Every error of a markets file's YAML mapping ``data`` (paths
    ``venues.<venue>[i].<field>``), and its markets by venue (meaningful only when there
    is no error)."""
    problems = [Problem(k, unknown(k, ["venues"])) for k in data if k != "venues"]
    raw = data.get("venues")
    if not isinstance(raw, dict):
        what = "required" if raw is None else "expected a mapping of venue -> list of markets"
        return [*problems, Problem("venues", what)], {}
    venues: dict[str, list[Market]] = {}
    for venue, items in raw.items():
        where = join("venues", venue)
        if not TOKEN_PATTERN.match(str(venue)):
            problems.append(Problem(where, f"invalid venue name {venue!r}"))
        if not isinstance(items, list):
            problems.append(Problem(where, "expected a list of markets"))
            continue
        venues[str(venue)] = []
        for i, item in enumerate(items):
            at = join(where, i)
            if not isinstance(item, dict):
                problems.append(Problem(at, "expected a mapping of market fields"))
                continue
            market, found = convert_fields(item, Market, at, placeholders=True)
            problems += found
            if market is None:
                continue
            venues[str(venue)].append(market)
            checks = []
            if not TOKEN_PATTERN.match(market.symbol):
                checks.append(Problem(f"{at}.symbol", f"invalid symbol {market.symbol!r}"))
            for field in ("tick_size", "step_size"):
                value = getattr(market, field)
                if not (value.is_finite() and value > 0):
                    checks.append(Problem(f"{at}.{field}", f"must be > 0 (got {value})"))
            bad = [p.path for p in found]
            problems += [p for p in checks if not says_nothing_new(p.path, p.message, bad)]
    return problems, venues


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
        FileErrors
            (a :class:`ConfigError`) listing every error of the file at once, each as
            ``<file>:<line>: <path>: <message>`` (:mod:`tradebus.common.configfile`).
        """
        doc = read_doc(path, "markets")
        problems, venues = market_problems(doc.data)
        if problems:
            raise FileErrors(doc, "markets", problems)
        return cls(venues)

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


def markets_file_schema() -> dict[str, Any]:
    """The JSON Schema of the markets file (``tradebus config schema markets``)."""
    (root,), defs = msgspec.json.schema_components([MarketsFile], ref_template="#/$defs/{name}")
    return file_schema(root, defs, "tradebus markets file")


def default_markets_path() -> Path:
    """The markets file shipped with tradebus-common (Binance spot majors)."""
    return Path(__file__).parent / "data" / "markets.yaml"
