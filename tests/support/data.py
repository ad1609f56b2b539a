"""The recorded files in shared/data used by tests: their names, and their ticks."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.binance import BinanceParser

BTC_RAW = [
    "binance-spot_BTCUSDT_rawfeed_2024-08-08_2354-2400Z.txt.gz",
    "binance-spot_BTCUSDT_rawfeed_2024-08-09_0000-0005Z.txt.gz",
]
ETH_RAW = [
    "binance-spot_ETHUSDT_rawfeed_2024-08-08_2354-2400Z.txt.gz",
    "binance-spot_ETHUSDT_rawfeed_2024-08-09_0000-0005Z.txt.gz",
]


def raw_feed_files(data_dir: Path) -> list[Path]:
    """Every Binance spot raw-feed capture (BTCUSDT and ETHUSDT, both windows)."""
    return [data_dir / name for name in BTC_RAW + ETH_RAW]


def parse_ticks(
    frames: Iterable[tuple[int, bytes]], catalog: MarketCatalog
) -> list[TradeTick | QuoteTick]:
    """The trades and quotes of recorded ``(ts_recv, frame)`` pairs, parsed by one
    :class:`BinanceParser` of ``catalog`` (receive time as init time too)."""
    parser = BinanceParser(catalog)
    ticks = []
    for ts, raw in frames:
        _, tick = parser.parse(raw, ts, ts)
        if tick is not None:
            ticks.append(tick)
    return ticks
