"""The data readers of ``tradebus backtest`` (tradebus.feeds.readers).

Every format is read from small files written by the test (plain and ``.gz``);
``binance-raw`` also from the first real BTCUSDT capture of shared/data,
checked against a direct parse of its frames by :class:`BinanceParser`.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.data import BTC_RAW
from tests.support.markets import BTCUSDT_MIN
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.binance import BinanceParser
from tradebus.feeds.readers import (
    FORMATS,
    DataFileError,
    count_lines,
    estimate_events,
    read_events,
    read_frames,
)

S = 1_000_000_000
T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC, Unix seconds


def trades(events: Iterable[QuoteTick | TradeTick]) -> list[TradeTick]:
    """``events``, each checked to be a trade (the formats of trades and bars)."""
    every = list(events)
    out = [e for e in every if isinstance(e, TradeTick)]
    assert len(out) == len(every), "a quote among the trades"
    return out


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``, gzip-compressed if it ends in ``.gz``."""
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture(params=["", ".gz"], ids=["text", "gz"])
def gz(request: pytest.FixtureRequest) -> str:
    """Suffix added to fixture file names: plain text, then gzip."""
    return request.param


# --------------------------------------------------------------------------
# Format names
# --------------------------------------------------------------------------


def test_formats_and_unknown_format(tmp_path: Path) -> None:
    assert FORMATS == (
        "binance-raw",
        "tardis-trades",
        "tardis-quotes",
        "ohlcv-csv",
        "coinbase-candles",
    )
    path = write(tmp_path / "x.csv", "a\n")
    with pytest.raises(ValueError, match="unknown data format 'nope'") as info:
        read_events([path], "nope", "BTCUSDT")  # raises at the call, not when iterated
    assert not isinstance(info.value, DataFileError)
    for name in FORMATS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="formats: binance-raw"):
        estimate_events([path], "nope")


def test_missing_file_fails_at_call(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.csv"):
        read_events([tmp_path / "absent.csv"], "ohlcv-csv", "X")


# --------------------------------------------------------------------------
# Tardis.dev
# --------------------------------------------------------------------------

TARDIS_TRADES = """exchange,symbol,timestamp,local_timestamp,id,side,price,amount
binance-futures,BTCUSDT,1582329601096000,1582329603502092,123,buy,9682.01,0.840
binance-futures,BTCUSDT,1582329601096001,1582329603502093,124,sell,9681.9,0.003
binance-futures,BTCUSDT,1582329601097000,1582329603600000,,unknown,9681.90,1
"""


def test_tardis_trades(tmp_path: Path, gz: str) -> None:
    path = write(tmp_path / f"trades.csv{gz}", TARDIS_TRADES)
    ticks = trades(read_events([path], "tardis-trades", "BTCUSDT", venue="binance-futures"))
    assert ticks[0] == TradeTick(
        venue="binance-futures",
        symbol="BTCUSDT",
        unified_symbol="BTCUSDT",
        price=Decimal("9682.01"),
        size=Decimal("0.840"),
        aggressor="buy",
        trade_id="123",
        ts_event=1582329601096000000,
        ts_recv=1582329603502092000,
        ts_init=1582329603502092000,
    )
    assert [(t.aggressor, t.trade_id, t.price, t.ts_event) for t in ticks[1:]] == [
        ("sell", "124", Decimal("9681.9"), 1582329601096001000),
        (None, f"trades.csv{gz}:4", Decimal("9681.90"), 1582329601097000000),
    ]
    assert all(type(t.price) is Decimal and type(t.size) is Decimal for t in ticks)
    assert estimate_events([path], "tardis-trades") == 3


TARDIS_QUOTES = """\
exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount
binance-futures,BTCUSDT,1582329601096000,1582329603502092,0.84,9682,9681.92,0.67
binance-futures,BTCUSDT,1582329603401000,1582329603522418,,,9681.83,0.003
binance-futures,BTCUSDT,1582329603401000,1582329603522419,0.5,9682.10,9681.83,0.003
"""


def test_tardis_quotes(tmp_path: Path, gz: str) -> None:
    path = write(tmp_path / f"quotes.csv{gz}", TARDIS_QUOTES)
    ticks = list(read_events([path], "tardis-quotes", "BTCUSDT"))
    assert ticks == [
        QuoteTick(
            venue="backtest",
            symbol="BTCUSDT",
            unified_symbol="BTCUSDT",
            bid=Decimal("9681.92"),
            bid_size=Decimal("0.67"),
            ask=Decimal("9682"),
            ask_size=Decimal("0.84"),
            ts_event=1582329601096000000,
            ts_recv=1582329603502092000,
            ts_init=1582329603502092000,
        ),
        # the row with an empty ask side is skipped
        QuoteTick(
            venue="backtest",
            symbol="BTCUSDT",
            unified_symbol="BTCUSDT",
            bid=Decimal("9681.83"),
            bid_size=Decimal("0.003"),
            ask=Decimal("9682.10"),
            ask_size=Decimal("0.5"),
            ts_event=1582329603401000000,
            ts_recv=1582329603522419000,
            ts_init=1582329603522419000,
        ),
    ]


def test_tardis_columns_in_any_order_and_files_concatenated(tmp_path: Path) -> None:
    first = write(
        tmp_path / "a.csv",
        "price,amount,side,id,local_timestamp,timestamp,symbol,exchange\n"
        "10.5,2,buy,1,2000,1000,X,ex\n",
    )
    second = write(tmp_path / "b.csv.gz", TARDIS_TRADES)
    ticks = trades(read_events([first, second], "tardis-trades", "X"))
    assert [t.trade_id for t in ticks] == ["1", "123", "124", "b.csv.gz:4"]
    assert (ticks[0].price, ticks[0].ts_event, ticks[0].ts_recv) == (
        Decimal("10.5"),
        10**6,
        2 * 10**6,
    )
    assert estimate_events([first, second], "tardis-trades") == 4


# --------------------------------------------------------------------------
# Bars: ohlcv-csv
# --------------------------------------------------------------------------

UP = ("100.10", "101.5", "99.25", "100.10", "8.4")  # close == open counts as up
DOWN = ("100.10", "101.5", "99.25", "100.05", "2")


def ohlcv(rows: list[tuple[str, tuple[str, ...]]]) -> str:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [",".join((ts, *bar)) for ts, bar in rows]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "stamps",
    [
        [str(T0), str(T0 + 60), str(T0 + 120)],
        [str(T0 * 1000), str((T0 + 60) * 1000), str((T0 + 120) * 1000)],
        ["2023-11-14 22:13:20.000000", "2023-11-14T22:14:20Z", "2023-11-14T23:15:20+01:00"],
    ],
    ids=["seconds", "milliseconds", "iso8601"],
)
def test_ohlcv_bar_order_spacing_and_ids(tmp_path: Path, gz: str, stamps: list[str]) -> None:
    path = write(tmp_path / f"bars.csv{gz}", ohlcv(list(zip(stamps, [UP, DOWN, UP], strict=True))))
    ticks = trades(read_events([path], "ohlcv-csv", "BTC-PERP", venue="ftx"))
    assert all(isinstance(t, TradeTick) for t in ticks) and len(ticks) == 12
    assert {(t.venue, t.symbol, t.unified_symbol, t.aggressor) for t in ticks} == {
        ("ftx", "BTC-PERP", "BTC-PERP", None)
    }
    prices = [str(t.price) for t in ticks]
    assert prices[:4] == ["100.10", "99.25", "101.5", "100.10"]  # up: open, low, high, close
    assert prices[4:8] == ["100.10", "101.5", "99.25", "100.05"]  # down: open, high, low, close
    assert prices[8:] == prices[:4]
    # 60 s bars: ticks at +0, +15, +30, +45 s; the last bar takes the previous interval
    start = T0 * S
    assert [t.ts_event for t in ticks] == [start + i * 15 * S for i in range(12)]
    assert all(t.ts_event == t.ts_recv == t.ts_init for t in ticks)
    assert [t.size for t in ticks] == [Decimal("2.1")] * 4 + [Decimal("0.5")] * 4 + [
        Decimal("2.1")
    ] * 4
    assert [t.trade_id for t in ticks[:5]] == [
        f"bar-{start}-0",
        f"bar-{start}-1",
        f"bar-{start}-2",
        f"bar-{start}-3",
        f"bar-{start + 60 * S}-0",
    ]
    assert estimate_events([path], "ohlcv-csv") == 12
    assert count_lines(path) == 4


def test_ohlcv_gap_does_not_stretch_a_bar_and_single_bar(tmp_path: Path) -> None:
    # 60 s bars with a 10-minute gap after the second
    path = write(
        tmp_path / "gap.csv", ohlcv([(str(T0), UP), (str(T0 + 60), UP), (str(T0 + 660), UP)])
    )
    times = [t.ts_event - T0 * S for t in read_events([path], "ohlcv-csv", "X")]
    assert times == [i * 15 * S for i in range(8)] + [660 * S + i * 15 * S for i in range(4)]
    one = write(tmp_path / "one.csv", ohlcv([("1700000000.5", DOWN)]))
    times = [t.ts_event for t in read_events([one], "ohlcv-csv", "X")]
    assert times == [T0 * S + S // 2] * 4  # duration unknown: all at the bar's time


def test_ohlcv_extra_columns_and_microseconds(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv",
        f"timestamp,open,high,low,close,volume,trades\n{T0 * 10**6},1,2,0.5,1.5,4,9\n",
    )
    ticks = trades(read_events([path], "ohlcv-csv", "X"))
    assert [t.price for t in ticks] == [Decimal(1), Decimal("0.5"), Decimal(2), Decimal("1.5")]
    assert ticks[0].ts_event == T0 * S and ticks[0].size == Decimal(1)


# --------------------------------------------------------------------------
# Bars: coinbase-candles
# --------------------------------------------------------------------------


def candle(start: int | str, o: str, h: str, lo: str, c: str, v: str) -> dict[str, object]:
    return {"start": start, "low": lo, "high": h, "open": o, "close": c, "volume": v}


def test_coinbase_candles_newest_first(tmp_path: Path, gz: str) -> None:
    four_h = 4 * 3600
    doc = {
        "candles": [
            candle(str(T0 + 2 * four_h), "30", "31", "29", "29.5", "1"),
            candle(T0 + four_h, "20", "22", "19", "21", "0.4"),  # start as a JSON number
            candle(str(T0), "456.16", "456.81", "455.3", "456.02", "561.88098307"),
        ]
    }
    path = write(tmp_path / f"candles.json{gz}", json.dumps(doc, indent=2))
    ticks = trades(read_events([path], "coinbase-candles", "BTC-USD", venue="coinbase"))
    assert [str(t.price) for t in ticks] == [
        *("456.16", "456.81", "455.3", "456.02"),  # down bar
        *("20", "19", "22", "21"),  # up bar
        *("30", "31", "29", "29.5"),  # down bar
    ]
    step = four_h * S // 4
    assert [t.ts_event for t in ticks] == [T0 * S + i * step for i in range(12)]
    assert ticks[0].size == Decimal("140.4702457675")
    assert ticks[4].size == Decimal("0.1")
    assert ticks[0].trade_id == f"bar-{T0 * S}-0"
    assert {(t.venue, t.unified_symbol) for t in ticks} == {("coinbase", "BTC-USD")}
    assert estimate_events([path], "coinbase-candles") == 12


def test_coinbase_numbers_are_exact_decimals(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.json",
        f'{{"candles":[{{"start":{T0},"low":0.1,"high":0.3,"open":0.1,"close":0.2,"volume":2}}]}}',
    )
    ticks = trades(read_events([path], "coinbase-candles", "X"))
    assert [t.price for t in ticks] == [
        Decimal("0.1"),
        Decimal("0.1"),
        Decimal("0.3"),
        Decimal("0.2"),
    ]
    assert ticks[0].size == Decimal("0.5")


# --------------------------------------------------------------------------
# Malformed files
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        (
            "tardis-trades",
            TARDIS_TRADES.replace("9681.9,", "98x,"),
            r"bad\.csv:3: price '98x' is not a decimal number",
        ),
        (
            "tardis-trades",
            TARDIS_TRADES.replace(",sell,", ",short,"),
            r"bad\.csv:3: side 'short'",
        ),
        (
            "tardis-trades",
            TARDIS_TRADES.replace("1582329603502093", "15823296035.02"),
            r"bad\.csv:3: local_timestamp '15823296035\.02' is not a non-negative integer",
        ),
        (
            "tardis-trades",
            TARDIS_TRADES.replace(",0.003\n", "\n"),
            r"bad\.csv:3: expected 8 fields, got 7",
        ),
        (
            "tardis-trades",
            TARDIS_TRADES.replace(",amount", ",qty"),
            r"bad\.csv:1: missing column 'amount'",
        ),
        (
            "tardis-quotes",
            TARDIS_QUOTES.replace("0.67", "-0.67"),
            r"bad\.csv:2: bid_amount '-0\.67' must be >= 0",
        ),
        (
            "tardis-quotes",
            TARDIS_QUOTES.replace("bid_price", "bid"),
            r"bad\.csv:1: missing column 'bid_price'",
        ),
        (
            "ohlcv-csv",
            ohlcv([(str(T0), UP), ("yesterday", UP)]),
            r"bad\.csv:3: timestamp 'yesterday'",
        ),
        ("ohlcv-csv", ohlcv([(str(T0), UP), (str(T0), UP)]), r"bad\.csv:3: timestamp .* not after"),
        (
            "ohlcv-csv",
            ohlcv([(str(T0), ("1", "2", "0", "1", "1"))]),
            r"bad\.csv:2: low '0' must be > 0",
        ),
        ("ohlcv-csv", ohlcv([(str(T0), ("1", "NaN", "1", "1", "1"))]), r"bad\.csv:2: high 'NaN'"),
        (
            "ohlcv-csv",
            "time,open,high,low,close,volume\n",
            r"bad\.csv:1: missing column 'timestamp'",
        ),
        ("ohlcv-csv", "", r"bad\.csv:1: empty file"),
    ],
)
def test_malformed_csv_names_file_and_line(
    tmp_path: Path, gz: str, fmt: str, text: str, message: str
) -> None:
    path = write(tmp_path / f"bad.csv{gz}", text)
    with pytest.raises(DataFileError, match=message.replace(r"bad\.csv", rf"bad\.csv{gz}")):
        list(read_events([path], fmt, "X"))


def test_malformed_coinbase_names_file_and_line(tmp_path: Path, gz: str) -> None:
    good = candle(str(T0), "1", "2", "0.5", "1.5", "3")
    bad = {
        k: v for k, v in candle(str(T0 + 60), "1", "2", "0.5", "1.5", "3").items() if k != "open"
    }
    path = write(tmp_path / f"c.json{gz}", json.dumps({"candles": [good, bad]}, indent=2))
    # json.dumps(indent=2): the second candle's "{" is on line 11
    with pytest.raises(DataFileError, match=rf"c\.json{gz}:11: candles\[1\]: missing field 'open'"):
        list(read_events([path], "coinbase-candles", "X"))
    path = write(tmp_path / f"d.json{gz}", '{"candles": [\n{"start": "1",\n]}')
    with pytest.raises(DataFileError, match=rf"d\.json{gz}:3: invalid JSON"):
        list(read_events([path], "coinbase-candles", "X"))
    path = write(
        tmp_path / f"e.json{gz}",
        '{"candles": [{"start": "1.5", "low": "1", "high": "1",'
        ' "open": "1", "close": "1", "volume": "1"}]}',
    )
    with pytest.raises(DataFileError, match=rf"e\.json{gz}:1: candles\[0\]: start '1\.5'"):
        list(read_events([path], "coinbase-candles", "X"))
    path = write(tmp_path / f"f.json{gz}", '{"bars": []}')
    with pytest.raises(DataFileError, match=r'expected an object with a "candles" list'):
        list(read_events([path], "coinbase-candles", "X"))


BOOK = (
    '{"stream":"btcusdt@bookTicker","data":{"u":7,"s":"BTCUSDT","b":"61837.63000000",'
    '"B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
)
TRADE = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161254100,"s":"BTCUSDT","t":42,'
    '"p":"61837.64000000","q":"0.00100000","T":1723161254099,"m":true,"M":true}}'
)
ETH_TRADE = TRADE.replace("btcusdt", "ethusdt").replace("BTCUSDT", "ETHUSDT")
DEPTH = '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","b":[],"a":[]}}'


def test_binance_raw_small_files_merged_and_filtered(tmp_path: Path, gz: str) -> None:
    first = write(tmp_path / f"a.txt{gz}", f"100 {BOOK}\n300 {DEPTH}\n500 {TRADE}\n")
    second = write(tmp_path / f"b.txt{gz}", f"200 {ETH_TRADE}\n\n400 {TRADE}\n")
    ticks = list(read_events([first, second], "binance-raw", "BTCUSDT", venue="binance"))
    assert [(type(t).__name__, t.ts_recv) for t in ticks] == [
        ("QuoteTick", 100),
        ("TradeTick", 400),
        ("TradeTick", 500),
    ]
    quote, trade = ticks[0], ticks[1]
    assert quote == QuoteTick(
        venue="binance",
        symbol="BTCUSDT",
        unified_symbol="BTCUSDT",
        bid=Decimal("61837.63000000"),
        bid_size=Decimal("3.78826000"),
        ask=Decimal("61837.64000000"),
        ask_size=Decimal("1.54698000"),
        ts_event=100,
        ts_recv=100,
        ts_init=100,
        update_id=7,
    )
    assert trade == TradeTick(
        venue="binance",
        symbol="BTCUSDT",
        unified_symbol="BTCUSDT",
        price=Decimal("61837.64000000"),
        size=Decimal("0.00100000"),
        aggressor="sell",
        trade_id="42",
        ts_event=1723161254099 * 1_000_000,
        ts_recv=400,
        ts_init=400,
    )
    assert estimate_events([first, second], "binance-raw", "BTCUSDT") == 3
    assert estimate_events([first, second], "binance-raw") == 4
    eth = list(read_events([first, second], "binance-raw", "ETHUSDT"))
    assert [(t.symbol, t.ts_recv) for t in eth] == [("ETHUSDT", 200)]


def test_binance_raw_malformed_lines(tmp_path: Path, gz: str) -> None:
    renamed = TRADE.replace('"p"', '"price"')
    path = write(tmp_path / f"r.txt{gz}", f"100 {BOOK}\n\n200 {renamed}\n")
    with pytest.raises(DataFileError, match=rf"r\.txt{gz}:3: bad Binance frame: .*`p`"):
        list(read_events([path], "binance-raw", "BTCUSDT"))
    path = write(tmp_path / f"s.txt{gz}", f"100 {BOOK}\nnot-a-time {TRADE}\n")
    with pytest.raises(DataFileError, match=rf"s\.txt{gz}:2: expected '<ns> <json frame>'"):
        list(read_events([path], "binance-raw", "BTCUSDT"))
    path = write(tmp_path / f"t.txt{gz}", "100 {not json\n")
    with pytest.raises(DataFileError, match=rf"t\.txt{gz}:1: bad Binance frame"):
        list(read_events([path], "binance-raw", "BTCUSDT"))


# --------------------------------------------------------------------------
# binance-raw on the real capture
# --------------------------------------------------------------------------


def test_binance_raw_real_capture(data_dir: Path) -> None:
    path = data_dir / BTC_RAW[0]
    ticks = list(read_events([path], "binance-raw", "BTCUSDT", venue="binance"))

    parser = BinanceParser(MarketCatalog({"binance": [BTCUSDT_MIN]}))
    direct: Counter[str] = Counter()
    for ts, raw in read_frames(path):
        _, tick = parser.parse(raw, ts, ts)
        if tick is not None:
            direct[type(tick).__name__] += 1
    counted = Counter(type(t).__name__ for t in ticks)
    assert counted == direct
    assert counted["TradeTick"] > 1000 and counted["QuoteTick"] > 1000
    assert estimate_events([path], "binance-raw", "BTCUSDT") == len(ticks)
    assert all(a.ts_recv <= b.ts_recv for a, b in itertools.pairwise(ticks))
    assert all(t.ts_init == t.ts_recv for t in ticks)
    assert {(t.venue, t.symbol, t.unified_symbol) for t in ticks} == {
        ("binance", "BTCUSDT", "BTCUSDT")
    }
    assert all(type(t.price if isinstance(t, TradeTick) else t.bid) is Decimal for t in ticks)
