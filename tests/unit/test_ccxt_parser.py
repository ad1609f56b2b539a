"""The ccxt.pro feed's frames: ccxt's unified tickers and trades -> frames -> ticks.

The inputs are what ccxt 4.5 itself makes of Backpack's captured sample
frames (``ccxt.pro.backpack.parse_ws_bid_ask`` / ``parse_ws_trade``, no
network): floats in the unified fields, Backpack's text in ``info``. The
ticks must carry Backpack's exact text (``3667.50``, ``0.0020``), not the
floats' (``3667.5``, ``0.002``). Also: the exchange checks, URL overrides,
and the source's reconnect on ccxt errors with a stand-in exchange object.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.pro
import msgspec
import pytest

from tradebus.common.config import ConfigError
from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.common.money import ccxt_decimal as exact
from tradebus.feeds.ccxt_parser import CcxtParser, quote_frame, trade_frame
from tradebus.feeds.parsing import FrameKind
from tradebus.marketdata.ccxt_source import CcxtSource, check_exchange, make_exchange
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.marketdata.sources import FeedRefusedError, Reconnects

TS_RECV = 1_754_517_402_451_000_123
TS_INIT = TS_RECV + 7

BOOK_TICKER = {
    "A": "0.4087",
    "B": "0.0020",
    "E": "1754517402450016",
    "T": "1754517402449064",
    "a": "3667.50",
    "b": "3667.49",
    "e": "bookTicker",
    "s": "ETH_USDC",
    "u": 1328288557,
}
TRADE = {
    "E": "1754601477746429",
    "T": "1754601477744000",
    "a": "5121860761",
    "b": "5121861755",
    "e": "trade",
    "m": True,
    "p": "3870.20",
    "q": "0.0008",
    "s": "ETH_USDC",
    "t": 10782547,
}
MARKETS = MarketCatalog(
    {
        "backpack": [
            Market(
                symbol="ETH_USDC",
                base="ETH",
                quote="USDC",
                tick_size=Decimal("0.01"),
                step_size=Decimal("0.0001"),
            )
        ]
    }
)


@pytest.fixture(scope="module")
def backpack() -> Any:
    return ccxt.pro.backpack()


def parser() -> CcxtParser:
    return CcxtParser(MARKETS, "backpack")


def test_a_ccxt_bid_ask_becomes_a_quote_with_the_exchanges_exact_text(backpack: Any) -> None:
    ticker = backpack.parse_ws_bid_ask(BOOK_TICKER)
    assert ticker["ask"] == 3667.5 and ticker["bidVolume"] == 0.002  # ccxt's floats
    frame = quote_frame("backpack", "ETH_USDC", ticker, TS_RECV)
    kind, tick = parser().parse(frame, TS_RECV, TS_INIT)
    assert kind is FrameKind.QUOTE and isinstance(tick, QuoteTick)
    assert (str(tick.bid), str(tick.bid_size), str(tick.ask), str(tick.ask_size)) == (
        "3667.49",
        "0.0020",
        "3667.50",
        "0.4087",
    )
    assert (tick.venue, tick.symbol, tick.unified_symbol) == ("backpack", "ETH_USDC", "ETH/USDC")
    assert tick.update_id == 1328288557
    assert tick.ts_event == 1754517402450 * 1_000_000  # ccxt's ms, in ns
    assert (tick.ts_recv, tick.ts_init) == (TS_RECV, TS_INIT)


def test_a_ccxt_trade_becomes_a_trade_tick_with_the_exchanges_exact_text(backpack: Any) -> None:
    trade = backpack.parse_ws_trade(TRADE)
    frame = trade_frame("backpack", "ETH_USDC", trade, TS_RECV)
    kind, tick = parser().parse(frame, TS_RECV, TS_INIT)
    assert kind is FrameKind.TRADE and isinstance(tick, TradeTick)
    assert (str(tick.price), str(tick.size)) == ("3870.20", "0.0008")
    assert tick.aggressor == "sell"  # m: the buyer was the maker
    assert tick.trade_id == "10782547"
    assert tick.ts_event == 1754601477746 * 1_000_000


def test_exact_prefers_info_text_then_any_equal_field_then_the_float() -> None:
    assert str(exact(1.5, {"x": "1.50"}, ("x",))) == "1.50"
    assert str(exact(1.5, {"other": "9", "px": "1.500"})) == "1.500"  # found by value
    assert str(exact(1.5, {"px": "1.6"})) == "1.5"  # not there: Decimal(str(x))
    assert str(exact(0.1 + 0.2, None)) == "0.30000000000000004"  # never Decimal(float)
    assert str(exact("2.10", {})) == "2.10"  # ccxt with number = str
    with pytest.raises(ValueError):
        exact(None, {})


def test_the_one_conversion_also_serves_optional_numbers_and_execution_fills() -> None:
    """``default`` for ccxt's missing numbers (market limits, balances); a fill's text."""
    assert exact(None, {}, default=None) is None
    assert exact(None, default=Decimal(0)) == 0
    assert str(exact(0.01, default=None)) == "0.01"  # market precision: the float's repr
    fill = {"price": "61837.63000000", "quantity": "0.00100", "fee": "0.0000010"}
    assert str(exact(61837.63, fill, ("price",))) == "61837.63000000"
    assert str(exact(0.001, fill, ("quantity",))) == "0.00100"
    assert str(exact(None, fill, ("fee",), default=Decimal(0))) == "0"  # no number, no guess
    with pytest.raises(ValueError):
        exact(True, {})


def test_a_ticker_without_a_side_or_a_trade_without_id_is_refused() -> None:
    with pytest.raises(ValueError):
        quote_frame("okx", "BTC-USDT", {"bid": 1.0, "bidVolume": 1.0, "ask": None}, TS_RECV)
    with pytest.raises(ValueError):
        trade_frame("okx", "BTC-USDT", {"price": 1.0, "amount": 1.0, "id": None}, TS_RECV)


def test_generic_exchange_without_update_id_or_timestamp() -> None:
    ticker = {"bid": 1.25, "bidVolume": 3.0, "ask": 1.5, "askVolume": 0.5, "info": {}}
    frame = quote_frame("someex", "ETH_USDC", ticker, TS_RECV)
    _, tick = parser().parse(frame, TS_RECV, TS_INIT)
    assert isinstance(tick, QuoteTick)
    assert tick.update_id is None and tick.ts_event == TS_RECV
    assert (tick.bid, tick.bid_size, tick.ask, tick.ask_size) == tuple(
        Decimal(x) for x in ("1.25", "3.0", "1.5", "0.5")
    )


def test_other_symbols_bad_frames_and_rest_quotes(backpack: Any) -> None:
    p = parser()
    other = quote_frame("backpack", "SOL_USDC", backpack.parse_ws_bid_ask(BOOK_TICKER), TS_RECV)
    assert p.parse(other, TS_RECV, TS_INIT) == (FrameKind.OTHER_SYMBOL, None)
    with pytest.raises(msgspec.DecodeError):
        p.parse(b"not json", TS_RECV, TS_INIT)
    with pytest.raises(msgspec.ValidationError):
        p.parse(b'{"k":"x","s":"ETH_USDC"}', TS_RECV, TS_INIT)
    rest = quote_frame(
        "backpack", "ETH_USDC", backpack.parse_ws_bid_ask(BOOK_TICKER), TS_RECV, update_id=False
    )
    tick = p.parse_rest_quote(rest, "ETH_USDC", TS_RECV, TS_INIT)
    assert tick is not None and tick.update_id is None and str(tick.ask) == "3667.50"
    assert p.parse_rest_quote(rest, "SOL_USDC", TS_RECV, TS_INIT) is None


def test_check_exchange_names_the_setting() -> None:
    no_pro = next(e for e in ccxt.exchanges if e not in ccxt.pro.exchanges)
    for bad in ("", "nosuchexchange", no_pro):
        with pytest.raises(ConfigError, match="TRADEBUS_CCXT_EXCHANGE"):
            check_exchange(bad)
    check_exchange("backpack")
    check_exchange("okx")


def test_make_exchange_points_rest_and_websocket_elsewhere() -> None:
    ex = make_exchange("backpack", "ws://127.0.0.1:1/", "http://127.0.0.1:1")
    api = ex.urls["api"]
    assert api["public"] == api["private"] == "http://127.0.0.1:1"
    assert api["ws"] == {"public": "ws://127.0.0.1:1/", "private": "ws://127.0.0.1:1/"}
    assert make_exchange("backpack").urls["api"]["ws"]["public"] == "wss://ws.backpack.exchange"


def test_settings_venue_is_the_ccxt_exchange() -> None:
    settings = MarketdataSettings(feed="ccxt", ccxt_exchange="okx")
    assert settings.venue() == "okx"
    assert MarketdataSettings(feed="backpack").venue() == "backpack"


class FlakyExchange:
    """A stand-in ccxt.pro client (the network edge is tested end to end elsewhere):
    its watches fail with ``errors`` first, then deliver one bid/ask."""

    id = "backpack"
    has = {"watchBidsAsks": True, "watchTradesForSymbols": True}
    markets_by_id = {"ETH_USDC": [{"symbol": "ETH/USDC"}]}

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.clients: dict[str, Any] = {}
        self.bidsasks: dict[str, Any] = {}
        self.trades: dict[str, Any] = {}
        self.closed = 0

    async def load_markets(self) -> None:
        return None

    async def watch_bids_asks(self, symbols: list[str]) -> dict[str, Any]:
        await asyncio.sleep(0)
        if self.errors:
            raise self.errors.pop(0)
        self.bidsasks["ETH/USDC"] = {"symbol": "ETH/USDC", **backpack_ticker()}
        return self.bidsasks

    async def watch_trades_for_symbols(self, symbols: list[str]) -> list[Any]:
        await asyncio.Event().wait()  # no trades
        return []

    async def close_ws_clients(self) -> None:
        return None

    async def close(self) -> None:
        self.closed += 1


def backpack_ticker() -> dict[str, Any]:
    t = ccxt.pro.backpack().parse_ws_bid_ask(BOOK_TICKER)
    return {k: t[k] for k in ("bid", "bidVolume", "ask", "askVolume", "timestamp", "info")}


async def test_source_survives_ccxt_network_errors_and_reports_the_connection() -> None:
    events: list[str] = []
    reconnects = Reconnects(
        on_connect=lambda: events.append("connect"),
        on_disconnect=lambda: events.append("disconnect"),
        on_reconnect=lambda: events.append("reconnect"),
    )
    errors: list[Exception] = [ccxt.NetworkError("down"), ccxt.ExchangeClosedByUser("closed")]
    ex = FlakyExchange(errors)
    source = CcxtSource(ex, ["ETH_USDC"], reconnects=reconnects)
    frames = source.frames()
    ts, raw = await asyncio.wait_for(anext(frames), 5)
    _, tick = parser().parse(raw, ts, ts)
    assert isinstance(tick, QuoteTick) and str(tick.ask) == "3667.50"
    assert errors == [] and events == ["connect"]  # two failed sessions, then one that works
    await frames.aclose()
    assert ex.closed == 1 and events == ["connect", "disconnect"]


async def test_source_stops_for_good_on_a_permanent_ccxt_error() -> None:
    ex = FlakyExchange([ccxt.AuthenticationError("no")])
    with pytest.raises(FeedRefusedError, match="AuthenticationError"):
        await asyncio.wait_for(anext(CcxtSource(ex, ["ETH_USDC"]).frames()), 5)
    assert ex.closed == 1
    unknown = CcxtSource(FlakyExchange([]), ["SOL_USDC"]).frames()
    with pytest.raises(FeedRefusedError, match="SOL_USDC"):
        await asyncio.wait_for(anext(unknown), 5)
