"""The figures of a bot's status for people: each number with its market's precision.

One policy for every table and block the CLI shows (``bots list``, ``bots
status``, the demo's summary): prices with the market's ``tick_size``,
base-asset quantities with its ``step_size``, percentages with 2 places,
quote-asset P&L and fees with :data:`QUOTE_PLACES`, anything else with
:func:`~tradebus.common.money.format_amount`'s significant digits. The market
comes from the shipped markets file (:func:`market_of`); an unknown one falls
back to significant digits.
"""

from __future__ import annotations

from decimal import Decimal

from tradebus.common.markets import Market, MarketCatalog, UnknownMarketError
from tradebus.common.money import format_amount, format_price, format_qty

QUOTE_PLACES = 4
"""Decimal places of quote-asset money (P&L, fees, notional): cents and below."""

QUOTE_FIELDS = frozenset(
    {
        "filled_quote",
        "position_value",
        "unrealized_pnl",
        "realized_pnl",
        "fees",
    }
)
"""Quote-asset money shown to the cent and below (by name; ``*_pnl`` too). Capital,
volumes and targets keep their significant digits (``5000``, not ``5000.0000``)."""


def market_of(
    catalog: MarketCatalog | None, venue: str | None, symbol: str | None
) -> Market | None:
    """The market of ``symbol`` on ``venue`` (any venue listing it when ``venue`` is None),
    or None when the catalog does not have it."""
    if catalog is None or not symbol:
        return None
    if venue:
        try:
            return catalog.get(venue, symbol)
        except UnknownMarketError:
            return None
    return next((m for _, m in catalog.all_markets() if m.symbol == symbol), None)


RECON_DIGITS = 15
"""Significant digits of reconciliation balances: enough that a ledger and a venue
total that differ are never shown alike (the drift column says by how much)."""


def detail_market(
    catalog: MarketCatalog | None, venue: str | None, name: str, market: Market | None
) -> Market | None:
    """The market a status detail is about: ``<SYMBOL>.<figure>`` details (a spread's
    legs: ``BTCUSDT.avg_price``) name theirs; others are about the bot's ``market``."""
    symbol, dot, _ = name.rpartition(".")
    if dot and symbol:
        return market_of(catalog, venue, symbol) or market
    return market


def format_figure(name: str, value: object, market: Market | None = None) -> str:
    """``value`` of the status figure ``name`` (a field or a detail: ``avg_price``,
    ``leg_a.position``, ``take_profit_progress_pct``) for people; text that is not a
    number as it is, ``None`` as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        return str(value)
    if isinstance(value, str):
        try:
            Decimal(value)
        except ArithmeticError:
            return value
    if isinstance(value, int):
        return str(value)  # counters, nanosecond times: exact
    leaf = name.rsplit(".", 1)[-1]
    if "price" in leaf:
        return format_price(value, market.tick_size if market else None)
    if leaf in QUOTE_FIELDS or leaf.endswith("_pnl"):
        return format_amount(value, QUOTE_PLACES)
    if leaf.endswith("_pct"):
        return format_amount(value, 2)
    if leaf in ("position", "position_difference") or leaf.endswith("qty"):
        return format_qty(value, market.step_size if market else None)
    return format_amount(value)
