"""Recorded Binance ticks (shared/data) to replay on the local Backpack server.

The captures are Binance spot raw feeds; parsed by the one tradebus parser
(:class:`tradebus.feeds.binance.BinanceParser`, through
:func:`tests.support.data.parse_ticks`), their trades and quotes are fed to
:class:`~tests.support.backpack.server.BackpackServer` re-labelled as a
Backpack symbol (``BTCUSDT`` -> ``BTC_USDC``): real prices, sizes and order
of events, on a Backpack market.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.support.data import parse_ticks
from tests.support.markets import BTCUSDT, market
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.readers import read_frames

_CATALOG = MarketCatalog({"binance": [BTCUSDT, market("ETH", "USDT", step="0.0001")]})


def binance_ticks(
    path: Path, *, frames: int | None = None, trades_only: bool = False
) -> list[TradeTick | QuoteTick]:
    """The trades and quotes of the first ``frames`` frames (all if None) of one capture."""
    raw = read_frames(path)
    if frames is not None:
        raw = itertools.islice(raw, frames)
    ticks = parse_ticks(raw, _CATALOG)
    if trades_only:
        return [t for t in ticks if isinstance(t, TradeTick)]
    return ticks
