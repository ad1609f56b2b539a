"""The backtest's fast paths give what the plain paths give.

* :meth:`Backtest.run` (the per-event loop inlined) against :meth:`Backtest.step`
  called event by event: same fills, chart samples and summary.
* The ``binance-raw`` reader's fast path (``data`` decoded straight into a
  typed struct, decimals through a cache) against
  :class:`~tradebus.feeds.binance.BinanceParser` on every frame of the
  real captures, and frames the fast path cannot read handed to the parser
  (its ticks, its errors).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from tradebus.backtest.engine import Backtest, open_events
from tradebus.backtest.setup import make_setup
from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.feeds.binance import BinanceParser
from tradebus.feeds.files import DataFileError
from tradebus.feeds.readers import merge_files, read_events

RAW = [
    "binance-spot_{s}_rawfeed_2024-08-08_2354-2400Z.txt.gz",
    "binance-spot_{s}_rawfeed_2024-08-09_0000-0005Z.txt.gz",
]
LADDER = {
    "symbol": "BTCUSDT",
    "tick_size": "0.01",
    "step_size": "0.00001",
    "maker_fee_bps": "10",
    "taker_fee_bps": "20",
    "balances": {"USDT": "10000"},
    "total_quote": "5000",
    "order_count": 5,
    "max_drop_pct": "0.1",
    "increment_pct": "20",
    "take_profit_pct": "0.02",
    "no_fill_restart_minutes": "1",
}


def parsed(paths: list[Path], symbol: str, venue: str) -> list[QuoteTick | TradeTick]:
    """The ticks of ``paths`` as the parser alone makes them (frames merged by receive time)."""
    market = Market(
        symbol=symbol, base=symbol, quote="", tick_size=Decimal(1), step_size=Decimal(1)
    )
    parser = BinanceParser(MarketCatalog({venue: [market]}), venue=venue)
    out: list[QuoteTick | TradeTick] = []
    for ts, raw in merge_files(paths):
        _, tick = parser.parse(raw, ts, ts)
        if tick is not None:
            out.append(msgspec.structs.replace(tick, unified_symbol=symbol))
    return out


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_binance_fast_path_gives_the_parser_s_ticks(symbol: str, data_dir: Path) -> None:
    paths = [data_dir / f.format(s=symbol) for f in RAW]
    fast = list(read_events(paths, "binance-raw", symbol, venue="backtest"))
    assert len(fast) > 50_000
    plain = parsed(paths, symbol, "backtest")
    assert fast == plain
    assert msgspec.json.encode(fast) == msgspec.json.encode(plain)  # same decimal text too


BOOK = (
    '{{"stream":"btcusdt@bookTicker","data":{{"u":7,"s":"BTCUSDT","b":{b},'
    '"B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}}}'
)


def test_binance_frames_the_fast_path_cannot_read_go_to_the_parser(tmp_path: Path) -> None:
    number, text = BOOK.format(b="61837.63"), BOOK.format(b='"61837.63000000"')
    lines = [
        f"100 {number}",  # a JSON number: the parser reads it as a decimal
        f"200 {text}",  # the usual frame
        f"300 {text} ",  # trailing blank: still one frame
    ]
    path = tmp_path / "ok.txt"
    path.write_text("\n".join(lines) + "\n")
    ticks = list(read_events([path], "binance-raw", "BTCUSDT", venue="backtest"))
    assert ticks == parsed([path], "BTCUSDT", "backtest")
    bids = [str(t.bid) for t in ticks]  # type: ignore[union-attr]
    assert bids == ["61837.63", "61837.63000000", "61837.63000000"]
    bad = tmp_path / "bad.txt"
    bad.write_text("1 " + BOOK.format(b='"61837.63"') + "\n100 " + BOOK.format(b='"6x"') + "\n")
    with pytest.raises(msgspec.ValidationError) as parser_error:
        parsed([bad], "BTCUSDT", "backtest")
    with pytest.raises(DataFileError) as reader_error:
        list(read_events([bad], "binance-raw", "BTCUSDT"))
    assert str(reader_error.value) == f"{bad}:2: bad Binance frame: {parser_error.value}"


def test_a_run_fed_event_by_event_and_one_that_hands_the_bot_every_event_agree(
    data_dir: Path,
) -> None:
    """Skipping the ticks a parked ladder cannot act on changes nothing, nor does feeding
    the events one call at a time."""
    setup = make_setup("ladder", LADDER)
    events = list(
        open_events(setup, [data_dir / f.format(s="BTCUSDT") for f in RAW], "binance-raw")
    )
    ran = Backtest(setup).run(events)
    every = Backtest(setup, skip_ticks=False).run(events)
    stepped = Backtest(setup)
    for event in events:
        stepped.feed([event])
    stepped.catch_up()
    stepped.books.sample(stepped._ts, force=True)
    assert ran.fills == every.fills == stepped.books.fills and len(ran.fills) > 2
    assert ran.samples == every.samples == stepped.books.samples
    summary = stepped.summary(1.0)
    for key in ("elapsed_seconds", "events_per_second"):
        del ran.summary[key], every.summary[key], summary[key]
    assert ran.summary == every.summary == summary
