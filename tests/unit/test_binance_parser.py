"""BinanceParser and read_frames on real recorded Binance frames (shared/data, files #3–#6).

The expected values come from the frames' own JSON and from the facts
documented in shared/data/README.md ("3–6. Binance spot raw websocket feeds").
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

import msgspec
import pytest

from tests.support.data import BTC_RAW, ETH_RAW
from tradebus.common.markets import Market, MarketCatalog, default_markets_path
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.binance import BinanceParser, FrameKind
from tradebus.feeds.files import DataFileError
from tradebus.feeds.parsing import Frame, ParserBase, RecordedFrame
from tradebus.feeds.readers import DataFileError as ReplayFileError
from tradebus.feeds.readers import merge_recorded, read_frames

BTC_0808, BTC_0809 = BTC_RAW
ETH_0808, ETH_0809 = ETH_RAW
SAMPLE = 400  # lines read from the start of a file for the field-by-field tests
TS_INIT_OFFSET = 7  # ts_init passed to parse() is ts_recv + this, to tell them apart


@pytest.fixture(scope="module")
def catalog() -> MarketCatalog:
    return MarketCatalog.load(default_markets_path())


@pytest.fixture(scope="module")
def parser(catalog: MarketCatalog) -> BinanceParser:
    return BinanceParser(catalog)


def head(data_dir: Path, name: str, n: int = SAMPLE) -> list[Frame]:
    return list(itertools.islice(read_frames(data_dir / name), n))


def stream_kind(frame: bytes) -> str | None:
    """``bookTicker`` / ``trade`` / ``depth@100ms``, or None for the snapshot line."""
    stream = json.loads(frame).get("stream")
    return None if stream is None else stream.split("@", 1)[1]


def of_kind(frames: list[Frame], kind: str) -> list[tuple[int, bytes, dict]]:
    """``(ts_recv, raw, data)`` of the frames of one stream kind."""
    return [(ts, f, json.loads(f)["data"]) for ts, f in frames if stream_kind(f) == kind]


# --------------------------------------------------------------------------
# one frame at a time
# --------------------------------------------------------------------------


def test_book_ticker_becomes_quote_tick(data_dir: Path, parser: BinanceParser) -> None:
    frames = of_kind(head(data_dir, BTC_0808), "bookTicker")
    assert len(frames) > 100
    for ts, raw, d in frames:
        kind, tick = parser.parse(raw, ts, ts + TS_INIT_OFFSET)
        assert kind is FrameKind.QUOTE
        assert isinstance(tick, QuoteTick)
        assert (tick.venue, tick.symbol, tick.unified_symbol) == ("binance", "BTCUSDT", "BTC/USDT")
        assert tick.bid == Decimal(d["b"]) and tick.bid_size == Decimal(d["B"])
        assert tick.ask == Decimal(d["a"]) and tick.ask_size == Decimal(d["A"])
        assert tick.update_id == d["u"]
        assert tick.ts_event == tick.ts_recv == ts  # bookTicker carries no exchange time
        assert tick.ts_init == ts + TS_INIT_OFFSET
        assert tick.bid < tick.ask


def test_first_quote_exactly(data_dir: Path, parser: BinanceParser) -> None:
    # line 3 of file #3, spelled out
    ts, raw = head(data_dir, BTC_0808, 3)[2]
    _, tick = parser.parse(raw, ts, ts)
    assert tick == QuoteTick(
        venue="binance",
        symbol="BTCUSDT",
        unified_symbol="BTC/USDT",
        bid=Decimal("61837.63"),
        bid_size=Decimal("3.78826"),
        ask=Decimal("61837.64"),
        ask_size=Decimal("1.54698"),
        ts_event=1723161254087891268,
        ts_recv=1723161254087891268,
        ts_init=1723161254087891268,
        update_id=50093239212,
    )


def test_trade_becomes_trade_tick(data_dir: Path, parser: BinanceParser) -> None:
    frames = of_kind(head(data_dir, BTC_0808) + head(data_dir, ETH_0808), "trade")
    assert {d["m"] for _, _, d in frames} == {True, False}  # both aggressor sides are checked
    for ts, raw, d in frames:
        kind, tick = parser.parse(raw, ts, ts + TS_INIT_OFFSET)
        assert kind is FrameKind.TRADE
        assert isinstance(tick, TradeTick)
        assert tick.venue == "binance"
        assert tick.symbol == d["s"]
        assert tick.unified_symbol == {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}[d["s"]]
        assert tick.price == Decimal(d["p"]) and tick.size == Decimal(d["q"])
        assert tick.trade_id == str(d["t"])
        assert tick.ts_event == d["T"] * 1_000_000
        assert tick.ts_recv == ts and tick.ts_init == ts + TS_INIT_OFFSET
        # m: the buyer is the maker, so the aggressor (taker) sold
        assert tick.aggressor == ("sell" if d["m"] else "buy")


def test_first_trade_exactly(data_dir: Path, parser: BinanceParser) -> None:
    # line 4 of file #3: t=3735683259, m=true
    ts, raw = head(data_dir, BTC_0808, 4)[3]
    _, tick = parser.parse(raw, ts, ts)
    assert tick == TradeTick(
        venue="binance",
        symbol="BTCUSDT",
        unified_symbol="BTC/USDT",
        price=Decimal("61837.63"),
        size=Decimal("0.02"),
        aggressor="sell",
        trade_id="3735683259",
        ts_event=1723161255342_000_000,
        ts_recv=ts,
        ts_init=ts,
    )


def test_depth_frames_are_depth_without_tick(data_dir: Path, parser: BinanceParser) -> None:
    frames = of_kind(head(data_dir, BTC_0808), "depth@100ms")
    assert len(frames) > 10
    for ts, raw, _ in frames:
        assert parser.parse(raw, ts, ts) == (FrameKind.DEPTH, None)


def test_snapshot_line_is_snapshot(data_dir: Path, parser: BinanceParser) -> None:
    # README: the REST depth snapshot is line 8 of #3 and line 6 of #5
    for name, line in ((BTC_0808, 8), (ETH_0808, 6)):
        ts, raw = head(data_dir, name, line)[line - 1]
        assert b'"lastUpdateId"' in raw[:20] and b'"stream"' not in raw
        assert parser.parse(raw, ts, ts) == (FrameKind.SNAPSHOT, None)


def test_symbol_not_in_catalog_is_other_symbol(data_dir: Path) -> None:
    eth_only = MarketCatalog(
        {
            "binance": [
                Market(
                    symbol="ETHUSDT",
                    base="ETH",
                    quote="USDT",
                    tick_size=Decimal("0.01"),
                    step_size=Decimal("0.0001"),
                )
            ]
        }
    )
    parser = BinanceParser(eth_only)
    btc = head(data_dir, BTC_0808)
    for ts, raw, _ in of_kind(btc, "bookTicker") + of_kind(btc, "trade"):
        assert parser.parse(raw, ts, ts) == (FrameKind.OTHER_SYMBOL, None)
    # the same frames under another venue name are unknown too
    parser = BinanceParser(MarketCatalog.load(default_markets_path()), venue="binanceus")
    ts, raw, _ = of_kind(btc, "trade")[0]
    assert parser.parse(raw, ts, ts) == (FrameKind.OTHER_SYMBOL, None)


def test_only_filter(data_dir: Path, catalog: MarketCatalog) -> None:
    parser = BinanceParser(catalog, only={"ETHUSDT"})
    btc, eth = head(data_dir, BTC_0808), head(data_dir, ETH_0808)
    for ts, raw, _ in of_kind(btc, "bookTicker") + of_kind(btc, "trade"):
        assert parser.parse(raw, ts, ts) == (FrameKind.OTHER_SYMBOL, None)
    kinds: Counter[FrameKind] = Counter()
    for ts, raw, _ in of_kind(eth, "bookTicker") + of_kind(eth, "trade"):
        kind, tick = parser.parse(raw, ts, ts)
        assert tick is not None and tick.symbol == "ETHUSDT"
        kinds[kind] += 1
    assert kinds[FrameKind.QUOTE] > 0 and kinds[FrameKind.TRADE] > 0


def test_malformed_frames_raise(data_dir: Path, parser: BinanceParser) -> None:
    frames = head(data_dir, BTC_0808, 4)
    quote, trade = frames[2][1], frames[3][1]
    for bad in (quote[:-10], trade[: len(trade) // 2], b"", b"not json", b'{"stream":'):
        with pytest.raises(msgspec.DecodeError):
            parser.parse(bad, 1, 1)
    # valid JSON but a quote/trade without a field, or with a bad number
    for bad in (
        trade.replace(b'"p":', b'"price":'),
        quote.replace(b'"b":"61837.63000000"', b'"b":"abc"'),
    ):
        assert bad != trade and bad != quote
        with pytest.raises(msgspec.ValidationError):
            parser.parse(bad, 1, 1)


# --------------------------------------------------------------------------
# whole files against the README's table
# --------------------------------------------------------------------------


class FileFacts(msgspec.Struct, frozen=True):
    lines: int
    trades: int
    book_ticker: int
    depth: int
    snapshot: int
    first_trade: str  # trade time T, UTC, ms
    last_trade: str
    low: str
    high: str


# shared/data/README.md, sections 3–6
README_FACTS = {
    BTC_0808: FileFacts(
        41_249, 9_757, 28_040, 3_451, 1,
        "2024-08-08 23:54:15.342", "2024-08-09 00:00:01.271", "61583.22", "61860.80",
    ),
    BTC_0809: FileFacts(
        58_325, 10_147, 45_134, 3_044, 0,
        "2024-08-09 00:00:01.437", "2024-08-09 00:05:05.800", "61556.04", "61744.37",
    ),
    ETH_0808: FileFacts(
        33_618, 6_106, 24_077, 3_434, 1,
        "2024-08-08 23:54:15.611", "2024-08-09 00:00:00.982", "2679.00", "2685.37",
    ),
    ETH_0809: FileFacts(
        46_126, 8_409, 34_681, 3_036, 0,
        "2024-08-09 00:00:01.550", "2024-08-09 00:05:05.012", "2673.60", "2684.39",
    ),
}  # fmt: skip


class Parsed(msgspec.Struct):
    """What parsing one whole file gave."""

    lines: int
    kinds: Counter[str]
    trade_ids: list[int]
    trade_times: list[int]
    prices: list[Decimal]
    ts_sorted: bool


@cache
def parse_file(path: Path) -> Parsed:
    parser = BinanceParser(MarketCatalog.load(default_markets_path()))
    out = Parsed(0, Counter(), [], [], [], True)
    last_ts = 0
    for ts, raw in read_frames(path):
        out.lines += 1
        out.ts_sorted &= ts >= last_ts
        last_ts = ts
        kind, tick = parser.parse(raw, ts, ts)
        out.kinds[kind.value] += 1
        if isinstance(tick, TradeTick):
            out.trade_ids.append(int(tick.trade_id))
            out.trade_times.append(tick.ts_event)
            out.prices.append(tick.price)
    return out


def utc_ms(ns: int) -> str:
    """``YYYY-mm-dd HH:MM:SS.mmm`` (UTC) of a time in ns."""
    seconds = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{seconds}.{ns // 1_000_000 % 1000:03d}"


@pytest.mark.parametrize("name", list(README_FACTS))
def test_whole_file_matches_readme(data_dir: Path, name: str) -> None:
    facts = README_FACTS[name]
    parsed = parse_file(data_dir / name)
    assert parsed.lines == facts.lines
    assert dict(parsed.kinds) == {
        k: n
        for k, n in {
            "trade": facts.trades,
            "quote": facts.book_ticker,
            "depth": facts.depth,
            "snapshot": facts.snapshot,
        }.items()
        if n
    }  # and nothing else: no other_symbol, no other
    assert parsed.ts_sorted, "local timestamps must never decrease"
    assert utc_ms(min(parsed.trade_times)) == facts.first_trade
    assert utc_ms(max(parsed.trade_times)) == facts.last_trade
    assert (min(parsed.prices), max(parsed.prices)) == (Decimal(facts.low), Decimal(facts.high))


@pytest.mark.parametrize(
    ("files", "first", "last"),
    [(BTC_RAW, 3735683259, 3735703162), (ETH_RAW, 1520538925, 1520553439)],
    ids=["BTCUSDT", "ETHUSDT"],
)
def test_trade_ids_gap_free_across_files(
    data_dir: Path, files: list[str], first: int, last: int
) -> None:
    # README "Continuity": the 08-08 file then the 08-09 file is one gap-free trade stream
    ids = [i for name in files for i in parse_file(data_dir / name).trade_ids]
    assert ids == list(range(first, last + 1))


# --------------------------------------------------------------------------
# read_frames
# --------------------------------------------------------------------------

GOOD = b'1723161254087891268 {"stream":"btcusdt@trade","data":{"a b":"with spaces"}}'


def test_read_frames_splits_at_first_space_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "ok.txt"
    path.write_bytes(GOOD + b"\r\n\n" + GOOD.replace(b"1723", b"1724", 1) + b"\n")
    frames = list(read_frames(path))
    raw = GOOD.split(b" ", 1)[1]
    assert frames == [(1723161254087891268, raw), (1724161254087891268, raw)]


@pytest.mark.parametrize(
    "bad",
    [b"notanumber {}", b"-5 {}", b"1723161254087891268", b"1.5 {}", b" {}"],
    ids=["word", "negative", "no-space", "float", "empty-ts"],
)
@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_read_frames_names_file_and_line(tmp_path: Path, bad: bytes, suffix: str) -> None:
    path = tmp_path / f"feed{suffix}"
    content = GOOD + b"\n\n" + bad + b"\n" + GOOD + b"\n"  # the bad line is line 3
    path.write_bytes(gzip.compress(content) if suffix.endswith(".gz") else content)
    frames = read_frames(path)
    assert next(frames)[0] == 1723161254087891268  # lines before the bad one are yielded
    with pytest.raises(ReplayFileError) as error:
        next(frames)
    assert f"{path}:3:" in str(error.value)
    assert isinstance(error.value, ValueError)


# --------------------------------------------------------------------------
# recorded(): the fast path against parse(), frame by frame
# --------------------------------------------------------------------------


def generic(parser: BinanceParser, frames: list[RecordedFrame]) -> list[QuoteTick | TradeTick]:
    """The ticks :meth:`BinanceParser.parse` gives for recorded frames (``ts_init = ts_recv``)."""
    ticks = []
    for ts, raw, _, _ in frames:
        _, tick = parser.parse(raw, ts, ts)
        if tick is not None:
            ticks.append(tick)
    return ticks


@pytest.mark.parametrize(
    "only", [None, {"BTCUSDT"}, {"ETHUSDT"}], ids=["both-symbols", "BTCUSDT", "ETHUSDT"]
)
def test_fast_path_gives_the_generic_path_s_ticks_on_every_recorded_file(
    data_dir: Path, catalog: MarketCatalog, only: set[str] | None
) -> None:
    """Every frame of the four captures, merged: the same ticks, the same decimal text."""
    parser = BinanceParser(catalog, only=only)
    frames = list(merge_recorded([data_dir / name for name in BTC_RAW + ETH_RAW]))
    fast = list(parser.recorded(frames))
    plain = generic(parser, frames)
    assert len(fast) == len(plain) > 50_000
    assert fast == plain
    assert msgspec.json.encode(fast) == msgspec.json.encode(plain)
    assert list(ParserBase.recorded(parser, frames)) == plain  # the base class's generic loop
    assert {t.symbol for t in fast} == (only or {"BTCUSDT", "ETHUSDT"})
    # and the fast path did the work: parse() saw only depth, snapshots and other symbols
    seen: list[bytes] = []
    parse = parser.parse

    def spy(
        raw: bytes, ts_recv: int, ts_init: int
    ) -> tuple[FrameKind, QuoteTick | TradeTick | None]:
        seen.append(raw)
        return parse(raw, ts_recv, ts_init)

    parser.parse = spy  # type: ignore[method-assign]
    assert list(parser.recorded(frames)) == plain
    ours = tuple(f'{{"stream":"{s.lower()}@'.encode() for s in parser.symbols)
    assert seen == [
        raw
        for _, raw, _, _ in frames
        if stream_kind(raw) not in ("bookTicker", "trade") or not raw.startswith(ours)
    ]


def test_fast_path_of_one_market_named_by_its_native_symbol(data_dir: Path) -> None:
    """``of_symbols`` (the backtest's parser): unified symbol = native symbol, both paths."""
    parser = BinanceParser.of_symbols({"ETHUSDT": "ETHUSDT"}, "backtest")
    frames = list(merge_recorded([data_dir / name for name in ETH_RAW]))
    fast = list(parser.recorded(frames))
    assert fast == generic(parser, frames)
    assert {(t.venue, t.symbol, t.unified_symbol) for t in fast} == {
        ("backtest", "ETHUSDT", "ETHUSDT")
    }


def test_recorded_frames_the_fast_path_cannot_read(tmp_path: Path, catalog: MarketCatalog) -> None:
    """A number instead of text, another symbol's data under a configured stream, a
    trailing field: parse()'s ticks; a bad frame: parse()'s error, named by file and line."""
    book = (
        '{{"stream":"btcusdt@bookTicker","data":{{"u":7,"s":"{s}","b":{b},'
        '"B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}{extra}}}'
    )
    lines = [
        book.format(s="BTCUSDT", b="61837.63", extra=""),
        book.format(s="ETHUSDT", b='"2680.01"', extra=""),
        book.format(s="XYZUSDT", b='"1.5"', extra=""),
        book.format(s="BTCUSDT", b='"61837.63000000"', extra=',"x":1'),
        book.format(s="BTCUSDT", b='"61837.63000000"', extra=""),
    ]
    path = tmp_path / "feed.txt"
    path.write_text("".join(f"{100 * i} {line}\n" for i, line in enumerate(lines, start=1)))
    parser = BinanceParser(catalog)
    frames = list(merge_recorded([path]))
    ticks = list(parser.recorded(frames))
    assert ticks == generic(parser, frames)
    assert [(t.symbol, str(t.bid)) for t in ticks] == [  # type: ignore[union-attr]
        ("BTCUSDT", "61837.63"),
        ("ETHUSDT", "2680.01"),
        ("BTCUSDT", "61837.63000000"),
        ("BTCUSDT", "61837.63000000"),
    ]
    bad = tmp_path / "bad.txt"
    bad.write_text("1 " + lines[4] + "\n\n3 " + lines[4].replace('"61837.63000000"', '"6x"', 1))
    with pytest.raises(msgspec.ValidationError) as parse_error:
        generic(parser, list(merge_recorded([bad])))
    with pytest.raises(DataFileError) as recorded_error:
        list(parser.recorded(merge_recorded([bad])))
    assert str(recorded_error.value) == f"{bad}:3: bad Binance frame: {parse_error.value}"
