"""bench.peers (issue 21): the trades every engine gets, and the step without the peers' venv.

No peer is installed here: the step's "not installed" row is checked against an empty
directory, and the conversions against the recorded captures of shared/data.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from bench import peers
from bench.peers import trades as tr
from tradebus.common.messages import TradeTick
from tradebus.feeds.readers import read_events

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")


def source_trades() -> list[TradeTick]:
    files = tr.source_files(DATA)
    return [e for e in read_events(files, "binance-raw", tr.SYMBOL) if type(e) is TradeTick]


@pytest.fixture(scope="module")
def two_copies() -> tr.Trades:
    return tr.load_trades(DATA, copies=2)


def test_trades_are_the_captures_trades_tiled(two_copies: tr.Trades) -> None:
    src = source_trades()
    got = two_copies.ticks
    assert two_copies.source_count == len(src) > 1000
    assert len(got) == 2 * len(src)
    for copy in (got[: len(src)], got[len(src) :]):
        assert [t.price for t in copy] == [t.price for t in src]
        assert [t.size for t in copy] == [t.size for t in src]
    ts = [t.ts_recv for t in got]
    assert ts == sorted(ts)
    assert got[len(src)].ts_recv - got[len(src) - 1].ts_recv == tr.GAP_NS


def test_columns_and_hftbacktest_rows_keep_prices_and_times(
    two_copies: tr.Trades, tmp_path: Path
) -> None:
    src = source_trades()
    paths = tr.write_inputs(two_copies, tmp_path)
    with np.load(paths["columns"]) as z:
        columns = {k: z[k] for k in z.files}
    rows = np.load(paths["hftbacktest"])
    n = len(two_copies)
    assert len(columns["price"]) == len(rows) == n
    assert rows.dtype.itemsize == 64
    for i in (0, n - 1):
        tick = two_copies.ticks[i]
        assert Decimal(str(columns["price_text"][i])) == tick.price
        assert rows["px"][i] == float(tick.price)
        assert rows["qty"][i] == float(tick.size)
        assert rows["exch_ts"][i] == rows["local_ts"][i] == tick.ts_recv
        side = tr.BUY_EVENT if tick.aggressor == "buy" else tr.SELL_EVENT
        assert int(rows["ev"][i]) == tr.EXCH_EVENT | tr.LOCAL_EVENT | tr.TRADE_EVENT | side
    assert rows["px"][0] == float(src[0].price)
    assert rows["px"][-1] == float(src[-1].price)
    back = tr.ticks_of_columns(columns)
    assert [(t.price, t.size, t.ts_recv, t.aggressor) for t in back] == [
        (t.price, t.size, t.ts_recv, t.aggressor) for t in two_copies.ticks
    ]


def test_load_trades_names_a_missing_capture(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="binance-spot_BTCUSDT_rawfeed"):
        tr.load_trades(tmp_path)


def test_step_says_not_installed_without_the_peers_venv(tmp_path: Path) -> None:
    rows = peers.run(DATA, peers_dir=tmp_path / "peers")
    assert rows == [{"row": "peers", "value": None, "unit": "", "detail": peers.NOT_INSTALLED}]


def test_counts_that_differ_are_flagged() -> None:
    ours = {"events": 1000, "seconds": 0.5, "placed": 100, "filled": 50, "cycles": 5}
    ours["rss_mib"] = 100.0
    near = ours | {"engine": "x", "version": "1", "seconds": 0.25, "placed": 95, "filled": 47}
    far = near | {"filled": 30}
    rows = peers.rows_of(
        ours, [("near", near), ("far", far), ("broken", "exited 1"), ("absent", "not installed: x")]
    )
    by = {r["row"]: r for r in rows}
    assert "COUNTS DIFFER" not in by["peers: near 1, active ladder"]["detail"]
    assert "COUNTS DIFFER" in by["peers: far 1, active ladder"]["detail"]
    assert by["peers: far 1, active ladder"]["value"] == 4000
    assert by["peers: tradebus ÷ near (events/s)"]["value"] == 0.5
    assert by["peers: broken: FAILED"]["detail"] == "exited 1"
    assert by["peers: absent: not installed"]["value"] is None
