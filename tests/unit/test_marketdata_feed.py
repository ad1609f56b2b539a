"""The live feed's pieces without sockets: de-duplication, backoff, health, status message."""

from __future__ import annotations

import itertools
import json
import random
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from tests.support.data import BTC_RAW
from tradebus.common import subjects
from tradebus.common.clock import LiveClock
from tradebus.common.codec import decode_feed_status, decode_market, encode
from tradebus.common.config import ConfigError, load_settings
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import FeedStatus, QuoteTick, TradeTick
from tradebus.feeds.binance import BinanceParser, rest_quote_url
from tradebus.feeds.readers import read_frames
from tradebus.marketdata.bootstrap import check_live, live_endpoints
from tradebus.marketdata.dedup import Deduplicator
from tradebus.marketdata.feed import Feed, FeedMetrics
from tradebus.marketdata.health import FeedHealth, HealthMetrics
from tradebus.marketdata.settings import MarketdataSettings
from tradebus.marketdata.sources import backoff_delay

D = Decimal


def quote(u: int | None, bid: str = "100", symbol: str = "BTCUSDT") -> QuoteTick:
    return QuoteTick(
        venue="binance",
        symbol=symbol,
        unified_symbol="BTC/USDT",
        bid=D(bid),
        bid_size=D("1"),
        ask=D(bid) + 1,
        ask_size=D("2"),
        ts_event=1,
        ts_recv=1,
        ts_init=1,
        update_id=u,
    )


def trade(trade_id: str, symbol: str = "BTCUSDT") -> TradeTick:
    return TradeTick(
        venue="binance",
        symbol=symbol,
        unified_symbol="BTC/USDT",
        price=D("100"),
        size=D("1"),
        aggressor="buy",
        trade_id=trade_id,
        ts_event=1,
        ts_recv=1,
        ts_init=1,
    )


# --------------------------------------------------------------------------
# de-duplication
# --------------------------------------------------------------------------


def test_trades_by_id_per_symbol() -> None:
    dedup = Deduplicator()
    assert [dedup.admit(trade(i)) for i in ("5", "6", "6", "5", "7")] == [
        True,
        True,
        False,
        False,
        True,
    ]
    assert dedup.admit(trade("5", symbol="ETHUSDT"))  # ids are per symbol


def test_non_numeric_trade_ids_in_a_bounded_window() -> None:
    dedup = Deduplicator(window=3)
    assert [dedup.admit(trade(i)) for i in ("a", "b", "a", "c", "d")] == [
        True,
        True,
        False,
        True,
        True,
    ]
    assert not dedup.admit(trade("d"))
    assert dedup.admit(trade("a"))  # forgotten: the window holds 3 ids
    assert all(len(ids) <= 3 for ids in dedup._trade_ids.values())


def test_stream_quotes_by_update_id() -> None:
    dedup = Deduplicator()
    assert dedup.admit(quote(10, "100"))
    assert not dedup.admit(quote(10, "100"))  # resent
    assert not dedup.admit(quote(9, "99"))  # older
    assert dedup.admit(quote(11, "100"))  # a new update, even with the same book
    assert dedup.admit(quote(1, "100", symbol="ETHUSDT"))


def test_rest_quotes_against_the_stream() -> None:
    dedup = Deduplicator()
    assert dedup.admit(quote(10, "100"))
    assert not dedup.admit(quote(None, "100"), "rest")  # REST says what the stream said
    assert dedup.admit(quote(None, "101"), "rest")  # the market moved
    assert not dedup.admit(quote(None, "101"), "rest")  # the next poll: nothing new
    # the stream catches up with the book REST already reported: an echo, dropped
    assert not dedup.admit(quote(11, "101"))
    assert not dedup.admit(quote(11, "101"))  # its resend too (u seen)
    assert dedup.admit(quote(12, "102"))
    assert dedup.admit(quote(13, "101"))  # the book went back: a new event from the stream


def test_rest_quotes_with_update_ids() -> None:
    dedup = Deduplicator()
    assert dedup.admit(quote(500, "100"), "rest")
    assert not dedup.admit(quote(499, "99"), "rest")  # an older snapshot
    assert dedup.admit(quote(501, "99"), "rest")
    # stream ids are never compared with REST ids (the venue does not promise one sequence)
    assert dedup.admit(quote(3, "98"))


# --------------------------------------------------------------------------
# reconnect backoff
# --------------------------------------------------------------------------


def test_backoff_is_exponential_capped_and_jittered(monkeypatch: pytest.MonkeyPatch) -> None:
    delays = {backoff_delay(2) for _ in range(50)}
    assert len(delays) > 1 and all(0.5 <= d <= 1.0 for d in delays)
    # the random half at its ends (tenacity draws it with random.uniform)
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert [backoff_delay(n) for n in range(4)] == [0.125, 0.25, 0.5, 1.0]
    assert backoff_delay(10, cap=30.0) == 15.0
    assert backoff_delay(10_000, cap=30.0) == 15.0  # no overflow
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert backoff_delay(3) == pytest.approx(2.0)
    assert backoff_delay(10_000, cap=30.0) == 30.0


# --------------------------------------------------------------------------
# health and status
# --------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sample(registry: CollectorRegistry, name: str, symbol: str) -> float | None:
    return registry.get_sample_value(name, {"venue": "binance", "symbol": symbol})


def test_symbols_go_stale_and_come_back() -> None:
    clock = FakeClock()
    registry = CollectorRegistry()
    health = FeedHealth(
        "binance", ["BTCUSDT", "ETHUSDT"], 2.0, HealthMetrics(registry), clock, lambda: 42
    )
    health.on_connect()
    assert health.changed.is_set()
    health.changed.clear()
    clock.now += 1.5
    health.saw("BTCUSDT")
    clock.now += 1.0  # ETH silent for 2.5 s, BTC for 1 s
    assert health.check() == ["ETHUSDT"]
    assert health.check() == []  # reported once
    assert health.changed.is_set()
    assert sample(registry, "tradebus_marketdata_stale", "ETHUSDT") == 1
    assert sample(registry, "tradebus_marketdata_stale", "BTCUSDT") == 0
    assert sample(registry, "tradebus_marketdata_last_message_age_seconds", "ETHUSDT") == 2.5
    assert health.status() == FeedStatus(
        venue="binance",
        connected=True,
        stale=True,
        stale_symbols=["ETHUSDT"],
        last_message_age={"BTCUSDT": 1.0, "ETHUSDT": 2.5},
        reconnects=0,
        ts_event=42,
    )
    health.changed.clear()
    health.saw("ETHUSDT")
    assert health.changed.is_set() and health.stale == set()
    assert sample(registry, "tradebus_marketdata_stale", "ETHUSDT") == 0
    health.on_disconnect()
    health.on_reconnect()
    status = health.status()
    assert (status.connected, status.stale, status.reconnects) == (False, False, 1)
    health.saw("NOPE")  # not a symbol of the feed: ignored


def test_feed_status_on_the_bus() -> None:
    assert subjects.feed_status("backpack") == "feed.status.backpack"
    with pytest.raises(subjects.SubjectError):
        subjects.feed_status("a.b")
    status = FeedStatus(
        venue="binance",
        connected=True,
        stale=True,
        stale_symbols=["ETHUSDT"],
        last_message_age={"BTCUSDT": 0.25, "ETHUSDT": 12.5},
        reconnects=3,
        ts_event=7,
    )
    raw = encode(status)
    assert raw.startswith(b'{"type":"FeedStatus"')
    assert decode_feed_status(raw) == status
    minimal = decode_feed_status(
        b'{"type":"FeedStatus","venue":"x","connected":false,"stale":false,"ts_event":1}'
    )
    assert minimal.stale_symbols == [] and minimal.last_message_age == {}


# --------------------------------------------------------------------------
# the feed with de-duplication, on recorded frames
# --------------------------------------------------------------------------


async def test_feed_publishes_recorded_frames_once_however_often_they_come(
    data_dir: Path,
) -> None:
    frames = list(itertools.islice(read_frames(data_dir / BTC_RAW[0]), 500))
    catalog = MarketCatalog.load(default_markets_path())
    sent: list[tuple[str, bytes]] = []

    async def publish(subject: str, payload: bytes) -> None:
        sent.append((subject, payload))

    registry = CollectorRegistry()
    health = FeedHealth("binance", ["BTCUSDT"], 5.0, HealthMetrics(registry))
    feed = Feed(
        "binance",
        BinanceParser(catalog, only={"BTCUSDT"}),
        publish,
        LiveClock(),
        FeedMetrics(registry),
        Deduplicator(),
        health,
    )
    handled = frames[:300] + frames[250:] + frames[:50]  # a resend, then an old replay
    for frame in handled:
        await feed.handle(frame)

    def is_tick(frame: tuple[int, bytes]) -> bool:
        return frame[1].startswith(b'{"stream":"btcusdt@') and b"@depth" not in frame[1][:40]

    once = [f for f in frames if is_tick(f)]
    published = [decode_market(p) for _, p in sent]
    assert len(published) == len(once) > 300
    ids = [t.update_id if isinstance(t, QuoteTick) else t.trade_id for t in published]
    assert len(ids) == len(set(ids))
    assert feed.stats.duplicates == sum(map(is_tick, handled)) - len(once) > 50
    dropped = sum(
        registry.get_sample_value(
            "tradebus_marketdata_duplicates_dropped_total",
            {"venue": "binance", "symbol": "BTCUSDT", "kind": kind},
        )
        or 0
        for kind in ("quote", "trade")
    )
    assert dropped == feed.stats.duplicates

    # the REST fallback goes through the same gate
    last = [t for t in published if isinstance(t, QuoteTick)][-1]
    assert not await feed.publish_rest(msgspec.structs.replace(last, update_id=None))
    moved = msgspec.structs.replace(last, bid=last.bid - 1, update_id=None)
    assert await feed.publish_rest(moved)
    assert sent[-1] == ("md.quote.binance.BTCUSDT", encode(moved))
    assert feed.stats.rest_quotes == 1
    labels = {"venue": "binance", "symbol": "BTCUSDT"}
    rest = registry.get_sample_value("tradebus_marketdata_rest_quotes_published_total", labels)
    assert rest == 1


def test_binance_rest_quote(data_dir: Path) -> None:
    parser = BinanceParser(MarketCatalog.load(default_markets_path()))
    raw = (
        b'{"symbol":"BTCUSDT","bidPrice":"61837.63000000","bidQty":"3.78826000",'
        b'"askPrice":"61837.64000000","askQty":"1.54698000"}'
    )
    assert parser.parse_rest_quote(raw, "BTCUSDT", 10, 11) == QuoteTick(
        venue="binance",
        symbol="BTCUSDT",
        unified_symbol="BTC/USDT",
        bid=D("61837.63"),
        bid_size=D("3.78826"),
        ask=D("61837.64"),
        ask_size=D("1.54698"),
        ts_event=10,
        ts_recv=10,
        ts_init=11,
    )
    assert parser.parse_rest_quote(raw, "ETHUSDT", 10, 11) is None  # not what was asked
    empty = raw.replace(b'"bidPrice":"61837.63000000"', b'"bidPrice":"0.00000000"')
    assert parser.parse_rest_quote(empty, "BTCUSDT", 10, 11) is None
    assert (
        rest_quote_url("https://api.binance.com", "BTCUSDT")
        == "https://api.binance.com/api/v3/ticker/bookTicker?symbol=BTCUSDT"
    )


# --------------------------------------------------------------------------
# settings of the live feed
# --------------------------------------------------------------------------


def test_live_settings_are_checked() -> None:
    catalog = MarketCatalog.load(default_markets_path())
    env = {"TRADEBUS_FEED": "backpack", "TRADEBUS_SYMBOLS": "SOL_USDC,BTC_USDC"}
    settings = load_settings(MarketdataSettings, env)
    check_live(settings, catalog)  # Backpack markets ship with the default markets file
    assert settings.stale_seconds == 10.0 and settings.rest_poll_seconds == 1.0
    url, subscribe, rest_url = live_endpoints(settings)
    assert url == "wss://ws.backpack.exchange"
    assert [json.loads(m)["params"][0] for m in subscribe] == ["bookTicker.SOL_USDC"]
    assert rest_url("SOL_USDC") == "https://api.backpack.exchange/api/v1/depth?symbol=SOL_USDC"
    for bad, message in (
        ({"TRADEBUS_SYMBOLS": "BTCUSDT"}, "not in the markets file: BTCUSDT"),
        ({"TRADEBUS_SYMBOLS": ""}, "TRADEBUS_SYMBOLS is required"),
        ({"TRADEBUS_STALE_SECONDS": "0"}, "TRADEBUS_STALE_SECONDS: must be > 0"),
        ({"TRADEBUS_STATUS_SECONDS": "-1"}, "TRADEBUS_STATUS_SECONDS: must be > 0"),
        ({"TRADEBUS_REST_POLL_SECONDS": "-1"}, "TRADEBUS_REST_POLL_SECONDS"),
    ):
        with pytest.raises(ConfigError, match=message):
            check_live(load_settings(MarketdataSettings, env | bad), catalog)
    with pytest.raises(ConfigError, match="TRADEBUS_FEED"):
        load_settings(MarketdataSettings, {"TRADEBUS_FEED": "kraken"})
    binance = load_settings(MarketdataSettings, {"TRADEBUS_SYMBOLS": "BTCUSDT"})
    url, subscribe, rest_url = live_endpoints(binance)
    assert url.endswith("/stream?streams=btcusdt@bookTicker/btcusdt@trade") and subscribe == []
    assert rest_url("BTCUSDT").endswith("/api/v3/ticker/bookTicker?symbol=BTCUSDT")
