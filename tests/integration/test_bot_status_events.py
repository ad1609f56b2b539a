"""Bot status changes on ``bot.status.<user>.<bot>``: a real host on a real NATS.

The host publishes a bot's status when it starts, at once when something a
person watches changes (placing orders, a pause, a resume, a fill), at most
about once a second while only the price moves, and a last one when it stops.
The order events are published on ``EXEC`` as execution would.
The cost in the tick path is measured (printed, not asserted) with 1,000 bots.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from decimal import Decimal
from pathlib import Path

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from tests.support.intents import IntentRecorder, ensure_intent_streams
from tests.support.markets import BTCUSDT_MIN as BTC
from tests.support.markets import bot_context
from tests.support.services import eventually, service
from tests.support.sinks import Capture
from tests.support.ticks import trade
from tradebus.common import subjects
from tradebus.common.bus import ensure_streams, publish_event
from tradebus.common.codec import decode_bot_status_changed, encode
from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.messages import (
    BotStatusChanged,
    OrderAccepted,
    OrderFilled,
    PlaceOrder,
)
from tradebus.strategies.core import Wake
from tradebus.strategies.ladder.bot import LadderBot
from tradebus.strategies.ladder.params import LadderParams
from tradebus.strategies.registry import BotSpec
from tradebus.strategy.bootstrap import run
from tradebus.strategy.host import BotRunner, Dispatcher
from tradebus.strategy.host_metrics import HostMetrics
from tradebus.strategy.settings import StrategySettings
from tradebus.strategy.status_events import Publish, StatusEvents

BOTS = """
defaults: {venue: binance}
strategies:
  btc: {strategy: ladder, symbol: BTCUSDT, total_quote: "1000", order_count: 4,
        max_drop_pct: "1", take_profit_pct: "0.5"}
users:
  - {user: alice, account: alice-paper, strategies: {btc: {}}}
"""
BOT = "alice-btc"


class Statuses:
    """Every ``BotStatusChanged`` received on ``bot.status.>``, in order."""

    def __init__(self) -> None:
        self.got: list[tuple[str, BotStatusChanged]] = []

    async def start(self, nc: NATS) -> Statuses:
        async def cb(msg: Msg) -> None:
            self.got.append((msg.subject, decode_bot_status_changed(msg.data)))

        await nc.subscribe(subjects.BOT_STATUS_ALL, cb=cb)
        await nc.flush()
        return self

    def states(self) -> list[tuple[str, str, int, int]]:
        """(state, phase, orders placed, orders filled) of each, in order."""
        return [
            (m.status.state, m.status.phase, m.status.orders_placed, m.status.orders_filled)
            for _, m in self.got
        ]

    def last(self) -> BotStatusChanged | None:
        return self.got[-1][1] if self.got else None


def settings_for(nats_url: str, bots: Path) -> StrategySettings:
    return StrategySettings(
        nats_url=nats_url,
        bots_file=str(bots),
        metrics_port=0,
        stop_timeout_seconds=0.2,
        heartbeat_seconds=0.2,
        lease_seconds=2,
        replica_id="test-host",
    )


async def command(nc: NATS, verb: str) -> None:
    await nc.request(subjects.ctl("bots", verb), encode({"bot": BOT}), timeout=3)


async def test_lifecycle_orders_and_fills_are_published_in_order_and_prices_throttled(
    nats_url: str, tmp_path: Path
) -> None:
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js)
    await ensure_intent_streams(js, ["alice"])
    seen = await Statuses().start(nc)
    recorder = await IntentRecorder().start(nc)

    def latest(check: object) -> bool:
        last = seen.last()
        return last is not None and bool(check(last.status))  # type: ignore[operator]

    async def running() -> bool:
        return latest(lambda s: s.state == "running")

    md = subjects.md_trade("binance", "BTCUSDT")
    async with service(run, settings_for(nats_url, bots), running):
        subject, first = seen.got[0]
        assert subject == subjects.bot_status("alice", BOT)
        assert first.status.bot == BOT and first.status.host == "test-host"
        assert first.ts_event > 0
        assert first.status.price_ts is None  # no tick yet

        # the first trade places 4 buys: shown at once
        await nc.publish(md, encode(trade("60000", 1)))
        await eventually(lambda: latest(lambda s: s.orders_placed == 4), what="4 orders shown")
        assert seen.last().status.phase == "buying"  # type: ignore[union-attr]
        assert seen.last().status.open_orders == 4  # type: ignore[union-attr]
        # the price's time is the tick's market time, not the host's clock
        assert seen.last().status.price_ts == 1  # type: ignore[union-attr]

        await command(nc, "pause")
        await eventually(lambda: latest(lambda s: s.state == "paused"), what="paused shown")
        await command(nc, "resume")
        await eventually(lambda: latest(lambda s: s.state == "running"), what="resumed shown")

        # execution accepts and fills the first buy
        buy = next(i for i in recorder.intents() if isinstance(i, PlaceOrder))
        assert buy.price is not None
        evt = subjects.exec_evt("alice", BOT)
        alice, account = UserId("alice"), AccountId("alice-paper")
        accepted = OrderAccepted(
            intent_id=buy.intent_id, user=alice, source=BOT, account=account,
            symbol="BTCUSDT", side="buy", order_type="limit", price=buy.price, qty=buy.qty,
            client_order_id="c1", venue_order_id="v1", ts_event=2,
        )  # fmt: skip
        filled = OrderFilled(
            intent_id=buy.intent_id, user=alice, source=BOT, account=account,
            symbol="BTCUSDT", side="buy", trade_id="t1", price=buy.price, qty=buy.qty,
            fee=Decimal(0), fee_asset="USDT", liquidity="maker", cum_qty=buy.qty,
            leaves_qty=Decimal(0), ts_event=3,
        )  # fmt: skip
        await publish_event(js, evt, accepted, "e1")
        await publish_event(js, evt, filled, "e2")
        await eventually(lambda: latest(lambda s: s.orders_filled == 1), what="the fill shown")
        status = seen.last().status  # type: ignore[union-attr]
        assert status.position == buy.qty and status.avg_price == buy.price
        assert status.open_orders == 3

        # in order: started, 4 placed, paused, running again, filled; nothing out of order
        states = seen.states()
        marks = [
            states.index(("running", "buying", 4, 0)),
            next(i for i, s in enumerate(states) if s[0] == "paused"),
            next(i for i, s in enumerate(states) if s[0] == "paused") + 1,
            next(i for i, s in enumerate(states) if s[3] == 1),
        ]
        assert marks == sorted(marks) and states[marks[2]][0] == "running", states
        placed = [s[2] for s in states]
        assert placed == sorted(placed)

        # only the price moves (between the buys and the take-profit): at most ~1 a second
        before = len(seen.got)
        started = time.monotonic()
        price = 60010
        while time.monotonic() - started < 2.5:
            price += 1
            await nc.publish(md, encode(trade(str(price), 10 + price)))
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.2)
        price_only = seen.got[before:]
        assert price_only, "the price moved: it must be shown"
        assert len(price_only) <= 4, [m.status.last_price for _, m in price_only]
        assert all(m.status.orders_filled == 1 for _, m in price_only)
        assert price_only[-1][1].status.last_price == price  # the last price gets out
        assert price_only[-1][1].status.price_ts == 10 + price
        times = [m.ts_event for _, m in price_only]
        gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(times)]
        assert all(gap > 0.9 for gap in gaps), gaps
    # the host stopped (the last replica): the bot's last status says so
    await eventually(lambda: latest(lambda s: s.state == "stopped"), what="the final status")
    await nc.close()


class EveryTick(LadderBot):
    """A ladder core the host cannot park: it is called on every tick."""

    def wake(self) -> Wake | None:
        return None


def ladder_host(
    n: int, publish: Publish | None = None, every_tick: bool = False
) -> tuple[Dispatcher, StatusEvents | None]:
    """A dispatcher with ``n`` ladder bots on BTCUSDT (intents captured, no bus), and its
    status events publishing with ``publish`` (if given); ``every_tick``: bots that are
    never parked (each tick calls all of them)."""
    kind = EveryTick if every_tick else LadderBot
    dispatcher = Dispatcher(Capture(), HostMetrics(CollectorRegistry()), host="bench")
    events = StatusEvents(publish, dispatcher) if publish is not None else None
    for i in range(n):
        params = LadderParams(total_quote=Decimal(1000), order_count=4,
                              max_drop_pct=Decimal(1) + Decimal(i % 7) / 10,
                              take_profit_pct=Decimal("0.5"))  # fmt: skip
        core = kind(bot_context(f"b{i:04}", f"u{i % 50}", f"a{i}", "ladder", BTC), params)
        spec = BotSpec(id=BotId(f"b{i:04}"), user=UserId(f"u{i % 50}"),
                       account=AccountId(f"a{i}"), strategy="ladder", venue="binance",
                       symbol="BTCUSDT")  # fmt: skip
        dispatcher.add(BotRunner(core, spec))
    return dispatcher, events


def run_ticks(dispatcher: Dispatcher, ticks: int) -> float:
    """Seconds to hand ``ticks`` trades (a walk around 60,000) to the dispatcher."""
    started = time.perf_counter()
    for k in range(ticks):
        dispatcher.on_tick(trade(str(60000 + (k * 37) % 400 - 200), 1_000_000 + k))
    return time.perf_counter() - started


async def test_the_tick_path_cost_with_1000_bots(nc: NATS) -> None:
    # every bot called on every tick: the dispatcher's added work is one phase comparison each
    ticks = 100
    hosts = [ladder_host(1000, publish, every_tick=True) for publish in (None, nc.publish)]
    for host, events in hosts:
        run_ticks(host, 20)
        if events is not None:
            await events.flush()  # as the host's loop does: each bot's phase now shown
    costs = [min(run_ticks(host, ticks) for _ in range(3)) / ticks * 1e6 for host, _ in hosts]
    print(
        f"\n1,000 ladder bots called on every tick: {costs[0]:.0f} µs/tick without status"
        f" events, {costs[1]:.0f} µs/tick with (overhead {costs[1] - costs[0]:+.0f} µs/tick)"
    )

    # parked bots (the wake index, as the host runs ladders): then the price rounds
    ticks = 2000
    plain, _ = ladder_host(1000)
    run_ticks(plain, 200)  # warm up: the first buys
    plain_s = run_ticks(plain, ticks)

    published: list[str] = []

    async def publish(subject: str, payload: bytes) -> None:
        published.append(subject)
        await nc.publish(subject, payload)

    watched, events = ladder_host(1000, publish)
    assert events is not None
    assert await events.flush() == 1000  # each bot's start
    run_ticks(watched, 200)
    await events.flush()
    watched_s = run_ticks(watched, ticks)
    t = time.perf_counter()
    flushed = await events.flush()
    flush_s = time.perf_counter() - t
    await asyncio.sleep(events._interval)  # the price throttle
    t = time.perf_counter()
    priced = await events.refresh_prices()
    round_s = time.perf_counter() - t

    per_tick_us = (watched_s - plain_s) / ticks * 1e6
    print(
        f"1,000 parked ladder bots, {ticks} ticks: {plain_s / ticks * 1e6:.1f} µs/tick"
        f" without status events, {watched_s / ticks * 1e6:.1f} µs/tick with"
        f" (overhead {per_tick_us:+.1f} µs/tick); flush after them: {flushed} published"
        f" in {flush_s * 1e3:.1f} ms;"
        f" price round: {priced} published in {round_s * 1e3:.1f} ms"
    )
    assert len(set(published)) == 1000  # every bot was shown
    assert 0 < priced <= 1000  # prices moved for bots holding none of their key changes
