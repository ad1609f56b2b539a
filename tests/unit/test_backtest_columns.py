"""Market events as columns (:mod:`tradebus.backtest.columns`): the reader's ticks, the
cache keyed by the files' content, and the fast ``binance-raw`` reader's fall-backs."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from tradebus.backtest import columns
from tradebus.backtest.columns import EventColumns, cache_key, load_columns, parse_columns
from tradebus.feeds.files import DataFileError
from tradebus.feeds.readers import read_events

TRADE = (
    '{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
    '"t":{t},"p":"{p}","q":"0.02000000","T":1723161255342,"m":{m},"M":true}}}}'
)
BOOK = (
    '{{"stream":"btcusdt@bookTicker","data":{{"u":{u},"s":"BTCUSDT","b":"{b}",'
    '"B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}}}'
)
DEPTH = '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","b":[],"a":[]}}'


def capture(path: Path, lines: list[str]) -> Path:
    """Write a ``binance-raw`` capture (gzip by the suffix)."""
    data = ("\n".join(lines) + "\n").encode()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def lines(n: int, start: int = 1723161254087896568) -> list[str]:
    out = []
    for i in range(n):
        ts = start + 1000 * i
        out.append(f"{ts} {BOOK.format(u=100 + i, b=f'61837.{i % 90 + 10:02d}000000')}")
        out.append(f"{ts + 1} {DEPTH}")
        m = "true" if i % 2 else "false"
        out.append(f"{ts + 2} {TRADE.format(t=5000 + i, p=f'61837.{i % 70 + 5:02d}', m=m)}")
    return out


def ticks_of(paths: list[Path]) -> list:
    return list(read_events(paths, "binance-raw", "BTCUSDT", venue="paper"))


def test_the_fast_reader_gives_the_reader_s_ticks(tmp_path: Path) -> None:
    a = capture(tmp_path / "a.txt.gz", lines(50))
    b = capture(tmp_path / "b.txt", lines(40, start=1723161254087896568 + 500))
    fast = columns._binance_raw([a, b], "BTCUSDT", "paper")
    assert fast is not None  # the recorder's layout: read by the fast reader
    assert list(fast.ticks()) == ticks_of([a, b])  # merged by receive time, ties by file
    assert len(fast) == 180
    assert (fast.rank[fast.is_trade] >= 0).all() and (fast.rank[~fast.is_trade] == -1).all()


@pytest.mark.parametrize(
    ("odd", "fast"),
    [
        # the same trade, keys in another order: JSON all the same (msgspec reads it)
        (
            '{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","e":"trade","E":1,"t":9,'
            '"p":"61837.50","q":"1","T":1723161255342,"m":true,"M":true}}',
            True,
        ),
        # a price as a JSON number: the parser's rules (the fast reader wants text)
        (TRADE.format(t=1, p="1.5", m="true").replace('"p":"1.5"', '"p":1.5'), False),
        # another market's trade
        (
            TRADE.format(t=1, p="1.5", m="true")
            .replace("btcusdt", "ethusdt")
            .replace("BTC", "ETH"),
            False,
        ),
        # a frame with something after it
        (TRADE.format(t=1, p="1.5", m="true") + " ", False),
        # a depth frame that is not JSON: the parser's error
        (DEPTH[:-3], False),
    ],
)
def test_frames_the_fast_reader_does_not_know_go_to_the_parser(
    odd: str, fast: bool, tmp_path: Path
) -> None:
    text = lines(5)
    text.insert(3, f"1723161254087896570 {odd}")
    path = capture(tmp_path / "odd.txt", text)
    assert (columns._binance_raw([path], "BTCUSDT", "paper") is not None) is fast
    try:
        ticks = ticks_of([path])
    except DataFileError as exc:  # the bad depth frame: the same error, named by the parser
        with pytest.raises(DataFileError) as ours:
            parse_columns([path], "binance-raw", "BTCUSDT", "paper")
        assert str(ours.value) == str(exc)
        return
    assert list(parse_columns([path], "binance-raw", "BTCUSDT", "paper").ticks()) == ticks


def test_a_bad_line_is_the_reader_s_error(tmp_path: Path) -> None:
    path = capture(tmp_path / "bad.txt", [*lines(3), "no-time " + DEPTH])
    with pytest.raises(DataFileError) as reader:
        ticks_of([path])
    with pytest.raises(DataFileError) as ours:
        load_columns([path], "binance-raw", "BTCUSDT", "paper", tmp_path / "cache")
    assert str(ours.value) == str(reader.value)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_second_read_comes_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = capture(tmp_path / "a.txt.gz", lines(30))
    cache = tmp_path / "cache"
    first = load_columns([path], "binance-raw", "BTCUSDT", "paper", cache)
    entries = list(cache.iterdir())
    assert [e.name for e in entries if e.name != "hashes"] == [
        cache_key([path], "binance-raw", "BTCUSDT", "paper")
    ]

    def no_parsing(*args: object) -> EventColumns:
        raise AssertionError("parsed again")

    monkeypatch.setattr(columns, "parse_columns", no_parsing)
    again = load_columns([path], "binance-raw", "BTCUSDT", "paper", cache)
    assert list(again.ticks()) == list(first.ticks()) == ticks_of([path])
    for name in ("ts_recv", "px", "rank", "a", "has_uid"):
        assert np.array_equal(getattr(again, name), getattr(first, name), equal_nan=name == "px")


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    """The cache is keyed by the content: a file changed in place (same name, same size,
    even the same modification time) gets a new key, and its new events."""
    path = capture(tmp_path / "a.txt", lines(30))
    cache = tmp_path / "cache"
    before = load_columns([path], "binance-raw", "BTCUSDT", "paper", cache)
    key = cache_key([path], "binance-raw", "BTCUSDT", "paper")
    stat = path.stat()
    text = path.read_bytes().replace(b'"p":"61837.05"', b'"p":"61837.06"', 1)
    assert len(text) == stat.st_size
    path.write_bytes(text)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    new_key = cache_key([path], "binance-raw", "BTCUSDT", "paper")
    assert new_key != key
    after = load_columns([path], "binance-raw", "BTCUSDT", "paper", cache)
    assert list(after.ticks()) == ticks_of([path]) != list(before.ticks())
    entries = sorted(e.name for e in cache.iterdir() if e.name != "hashes")
    assert entries == sorted([key, new_key])
    # and the key names the format and the symbol too
    assert cache_key([path], "binance-raw", "ETHUSDT", "paper") != new_key


def test_a_file_s_hash_is_remembered_until_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unchanged file is not read again for its key (its hash is remembered by its stat
    signature); any write changes the file's change time, so it is hashed again even
    with its size and modification time put back."""
    monkeypatch.setattr(columns, "RACY_NS", 0)  # the file was just written
    path = capture(tmp_path / "a.txt", lines(10))
    memo = tmp_path / "memo"
    key = cache_key([path], "binance-raw", "BTCUSDT", "paper", memo)
    assert key == cache_key([path], "binance-raw", "BTCUSDT", "paper")  # the same hash
    real = columns.hashlib.file_digest

    def unread(*args: object, **kwargs: object) -> object:
        raise AssertionError("read again")

    monkeypatch.setattr(columns.hashlib, "file_digest", unread)
    assert cache_key([path], "binance-raw", "BTCUSDT", "paper", memo) == key
    monkeypatch.setattr(columns.hashlib, "file_digest", real)
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(b'"p":"61837.05"', b'"p":"61837.06"', 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert cache_key([path], "binance-raw", "BTCUSDT", "paper", memo) != key


def test_columns_of_any_format_round_trip(data_dir: Path, tmp_path: Path) -> None:
    path = data_dir / "binance-futures_BTCUSDT_quotes_2020-02-22_0000-0004Z.csv.gz"
    cols = load_columns([path], "tardis-quotes", "BTCUSDT", "paper", tmp_path)
    ticks = list(read_events([path], "tardis-quotes", "BTCUSDT", venue="paper"))
    assert len(cols) == len(ticks) > 9000
    assert list(cols.ticks()) == ticks
    entry = tmp_path / cache_key([path], "tardis-quotes", "BTCUSDT", "paper")
    assert list(EventColumns.load(entry).ticks()) == ticks
