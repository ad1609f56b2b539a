"""STRATEGIES.md, paper fill model: market time is the receive time (``ts_recv``).

Each time rule of the cores (the volume interval §4, the martingale cooldown §2,
the ladder's no-fill restart §1) is driven by ticks whose exchange time
(``ts_event``) says the opposite of their receive time: the cores follow
``ts_recv`` only.
"""

from __future__ import annotations

from decimal import Decimal as D

import msgspec

from tests.support import ticks
from tests.support.markets import SOLUSDC as UNIT
from tests.support.markets import bot_context
from tests.support.orders import OrderEvents, places
from tradebus.common.messages import AccountBalances, AssetBalance, PlaceOrder, TradeTick
from tradebus.strategies.ladder.bot import LadderBot
from tradebus.strategies.ladder.params import LadderParams
from tradebus.strategies.martingale.bot import MartingaleBot
from tradebus.strategies.martingale.params import MartingaleParams
from tradebus.strategies.volume.bot import VolumeBot
from tradebus.strategies.volume.params import VolumeParams

SEC = 1_000_000_000
FAR = 10**6 * SEC  # an exchange time far from the receive time


def tick(price: str, recv: int, event: int) -> TradeTick:
    """A trade received at ``recv`` whose exchange stamped it ``event`` (ns)."""
    return msgspec.structs.replace(
        ticks.trade(price, recv, symbol=UNIT.symbol), ts_event=event, ts_init=recv
    )


def test_volume_intervals_follow_the_receive_time() -> None:
    ctx = bot_context("v", "alice", "alice-paper", "volume", UNIT, group="g")
    bot = VolumeBot(
        ctx,
        VolumeParams(
            single_trade_quote=D(100),
            trade_interval_seconds=D(5),
            buy_offset_pct=D(0),
            sell_profit_pct=D(1),
            target_volume=D(10_000),
        ),
    )
    ev = OrderEvents(ctx)
    (buy,) = bot.on_trade(tick("100", SEC, SEC))
    bot.on_order_event(ev.accepted(buy))
    (sell,) = bot.on_order_event(ev.filled(buy, "100"))
    bot.on_order_event(ev.accepted(sell))
    assert bot.on_trade(tick("100", 6 * SEC - 1, FAR)) == []  # exchange time says it is due
    assert places(bot.on_trade(tick("100", 6 * SEC, 0)))  # receive time: due now


def test_martingale_cooldown_follows_the_receive_time() -> None:
    ctx = bot_context("m", "alice", "alice-paper", "martingale", UNIT)
    params = MartingaleParams(
        base_quote=D(100),
        safety_quote=D(50),
        max_safety_orders=1,
        price_deviation_pct=D(2),
        take_profit_pct=D(1),
        cooldown_seconds=D(60),
    )
    bot = MartingaleBot(ctx, params)
    ev = OrderEvents(ctx)
    usdc = AssetBalance(asset="USDC", total=D(1000), free=D(1000), locked=D(0))
    bot.on_balances(
        AccountBalances(account=ctx.account, venue="binance", balances=[usdc], ledger_watermark=0)
    )
    (base,) = places(bot.on_trade(tick("100", SEC, SEC)))
    bot.on_order_event(ev.accepted(base))
    (tp,) = places(bot.on_order_event(ev.filled(base, "100")))
    bot.on_order_event(ev.accepted(tp))
    (safety,) = places(bot.on_trade(tick("100", 2 * SEC, 2 * SEC)))
    bot.on_order_event(ev.accepted(safety))
    bot.on_order_event(ev.filled(tp, "101"))
    bot.on_order_event(ev.canceled(safety))
    assert bot.on_trade(tick("101", 10 * SEC, 10 * SEC)) == []  # the cycle ended at 10 s
    assert bot.on_trade(tick("101", 70 * SEC - 1, FAR)) == []  # exchange time: long cooled
    out = places(bot.on_trade(tick("101", 70 * SEC, 0)))  # receive time: 60 s after the end
    assert [p.intent_id for p in out] == ["m:1.2:b"]


def test_ladder_no_fill_restart_follows_the_receive_time() -> None:
    ctx = bot_context("l", "alice", "alice-paper", "ladder", UNIT)
    params = LadderParams(
        total_quote=D(1000),
        order_count=5,
        max_drop_pct=D(10),
        take_profit_pct=D(2),
        no_fill_restart_minutes=D(1),
    )
    bot = LadderBot(ctx, params)
    buys = places(bot.on_trade(tick("100", SEC, SEC)))
    assert len(buys) == 5 and all(isinstance(b, PlaceOrder) for b in buys)
    assert bot.on_trade(tick("100.5", 61 * SEC - 1, FAR)) == []  # exchange time: overdue
    out = bot.on_trade(tick("100.5", 61 * SEC, 0))  # receive time: one minute of no fill
    assert len(out) == 5 and bot.status().phase == "restarting"
