"""BackpackParser on Backpack's own frames, and on the recorded captures in Backpack's format.

The exact frames are ccxt 4.5's captured samples (``ccxt/pro/backpack.py``
``handle_bid_ask``, ``handle_trades``, ``handle_error_message``;
``ccxt/backpack.py`` ``fetch_order_book``), so the field letters and units
are Backpack's, not ours: times in microseconds, ``E``/``T`` as strings.
"""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tests.support.backpack_ws import to_backpack
from tests.support.data import BTC_RAW
from tradebus.common.markets import Market, MarketCatalog, default_markets_path
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.backpack import (
    BackpackParser,
    rest_quote_url,
    stream_names,
    subscribe_message,
)
from tradebus.feeds.binance import BinanceParser
from tradebus.feeds.files import DataFileError
from tradebus.feeds.parsing import FrameKind
from tradebus.feeds.readers import read_frames

TS_RECV = 1_754_517_402_451_000_123
TS_INIT = TS_RECV + 7

BOOK_TICKER = (
    b'{"data":{"A":"0.4087","B":"0.0020","E":"1754517402450016","T":"1754517402449064",'
    b'"a":"3667.50","b":"3667.49","e":"bookTicker","s":"ETH_USDC","u":1328288557},'
    b'"stream":"bookTicker.ETH_USDC"}'
)
TRADE = (
    b'{"data":{"E":"1754601477746429","T":"1754601477744000","a":"5121860761",'
    b'"b":"5121861755","e":"trade","m":false,"p":"3870.25","q":"0.0008",'
    b'"s":"ETH_USDC_PERP","t":10782547},"stream":"trade.ETH_USDC_PERP"}'
)
DEPTH_REST = (
    b'{"asks":[["118318.3","0.00633"],["118567.2","0.08450"]],'
    b'"bids":[["1.0","0.38647"],["12.9","1.00000"]],'
    b'"lastUpdateId":"1504999670","timestamp":1753102447307501}'
)
ERROR = b'{"id":null,"error":{"code":4006,"message":"Invalid stream"}}'

ETH_PERP = Market(
    symbol="ETH_USDC_PERP",
    base="ETH",
    quote="USDC",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    kind="perpetual",
)


@pytest.fixture(scope="module")
def catalog() -> MarketCatalog:
    shipped = MarketCatalog.load(default_markets_path())
    return MarketCatalog({"backpack": [*shipped.venue_markets("backpack"), ETH_PERP]})


@pytest.fixture(scope="module")
def parser(catalog: MarketCatalog) -> BackpackParser:
    return BackpackParser(catalog)


def test_book_ticker_exactly(parser: BackpackParser) -> None:
    assert parser.parse(BOOK_TICKER, TS_RECV, TS_INIT) == (
        FrameKind.QUOTE,
        QuoteTick(
            venue="backpack",
            symbol="ETH_USDC",
            unified_symbol="ETH/USDC",
            bid=Decimal("3667.49"),
            bid_size=Decimal("0.0020"),
            ask=Decimal("3667.50"),
            ask_size=Decimal("0.4087"),
            ts_event=1_754_517_402_449_064_000,  # T, the engine time, µs -> ns
            ts_recv=TS_RECV,
            ts_init=TS_INIT,
            update_id=1328288557,
        ),
    )


def test_trade_exactly(parser: BackpackParser) -> None:
    assert parser.parse(TRADE, TS_RECV, TS_INIT) == (
        FrameKind.TRADE,
        TradeTick(
            venue="backpack",
            symbol="ETH_USDC_PERP",
            unified_symbol="ETH/USDC",
            price=Decimal("3870.25"),
            size=Decimal("0.0008"),
            aggressor="buy",  # m=false: the buyer took
            trade_id="10782547",
            ts_event=1_754_601_477_744_000_000,
            ts_recv=TS_RECV,
            ts_init=TS_INIT,
        ),
    )
    _, sold = parser.parse(TRADE.replace(b'"m":false', b'"m":true'), TS_RECV, TS_INIT)
    assert isinstance(sold, TradeTick) and sold.aggressor == "sell"


def test_numbers_as_numbers_or_strings_and_no_engine_time(parser: BackpackParser) -> None:
    # the docs spell E/T as numbers and u as a string: same ticks
    numeric = (
        BOOK_TICKER.replace(b'"E":"1754517402450016"', b'"E":1754517402450016')
        .replace(b'"T":"1754517402449064"', b'"T":1754517402449064')
        .replace(b'"u":1328288557', b'"u":"1328288557"')
    )
    assert parser.parse(numeric, TS_RECV, TS_INIT) == parser.parse(BOOK_TICKER, TS_RECV, TS_INIT)
    no_t = BOOK_TICKER.replace(b'"T":"1754517402449064",', b"")
    _, tick = parser.parse(no_t, TS_RECV, TS_INIT)
    assert isinstance(tick, QuoteTick) and tick.ts_event == 1_754_517_402_450_016_000  # E


def test_other_frames(parser: BackpackParser, catalog: MarketCatalog) -> None:
    assert parser.parse(ERROR, 1, 1) == (FrameKind.CONTROL, None)
    assert parser.parse(b'{"id":1,"result":null}', 1, 1) == (FrameKind.CONTROL, None)
    depth = b'{"stream":"depth.SOL_USDC","data":{"e":"depth","a":[],"b":[],"U":1,"u":2}}'
    assert parser.parse(depth, 1, 1) == (FrameKind.DEPTH, None)
    ticker = b'{"stream":"ticker.SOL_USDC","data":{"e":"ticker","s":"SOL_USDC","c":"1"}}'
    assert parser.parse(ticker, 1, 1) == (FrameKind.OTHER, None)
    other = BOOK_TICKER.replace(b"ETH_USDC", b"JUP_USDC")
    assert parser.parse(other, 1, 1) == (FrameKind.OTHER_SYMBOL, None)
    only_sol = BackpackParser(catalog, only={"SOL_USDC"})
    assert only_sol.symbols == ["SOL_USDC"]
    assert only_sol.parse(BOOK_TICKER, 1, 1) == (FrameKind.OTHER_SYMBOL, None)
    assert only_sol.parse(TRADE, 1, 1) == (FrameKind.OTHER_SYMBOL, None)


def test_malformed_frames_raise(parser: BackpackParser) -> None:
    for bad in (b"", b"not json", BOOK_TICKER[:-5]):
        with pytest.raises(msgspec.DecodeError):
            parser.parse(bad, 1, 1)
    for bad in (BOOK_TICKER.replace(b'"u":', b'"x":'), TRADE.replace(b'"p":"3870.25"', b'"p":"x"')):
        with pytest.raises(msgspec.ValidationError):
            parser.parse(bad, 1, 1)


def test_rest_depth_gives_the_best_levels(parser: BackpackParser) -> None:
    assert parser.parse_rest_quote(DEPTH_REST, "BTC_USDC", TS_RECV, TS_INIT) == QuoteTick(
        venue="backpack",
        symbol="BTC_USDC",
        unified_symbol="BTC/USDC",
        bid=Decimal("12.9"),  # the highest bid, though listed last
        bid_size=Decimal("1.00000"),
        ask=Decimal("118318.3"),  # the lowest ask
        ask_size=Decimal("0.00633"),
        ts_event=1_753_102_447_307_501_000,
        ts_recv=TS_RECV,
        ts_init=TS_INIT,
        update_id=1504999670,
    )
    empty_bids = b'{"asks":[["1","2"]],"bids":[],"lastUpdateId":"5","timestamp":1}'
    assert parser.parse_rest_quote(empty_bids, "BTC_USDC", 1, 1) is None
    assert parser.parse_rest_quote(DEPTH_REST, "JUP_USDC", 1, 1) is None
    with pytest.raises(msgspec.DecodeError):
        parser.parse_rest_quote(b"<html>", "BTC_USDC", 1, 1)


def test_requests() -> None:
    assert stream_names(["SOL_USDC", "BTC_USDC"]) == [
        "bookTicker.SOL_USDC",
        "trade.SOL_USDC",
        "bookTicker.BTC_USDC",
        "trade.BTC_USDC",
    ]
    assert json.loads(subscribe_message(["SOL_USDC"])) == {
        "method": "SUBSCRIBE",
        "params": ["bookTicker.SOL_USDC", "trade.SOL_USDC"],
    }
    assert (
        rest_quote_url("https://api.backpack.exchange/", "SOL_USDC")
        == "https://api.backpack.exchange/api/v1/depth?symbol=SOL_USDC"
    )


def test_recorded_capture_in_backpack_format(data_dir: Path, parser: BackpackParser) -> None:
    """The test server's frames (real BTCUSDT data as BTC_USDC) parse to the same values."""
    frames = list(itertools.islice(read_frames(data_dir / BTC_RAW[0]), 3000))
    binance = BinanceParser(MarketCatalog.load(default_markets_path()))
    expected = [t for ts, raw in frames if (t := binance.parse(raw, ts, ts)[1]) is not None]
    got = [parser.parse(raw, ts, ts)[1] for ts, raw in to_backpack(frames)]
    assert len(got) == len(expected) > 2000
    for b, e in zip(got, expected, strict=True):
        assert b is not None and type(b) is type(e)
        assert (b.symbol, b.unified_symbol, b.ts_recv) == ("BTC_USDC", "BTC/USDC", e.ts_recv)
        if isinstance(b, QuoteTick):
            assert isinstance(e, QuoteTick)
            assert (b.bid, b.bid_size, b.ask, b.ask_size) == (e.bid, e.bid_size, e.ask, e.ask_size)
            assert b.update_id == e.update_id
            assert b.ts_event == e.ts_recv // 1000 * 1000  # µs on the wire
        else:
            assert isinstance(b, TradeTick) and isinstance(e, TradeTick)
            assert (b.price, b.size, b.trade_id, b.aggressor) == (
                e.price,
                e.size,
                e.trade_id,
                e.aggressor,
            )
            assert b.ts_event == e.ts_event


def test_recorded_frames_give_parse_s_ticks_and_name_a_bad_line(
    data_dir: Path, parser: BackpackParser, tmp_path: Path
) -> None:
    """``recorded()`` (the generic loop of every parser): parse()'s ticks, ``file:line`` errors."""
    frames = list(to_backpack(itertools.islice(read_frames(data_dir / BTC_RAW[0]), 3000)))
    path = tmp_path / "capture.txt"
    recorded = [(ts, raw, path, line) for line, (ts, raw) in enumerate(frames, start=1)]
    ticks = list(parser.recorded(recorded))
    assert len(ticks) > 2000
    assert ticks == [t for ts, raw in frames if (t := parser.parse(raw, ts, ts)[1]) is not None]
    with pytest.raises(DataFileError, match=rf"^{path}:7: bad Backpack frame: "):
        list(parser.recorded([*recorded[:3], (1, b"{bad", path, 7)]))
