"""Names of the recorded files in shared/data used by tests."""

from __future__ import annotations

from pathlib import Path

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
