"""The ``tardis-trades`` and ``tardis-quotes`` formats: Tardis.dev downloadable CSV files.

https://docs.tardis.dev/downloadable-csv-files; times are integer
microseconds, rows are kept in file order (details in
:mod:`tradebus.feeds.readers`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.files import (
    NS_PER_US,
    DataFileError,
    csv_rows,
    int_field,
    price_field,
    size_field,
)

__all__ = [
    "TARDIS_QUOTE_COLUMNS",
    "TARDIS_TRADE_COLUMNS",
    "read_tardis_quotes",
    "read_tardis_trades",
]

TARDIS_TRADE_COLUMNS = (
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "id",
    "side",
    "price",
    "amount",
)
"""Header of a Tardis.dev ``trades`` CSV file."""

TARDIS_QUOTE_COLUMNS = (
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "ask_amount",
    "ask_price",
    "bid_price",
    "bid_amount",
)
"""Header of a Tardis.dev ``quotes`` CSV file."""

_AGGRESSOR = {"buy": "buy", "sell": "sell", "unknown": None}


def read_tardis_trades(path: Path, symbol: str, venue: str) -> Iterator[TradeTick]:
    """Trades of one Tardis.dev ``trades`` CSV file.

    Raises
    ------
    DataFileError
        While iterating, on a malformed row (``path:line: what is wrong``).
    """
    for line, (ts, local_ts, trade_id, side, price, amount) in csv_rows(
        path, ("timestamp", "local_timestamp", "id", "side", "price", "amount")
    ):
        if side not in _AGGRESSOR:
            raise DataFileError(f"{path}:{line}: side {side!r} is not buy, sell or unknown")
        ts_recv = int_field(local_ts, path, line, "local_timestamp") * NS_PER_US
        yield TradeTick(
            venue=venue,
            symbol=symbol,
            unified_symbol=symbol,
            price=price_field(price, path, line, "price"),
            size=size_field(amount, path, line, "amount"),
            aggressor=_AGGRESSOR[side],  # type: ignore[arg-type]
            trade_id=trade_id or f"{path.name}:{line}",
            ts_event=int_field(ts, path, line, "timestamp") * NS_PER_US,
            ts_recv=ts_recv,
            ts_init=ts_recv,
        )


def read_tardis_quotes(path: Path, symbol: str, venue: str) -> Iterator[QuoteTick]:
    """Quotes of one Tardis.dev ``quotes`` CSV file (rows with an empty side skipped).

    Raises
    ------
    DataFileError
        While iterating, on a malformed row (``path:line: what is wrong``).
    """
    for line, (ts, local_ts, ask_amount, ask_price, bid_price, bid_amount) in csv_rows(
        path,
        ("timestamp", "local_timestamp", "ask_amount", "ask_price", "bid_price", "bid_amount"),
    ):
        if not (ask_amount and ask_price and bid_price and bid_amount):
            continue
        ts_recv = int_field(local_ts, path, line, "local_timestamp") * NS_PER_US
        yield QuoteTick(
            venue=venue,
            symbol=symbol,
            unified_symbol=symbol,
            bid=price_field(bid_price, path, line, "bid_price"),
            bid_size=size_field(bid_amount, path, line, "bid_amount"),
            ask=price_field(ask_price, path, line, "ask_price"),
            ask_size=size_field(ask_amount, path, line, "ask_amount"),
            ts_event=int_field(ts, path, line, "timestamp") * NS_PER_US,
            ts_recv=ts_recv,
            ts_init=ts_recv,
        )
