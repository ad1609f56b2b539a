"""The strategy host on a real NATS: ticks in, intents into JetStream with their ids, status out.

A restarted host re-emits the same intent ids for the same market events, and
JetStream's duplicate window keeps one copy (DESIGN.md: deterministic intent
ids published with ``Nats-Msg-Id``).
"""

from __future__ import annotations

from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from tests.support.services import eventually, service
from tests.support.ticks import quote, trade
from tradebus.common import subjects
from tradebus.common.codec import decode_bots_reply, decode_intent, encode
from tradebus.common.messages import CancelOrder, PlaceOrder
from tradebus.strategy.bootstrap import run
from tradebus.strategy.settings import StrategySettings

BOTS = """
bots:
  - {id: alice-btc, user: alice, account: alice-paper, strategy: ladder, venue: binance,
     symbol: BTCUSDT, params: {total_quote: "1000", order_count: 4, max_drop_pct: "1",
     take_profit_pct: "0.5"}}
  - {id: bob-eth, user: bob, account: bob-paper, strategy: ladder, venue: binance,
     symbol: ETHUSDT, params: {total_quote: "500", order_count: 2, max_drop_pct: "2",
     take_profit_pct: "1"}}
"""


async def responds(nc: NATS) -> bool:
    try:
        await nc.request(subjects.ctl("bots", "list"), b"{}", timeout=0.2)
        return True
    except Exception:
        return False


async def stream_intents(nc: NATS) -> list[tuple[str, str, PlaceOrder]]:
    """(subject, Nats-Msg-Id, intent) of every message in INTENTS."""
    js = nc.jetstream()
    info = await js.stream_info(subjects.STREAM_INTENTS)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(subjects.STREAM_INTENTS, seq)
        out.append((msg.subject, msg.headers["Nats-Msg-Id"], decode_intent(msg.data)))
    return out


async def test_ticks_become_intents_once_even_across_a_restart(
    nats_url: str, tmp_path: Path
) -> None:
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS)
    settings = StrategySettings(
        nats_url=nats_url, bots_file=str(bots), metrics_port=0, stop_timeout_seconds=0.2
    )
    nc = await nats.connect(nats_url)
    md = subjects.md_trade
    async with service(run, settings, lambda: responds(nc)):
        await nc.publish(md("binance", "BTCUSDT"), encode(trade("60000", 1, "BTCUSDT")))
        await nc.publish(md("binance", "ETHUSDT"), encode(trade("3000", 2, "ETHUSDT")))
        # a symbol no bot trades, and a quote of BTC after its first trade: no new intents
        await nc.publish(md("binance", "SOLUSDT"), encode(trade("150", 3, "SOLUSDT")))
        await nc.publish(subjects.md_quote("binance", "BTCUSDT"), encode(quote("1", "2", 4)))
        await eventually(lambda: _count(nc, 6), what="6 intents in INTENTS")
        raw = await nc.request(subjects.ctl("bots", "status"), b'{"bot":"alice-btc"}')
        (status,) = decode_bots_reply(raw.data).bots  # type: ignore[union-attr]
        assert (status.bot, status.state, status.orders_placed) == ("alice-btc", "buying", 4)
    first = await stream_intents(nc)
    places = [(s, i.intent_id) for s, _, i in first if isinstance(i, PlaceOrder)]
    assert places == [("intent.alice.alice-btc", f"alice-btc:1:b{n}") for n in range(4)] + [
        ("intent.bob.bob-eth", f"bob-eth:1:b{n}") for n in range(2)
    ]
    assert [i.trigger_ts for _, _, i in first if isinstance(i, PlaceOrder)] == [1] * 4 + [2] * 2
    # stopping the host stopped the bots, which cancel their open orders (cancel_on_exit)
    cancels = sorted(i.target_intent_id for _, _, i in first if isinstance(i, CancelOrder))
    assert cancels == sorted(intent_id for _, intent_id in places)
    assert all(msg_id == intent.intent_id for _, msg_id, intent in first)
    # a new host starts the bots afresh; the same events give the same ids: kept once
    async with service(run, settings, lambda: responds(nc)):
        await nc.publish(md("binance", "BTCUSDT"), encode(trade("60000", 1, "BTCUSDT")))
        await nc.publish(md("binance", "ETHUSDT"), encode(trade("3000", 2, "ETHUSDT")))
        await eventually(lambda: _all_placed(nc), what="both bots to place again")
    assert await stream_intents(nc) == first
    await nc.close()


async def _count(nc: NATS, n: int) -> bool:
    info = await nc.jetstream().stream_info(subjects.STREAM_INTENTS)
    return info.state.messages >= n


async def _all_placed(nc: NATS) -> bool:
    raw = await nc.request(subjects.ctl("bots", "status"), b"{}")
    statuses = decode_bots_reply(raw.data).bots  # type: ignore[union-attr]
    return len(statuses) == 2 and all(s.orders_placed for s in statuses)
