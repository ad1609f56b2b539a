"""Backpack's behaviour through the whole stack (issue 18): a bot on a live Backpack
account meets what the venue really does.

Real NATS and PostgreSQL, the real execution, strategy host and marketdata
(``TRADEBUS_FEED=backpack`` on the local server's WebSocket), and the local
Backpack server (:class:`~tests.support.backpack.server.BackpackServer`)
with the real ccxt client. Trades are fed to the server, which streams them
and fills orders on them.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from tests.support.backpack.market import BTC_USDC, spot_market
from tests.support.backpack.stack import backpack_stack
from tests.support.services import eventually
from tradebus.common import subjects
from tradebus.common.codec import decode_markets_reply, encode
from tradebus.common.messages import (
    MarketsQuery,
    MarketsReply,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
)
from tradebus.execution.order_stream import CANCELED_GRACE_SECONDS

FAR_LADDER = """
defaults: {venue: backpack, symbol: BTC_USDC}
strategies:
  far: {strategy: ladder, total_quote: "400", order_count: 4, max_drop_pct: "40",
        take_profit_pct: "1"}
users:
  - {user: bob, account: bob-backpack, strategies: {far: {}}}
"""


async def test_a_ladder_level_outside_the_price_band_is_refused_once_and_reported(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # levels 10, 20, 30 and 40 % under 60,000; Backpack's band ends 25 % under the last
    # price, so the two deepest levels are refused with INVALID_PRICE
    async with backpack_stack(
        nats_url,
        database_url,
        tmp_path,
        monkeypatch,
        bots=FAR_LADDER,
    ) as stack:
        bus, server = stack.bus, stack.server
        await eventually(
            lambda: len(bus.of(OrderAccepted)) == 2 and len(bus.of(OrderRejected)) == 2,
            what="two levels placed, two refused",
            detail=lambda: f"{bus.of(OrderRejected)}",
        )
        refused = sorted(bus.of(OrderRejected), key=lambda r: str(r.intent_id))
        assert [str(r.intent_id).rsplit(":", 1)[1] for r in refused] == ["b2", "b3"]
        assert {r.reason for r in refused} == {"invalid_price"}
        assert all("too far from the last active price" in r.message for r in refused)
        resting = sorted(str(o.price) for o in server.open_orders(stack.creds.api_key))
        assert resting == ["48000", "54000"]

        async def reported() -> bool:
            status = await stack.status("bob-far")
            return status is not None and "invalid_price" in (status.error or "")

        await eventually(reported, what="the bot to say why its level was refused")
        status = await stack.status("bob-far")
        assert status is not None and status.state == "running", status
        assert status.open_orders == 2
        # refused for good: nothing is sent again
        await asyncio.sleep(2)
        assert len(server.requests_for("orderExecute")) == 4
        assert len(bus.of(OrderRejected)) == 2


IOC_BUY = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"bob-backpack","symbol":"BTC_USDC",'
    '"side":"buy","qty":"0.01","price":"60200","time_in_force":"ioc"}'
)


async def test_an_ioc_partial_fill_is_booked_within_a_second(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18, items 3 and 5: ``time_in_force: ioc`` reaches Backpack (it rested as a
    good-till-canceled order before), the venue takes what the touch offers inside the
    order request and expires the rest, and the fill is booked within a second from the
    account's order stream, not left to the 30-second backstop poll."""
    async with backpack_stack(
        nats_url,
        database_url,
        tmp_path,
        monkeypatch,
        partial_fills=True,
    ) as stack:
        bus, server = stack.bus, stack.server
        await server.feed_quote("BTC_USDC", "60090", "1", "60100", "0.004")
        await bus.pub("intent.bob.manual", IOC_BUY % "m-1")
        await eventually(lambda: server.fills(stack.creds.api_key), what="the venue's fill")
        filled_at = time.monotonic()
        (order,) = server.orders(stack.creds.api_key)
        assert (order.time_in_force, order.status, order.executed_qty) == (
            "IOC",
            "Expired",
            Decimal("0.004"),
        )
        await eventually(lambda: bus.of(OrderFilled, "m-1"), timeout=5, what="the fill booked")
        booked_in = time.monotonic() - filled_at
        (fill,) = bus.of(OrderFilled, "m-1")
        assert (fill.qty, fill.price, fill.liquidity) == (Decimal("0.004"), Decimal(60100), "taker")
        assert booked_in < 1.0, f"booked {booked_in:.2f} s after the venue filled it"
        # the unfilled rest expired at the venue: the order is closed here too, its source told
        await eventually(lambda: bus.of(OrderCanceled, "m-1"), what="the rest expired")
        (ended,) = bus.of(OrderCanceled, "m-1")
        assert (ended.reason, ended.filled_qty, ended.cancel_intent_id) == (
            "expired",
            Decimal("0.004"),
            None,
        )
        assert await order_status(database_url, "m-1") == "canceled"


GTC_BUY = (
    '{"type":"PlaceOrder","intent_id":"%s","account":"bob-backpack","symbol":"BTC_USDC",'
    '"side":"buy","qty":"0.001","price":"59000"}'
)


async def test_a_fill_ccxt_pro_folds_into_the_expiry_is_fetched_at_once(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18, item 5: ccxt.pro keeps one update per order between two reads. While
    the order stream books one fill (a resting buy's), an IOC's acceptance, fill and
    expiry arrive; the next read holds only the ``orderExpired`` update, with no fill in
    it but the executed quantity ``z`` ahead of the ledger. The stream must fetch that
    fill at once, not leave it to the 30-second backstop poll."""
    async with backpack_stack(
        nats_url,
        database_url,
        tmp_path,
        monkeypatch,
        partial_fills=True,
    ) as stack:
        bus, server = stack.bus, stack.server
        await server.feed_quote("BTC_USDC", "60090", "1", "60100", "0.004")
        await bus.pub("intent.bob.manual", GTC_BUY % "g-1")
        await eventually(lambda: bus.of(OrderAccepted, "g-1"), what="the resting buy")
        server.hold_ws_frames()
        await server.feed_trade("BTC_USDC", "58999", "0.01")  # fills the resting buy
        await bus.pub("intent.bob.manual", IOC_BUY % "m-1")
        await eventually(
            lambda: any(o.status == "Expired" for o in server.orders(stack.creds.api_key)),
            what="the IOC taken and expired at the venue",
        )
        # g-1's fill (and the public trade, to the feed), then, while the stream books
        # that fill, m-1's acceptance, fill and expiry at once
        assert await server.release_ws_frames(pause=0.002) == 5
        released = time.monotonic()
        await eventually(lambda: bus.of(OrderFilled, "g-1"), timeout=5, what="g-1's fill")
        await eventually(lambda: bus.of(OrderFilled, "m-1"), timeout=5, what="m-1's fill")
        booked_in = time.monotonic() - released
        assert booked_in < 1.0, f"booked {booked_in:.2f} s after the stream told"
        (fill,) = bus.of(OrderFilled, "m-1")
        assert (fill.qty, fill.price) == (Decimal("0.004"), Decimal(60100))
        await eventually(lambda: bus.of(OrderCanceled, "m-1"), what="the rest expired")


async def test_an_order_canceled_at_the_venue_is_closed_here_and_its_source_told(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order canceled at the venue (by hand, in its web page) is closed in the ledger
    and its source hears ``OrderCanceled`` (reason ``canceled_at_venue``); a cancel sent
    through execution is told once, as the cancel it was."""
    async with backpack_stack(
        nats_url,
        database_url,
        tmp_path,
        monkeypatch,
    ) as stack:
        bus, server = stack.bus, stack.server
        await bus.pub("intent.bob.manual", GTC_BUY % "g-1")
        await bus.pub("intent.bob.manual", GTC_BUY % "g-2")
        await eventually(
            lambda: bus.of(OrderAccepted, "g-1") and bus.of(OrderAccepted, "g-2"),
            what="two resting buys",
        )
        by_hand = stack.server.ccxt_client(stack.creds, enableRateLimit=False)
        try:
            (accepted,) = bus.of(OrderAccepted, "g-1")
            await by_hand.cancel_order(accepted.venue_order_id, "BTC/USDC")
        finally:
            await by_hand.close()
        await eventually(lambda: bus.of(OrderCanceled, "g-1"), what="g-1 closed here", timeout=8)
        (ended,) = bus.of(OrderCanceled, "g-1")
        assert (ended.reason, ended.cancel_intent_id) == ("canceled_at_venue", None)
        assert await order_status(database_url, "g-1") == "canceled"
        # a cancel of ours: one OrderCanceled, naming the cancel
        await bus.pub("intent.bob.manual", CANCEL % ("c-2", "g-2"))
        await eventually(lambda: bus.of(OrderCanceled, "g-2"), what="g-2 canceled")
        await asyncio.sleep(CANCELED_GRACE_SECONDS + 0.5)
        (ours,) = bus.of(OrderCanceled, "g-2")
        assert (ours.reason, ours.cancel_intent_id) == ("canceled", "c-2")
        assert server.open_orders(stack.creds.api_key) == []


CANCEL = '{"type":"CancelOrder","intent_id":"%s","account":"bob-backpack","target_intent_id":"%s"}'


async def order_status(database_url: str, intent_id: str) -> str | None:
    """The ledger's status of bob's order ``intent_id``."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            "SELECT status FROM orders WHERE user_id = 'bob' AND intent_id = $1", intent_id
        )
    finally:
        await conn.close()


DOGE_LADDER = """
defaults: {venue: backpack, symbol: DOGE_USDC}
strategies:
  doge: {strategy: ladder, total_quote: "100", order_count: 2, max_drop_pct: "2",
         take_profit_pct: "1"}
users:
  - {user: bob, account: bob-backpack, strategies: {doge: {}}}
"""


async def test_markets_come_from_the_venue_and_the_host_learns_them_from_execution(
    nats_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``DOGE_USDC`` is in no markets file: execution loads it from the venue (ccxt
    ``load_markets``), answers ``exec.query.markets`` with it, and the strategy host,
    which asks before it reads its bot file, builds a ladder on it with the venue's
    increments (tick 0.00001, step 1); BTC_USDC's rules are the venue's too."""
    doge = spot_market("DOGE", "USDC", tick="0.00001", step="1")
    # only the feed checks its symbols against a markets file (left as it is): give it one
    feed_markets = tmp_path / "feed-markets.yaml"
    feed_markets.write_text(
        "venues:\n  backpack:\n    - {symbol: DOGE_USDC, base: DOGE, quote: USDC,"
        ' tick_size: "0.00001", step_size: "1"}\n'
    )
    async with backpack_stack(
        nats_url,
        database_url,
        tmp_path,
        monkeypatch,
        bots=DOGE_LADDER,
        first_prices={"DOGE_USDC": "0.12345"},
        markets=(BTC_USDC, doge),
        feed_markets_file=str(feed_markets),
    ) as stack:
        raw = await stack.nc.request(
            subjects.exec_query("markets"), encode(MarketsQuery(venue="backpack")), timeout=5
        )
        reply = decode_markets_reply(raw.data)
        assert isinstance(reply, MarketsReply), reply
        told = {m.symbol: m for m in reply.venues["backpack"]}
        assert (told["DOGE_USDC"].tick_size, told["DOGE_USDC"].step_size) == (
            Decimal("0.00001"),
            Decimal(1),
        )
        assert told["DOGE_USDC"].kind == "spot" and told["BTC_USDC"].tick_size == Decimal("0.1")
        bus = stack.bus
        await eventually(lambda: len(bus.of(OrderAccepted)) == 2, what="the ladder's two levels")
        resting = stack.server.open_orders(stack.creds.api_key)
        assert {o.symbol for o in resting} == {"DOGE_USDC"}
        for order in resting:
            assert order.price is not None and order.quantity is not None
            assert order.price % Decimal("0.00001") == 0 and order.quantity % 1 == 0
