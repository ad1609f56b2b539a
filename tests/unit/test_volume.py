"""The volume strategy against hand-computed cases of shared/STRATEGIES.md §4 (seed 004).

Arithmetic (worked out by hand): the buy is ``floor_tick(p * (1 + offset/100))``
for ``floor_step(single_trade_quote / price)``; when it is done at average
price ``F`` the sell is ``floor_tick(F * (1 + profit/100))`` for the filled
quantity. With ``p = 100``, offset 0.5 %, 100 quote: buy 0.995 at 100.50
(100 / 100.5 = 0.99502). Filled at 100.20, the sell is 0.995 at 101.20
(100.2 * 1.01 = 101.202). Then interval timing in market time, the
``max_open_sells`` and open-buy skips, the group target, partial fills, exit,
snapshot/restore and resend.
"""

from __future__ import annotations

from decimal import Decimal as D
from functools import partial
from typing import Any

import msgspec

from tests.support import ticks
from tests.support.markets import SOLUSDC as UNIT
from tests.support.markets import bot_context
from tests.support.orders import OrderEvents
from tradebus.common.ids import IntentId
from tradebus.common.messages import CancelOrder, Intent, PlaceOrder
from tradebus.strategies.volume.bot import NO_OTO_OFFER, OTO_EMULATION, VolumeBot
from tradebus.strategies.volume.params import VolumeParams

SEC = 1_000_000_000
T0 = 1_000
CTX = bot_context("alice-volume", "alice", "alice-paper", "volume", UNIT, group="sol-volume")


def params(**kw: Any) -> VolumeParams:
    base: dict[str, Any] = {
        "single_trade_quote": D(100),
        "trade_interval_seconds": D(5),
        "buy_offset_pct": D("0.5"),
        "sell_profit_pct": D(1),
        "target_volume": D(10_000),
        "max_open_sells": 2,
    }
    base.update(kw)
    return VolumeParams(**base)


trade = partial(ticks.trade, symbol=UNIT.symbol)
quote = partial(ticks.quote, symbol=UNIT.symbol)
EV = OrderEvents(CTX)
accepted, filled, canceled, rejected = EV.accepted, EV.filled, EV.canceled, EV.rejected


def start(**kw: object) -> tuple[VolumeBot, PlaceOrder]:
    """A bot after its first trade at 100: one buy, accepted."""
    bot = VolumeBot(CTX, params(**kw))
    (buy,) = bot.on_trade(trade("100", T0))
    bot.on_order_event(accepted(buy))
    assert isinstance(buy, PlaceOrder)
    return bot, buy


def one_loop(bot: VolumeBot, buy: Intent, fill_price: str = "100.2") -> PlaceOrder:
    """Fill ``buy`` in full; return its sell, accepted."""
    (sell,) = bot.on_order_event(filled(buy, fill_price))
    bot.on_order_event(accepted(sell))
    assert isinstance(sell, PlaceOrder)
    return sell


def places(intents: list[Intent]) -> list[tuple[str, str, str, str]]:
    return [
        (i.intent_id, i.side, str(i.price), str(i.qty))
        for i in intents
        if isinstance(i, PlaceOrder)
    ]


def cancels(intents: list[Intent]) -> list[str]:
    return [i.target_intent_id for i in intents if isinstance(i, CancelOrder)]


# ------------------------------------------------------------------ parameters
def test_parameter_problems_name_the_field() -> None:
    bad = params(
        single_trade_quote=D(0),
        trade_interval_seconds=D(0),
        buy_offset_pct=D(-1),
        sell_profit_pct=D(0),
        target_volume=D("NaN"),
        max_open_sells=0,
        min_order_quote=D(-1),
    )
    assert dict(bad.problems()) == {
        "single_trade_quote": "must be > 0",
        "trade_interval_seconds": "must be > 0",
        "buy_offset_pct": "must be >= 0",
        "sell_profit_pct": "must be > 0",
        "target_volume": "must be > 0",
        "max_open_sells": "must be >= 1",
        "min_order_quote": "must be >= 0",
    }
    assert params().problems() == []
    assert params(single_trade_quote=D(5)).problems() == [
        ("single_trade_quote", "must be >= min_order_quote (10)")
    ]


# ------------------------------------------------------------------ the loop
def test_first_event_places_the_buy_with_a_deterministic_id() -> None:
    bot = VolumeBot(CTX, params())
    out = bot.on_trade(trade("100", T0))
    assert places(out) == [("alice-volume:1.1:b", "buy", "100.50", "0.995")]
    buy = out[0]
    assert isinstance(buy, PlaceOrder)
    assert (buy.account, buy.trigger_ts, buy.ts_init, buy.clamp_to_free) == (
        "alice-paper",
        T0,
        T0,
        False,
    )
    assert bot.status().phase == "trading"


def test_quote_mid_is_the_reference_until_the_first_trade() -> None:
    bot = VolumeBot(CTX, params())
    # mid 99.50: 99.5 * 1.005 = 99.9975 -> 99.99; 100 / 99.99 = 1.0001 -> 1.000
    assert places(bot.on_quote(quote("99.40", "99.60", T0))) == [
        ("alice-volume:1.1:b", "buy", "99.99", "1.000")
    ]


def test_buy_fill_places_the_sell_of_the_filled_quantity() -> None:
    bot, buy = start()
    out = bot.on_order_event(filled(buy, "100.2", fee="0.05"))
    assert places(out) == [("alice-volume:1.1:s", "sell", "101.20", "0.995")]
    sell = out[0]
    assert isinstance(sell, PlaceOrder) and sell.clamp_to_free and sell.trigger_ts == T0
    s = bot.status()
    assert bot.own_volume() == D("99.699")  # 0.995 * 100.2
    assert (s.position, s.avg_price, s.filled_quote) == (D("0.995"), D("100.2"), D("99.699"))
    assert s.details["open_sells"] == 1


def test_sell_fill_completes_the_loop_with_realized_pnl() -> None:
    bot, buy = start()
    sell = one_loop(bot, buy)
    bot.on_order_event(filled(buy, "100.2"))  # a repeated event of a done order: ignored
    assert bot.on_order_event(filled(sell, "101.2", fee="0.1")) == []
    s = bot.status()
    # proceeds 0.995 * 101.2 = 100.694; cost 99.699; fee 0.1
    assert (s.cycles_completed, s.position, s.realized_pnl) == (1, D(0), D("0.895"))
    assert s.details["open_sells"] == 0


def test_overlapping_loops_realize_each_sell_against_its_own_buy() -> None:
    """STRATEGIES.md §4 and rule 6: a loop's P&L is its sell's proceeds - its buy's cost -
    both fees, whatever other loops are open (not the average cost of all of them)."""
    bot, b1 = start(max_open_sells=10)
    s1 = one_loop(bot, b1)  # 0.995 bought at 100.2 (no fee), sell at 101.20
    (b2,) = bot.on_trade(trade("110", T0 + 5 * SEC))
    # 110 * 1.005 = 110.55; 100 / 110.55 = 0.9045 -> 0.904
    assert places([b2]) == [("alice-volume:1.2:b", "buy", "110.55", "0.904")]
    bot.on_order_event(accepted(b2))
    (s2,) = bot.on_order_event(filled(b2, "110.55", fee="0.05"))
    assert places([s2]) == [("alice-volume:1.2:s", "sell", "111.65", "0.904")]
    bot.on_order_event(accepted(s2))
    held = bot.status()
    assert (held.position, held.filled_quote) == (D("1.899"), D("199.6362"))
    # loop 1 sells while loop 2 (bought higher) is open:
    # 0.995 * 101.2 - 0.995 * 100.2 - 0 - 0.1 = 0.895 (average cost gave -4.0335771458...)
    bot.on_order_event(filled(s1, "101.2", fee="0.1"))
    s = bot.status()
    assert (s.realized_pnl, s.position, s.avg_price) == (D("0.895"), D("0.904"), D("110.55"))
    assert (
        s.unrealized_pnl
        == bot.status().unrealized_pnl
        == D("0.904") * (110 - D("110.55")) - D("0.05")
    )
    # loop 2: 0.904 * 111.65 - 0.904 * 110.55 - 0.05 - 0.1 = 0.8444
    bot.on_order_event(filled(s2, "111.65", fee="0.1"))
    s = bot.status()
    assert (s.realized_pnl, s.position, s.cycles_completed) == (D("1.7394"), D(0), 2)
    assert str(s.realized_pnl) == "1.73940"  # exact: no division left a tail


def test_intervals_run_on_market_time_anchored_at_the_first_event() -> None:
    bot, b1 = start(max_open_sells=10)
    one_loop(bot, b1)
    assert bot.on_trade(trade("100", T0 + 5 * SEC - 1)) == []
    assert bot.on_quote(quote("99", "101", T0 + 5 * SEC - 1)) == []
    (b2,) = bot.on_quote(quote("99", "101", T0 + 5 * SEC))  # a quote moves time too
    assert places([b2])[0][:3] == ("alice-volume:1.2:b", "buy", "100.50")  # p: last trade
    one_loop(bot, b2)
    # a gap in the data: one interval at the first event after it, no catching up
    (b3,) = bot.on_trade(trade("100", T0 + 17 * SEC))
    assert b3.intent_id == "alice-volume:1.3:b"
    one_loop(bot, b3)
    assert bot.on_trade(trade("100", T0 + 19 * SEC)) == []  # the grid: next at T0 + 20 s
    assert places(bot.on_trade(trade("100", T0 + 20 * SEC)))[0][0] == "alice-volume:1.4:b"


def test_fractional_interval_seconds() -> None:
    bot, b1 = start(trade_interval_seconds=D("0.25"), max_open_sells=10)
    one_loop(bot, b1)
    assert bot.on_trade(trade("100", T0 + SEC // 4 - 1)) == []
    assert len(bot.on_trade(trade("100", T0 + SEC // 4))) == 1


def test_no_buy_while_the_previous_buy_is_open() -> None:
    bot, b1 = start()
    assert bot.on_trade(trade("99", T0 + 5 * SEC)) == []  # interval used up, buy still open
    one_loop(bot, b1)
    assert bot.on_trade(trade("99", T0 + 9 * SEC)) == []  # the next interval is T0 + 10 s
    assert places(bot.on_trade(trade("99", T0 + 10 * SEC)))[0][0] == "alice-volume:1.2:b"


def test_no_buy_while_max_open_sells_wait() -> None:
    bot, b1 = start(max_open_sells=2)
    s1 = one_loop(bot, b1)
    (b2,) = bot.on_trade(trade("100", T0 + 5 * SEC))
    one_loop(bot, b2)
    assert bot.status().details["open_sells"] == 2
    assert bot.on_trade(trade("100", T0 + 10 * SEC)) == []  # skipped: 2 sells wait
    bot.on_order_event(filled(s1, "101.2"))
    assert bot.on_trade(trade("100", T0 + 12 * SEC)) == []  # not an interval
    assert places(bot.on_trade(trade("100", T0 + 15 * SEC))) == [
        ("alice-volume:1.3:b", "buy", "100.50", "0.995")
    ]


def test_a_buy_below_the_minimum_is_skipped_with_a_reason() -> None:
    bot = VolumeBot(CTX, params(single_trade_quote=D(10)))
    # 100 * 1.005 = 100.50; 10 / 100.5 = 0.0995 -> 0.099; 0.099 * 100.50 = 9.9495 < 10
    assert bot.on_trade(trade("100", T0)) == []
    assert "min_order_quote=10" in (bot.status().error or "")
    # 99.51 * 1.005 = 100.00755 -> 100.00; 10 / 100 = 0.100: exactly 10
    assert places(bot.on_trade(trade("99.51", T0 + 5 * SEC))) == [
        ("alice-volume:1.1:b", "buy", "100.00", "0.100")
    ]
    assert bot.status().error is None


# ------------------------------------------------------------------ partial fills
def test_partial_fills_sell_once_at_the_average_when_the_buy_completes() -> None:
    bot, buy = start()
    assert bot.on_order_event(filled(buy, "100.2", qty=D("0.4"))) == []
    assert bot.on_trade(trade("100", T0 + 5 * SEC)) == []  # the buy is still open
    out = bot.on_order_event(filled(buy, "100.4", qty=D("0.595"), cum=D("0.995")))
    # F = (0.4*100.2 + 0.595*100.4) / 0.995 = 99.818 / 0.995 = 100.31960; * 1.01 = 101.3228
    assert places(out) == [("alice-volume:1.1:s", "sell", "101.32", "0.995")]
    assert bot.own_volume() == D("99.818")


def test_a_buy_cancelled_after_a_partial_fill_sells_what_filled() -> None:
    bot, buy = start(target_volume=D(1000))
    bot.on_order_event(filled(buy, "100.2", qty=D("0.4")))
    out = bot.on_group_volume(D(1000), {"bob": D("959.92"), "alice": D("40.08")})
    assert cancels(out) == ["alice-volume:1.1:b"]
    out = bot.on_order_event(canceled(buy, D("0.4")))
    assert places(out) == [("alice-volume:1.1:s", "sell", "101.20", "0.400")]


def test_an_unfilled_cancelled_buy_leaves_nothing_to_sell() -> None:
    bot, buy = start()
    bot.on_stop()
    assert bot.on_order_event(canceled(buy)) == []
    assert bot.state.loops == [] and bot.status().details["open_sells"] == 0


# ------------------------------------------------------------------ group target
def test_target_reached_by_own_fills_stops_the_buys_and_keeps_the_sells() -> None:
    bot, b1 = start(target_volume=D(150))
    one_loop(bot, b1)  # 99.699
    (b2,) = bot.on_trade(trade("100", T0 + 5 * SEC))
    out = bot.on_order_event(filled(b2, "100.5"))  # + 99.9975 = 199.6965 >= 150
    assert places(out) == [("alice-volume:1.2:s", "sell", "101.50", "0.995")]
    s = bot.status()
    assert s.phase == "target_reached"
    assert s.details["group_volume"] == "199.6965" and s.details["progress_pct"] == "133.13"
    assert bot.on_trade(trade("100", T0 + 10 * SEC)) == []  # no more buys
    assert len(bot.state.orders.open_orders("sell")) == 2  # the sells rest


def test_own_fill_reaching_the_target_cancels_the_rest_of_the_buy() -> None:
    bot, buy = start(target_volume=D(50))
    out = bot.on_order_event(filled(buy, "100", qty=D("0.5")))  # 50 >= 50
    assert cancels(out) == ["alice-volume:1.1:b"]
    assert places(bot.on_order_event(canceled(buy, D("0.5")))) == [
        ("alice-volume:1.1:s", "sell", "101.00", "0.500")
    ]


def test_group_report_stops_the_bot_and_cancels_its_open_buy() -> None:
    bot, buy = start(target_volume=D(1000))
    assert bot.on_group_volume(D(999), {"bob": D(999)}) == []
    assert bot.status().phase == "trading"
    out = bot.on_group_volume(D(1000), {"bob": D(1000)})
    assert [type(i) for i in out] == [CancelOrder] and cancels(out) == [buy.intent_id]
    assert bot.status().phase == "target_reached"
    assert bot.on_group_volume(D(2000), {}) == []  # the cancel is sent once
    assert bot.on_trade(trade("100", T0 + 5 * SEC)) == []


def test_a_stale_report_never_lowers_the_known_volume() -> None:
    bot, buy = start(target_volume=D(1000))
    one_loop(bot, buy)  # own 99.699
    bot.on_group_volume(D(500), {"bob": D(400), "alice": D(100)})
    bot.on_group_volume(D(300), {"bob": D(200)})
    d = bot.status().details
    assert (d["group_volume"], d["user_volume.bob"], d["user_volume.alice"]) == (
        "500",
        "400",
        "100",
    )


def test_before_any_report_the_group_volume_is_the_own_volume() -> None:
    bot, buy = start(target_volume=D(1000))
    one_loop(bot, buy)
    d = bot.status().details
    assert d["group_volume"] == d["own_volume"] == d["user_volume.alice"] == "99.6990"
    assert d["progress_pct"] == "9.96"


def test_target_known_before_the_first_event_places_nothing() -> None:
    bot = VolumeBot(CTX, params(target_volume=D(100)))
    assert bot.on_group_volume(D(100), {"bob": D(100)}) == []
    assert bot.on_trade(trade("100", T0)) == []
    assert bot.status().phase == "target_reached"


def test_a_raised_target_on_a_restored_state_resumes_buying() -> None:
    bot, buy = start(target_volume=D(50))
    one_loop(bot, buy)  # 99.699 >= 50
    assert bot.status().phase == "target_reached"
    raised = VolumeBot(CTX, params(target_volume=D(1000)))
    raised.restore(bot.snapshot())
    assert places(raised.on_trade(trade("100", T0 + 5 * SEC)))[0][0] == "alice-volume:1.2:b"
    assert raised.status().phase == "trading"


# ------------------------------------------------------------------ sells
def test_a_sell_cancelled_by_someone_else_is_placed_again_at_the_next_interval() -> None:
    bot, buy = start()
    sell = one_loop(bot, buy)
    bot.on_order_event(filled(sell, "101.2", qty=D("0.3")))
    assert bot.on_order_event(canceled(sell, D("0.3"))) == []
    assert places(bot.on_trade(trade("100", T0 + 5 * SEC))) == [
        ("alice-volume:1.1:s2", "sell", "101.20", "0.695"),
        ("alice-volume:1.2:b", "buy", "100.50", "0.995"),
    ]


def test_a_clamped_sell_writes_the_difference_off() -> None:
    bot, buy = start()
    (sell,) = bot.on_order_event(filled(buy, "100.2"))
    bot.on_order_event(accepted(sell, qty=D("0.9")))  # the user sold 0.095 by hand
    assert bot.status().position == D("0.9")
    bot.on_order_event(filled(sell, "101.2", qty=D("0.9")))
    s = bot.status()
    assert (s.position, s.cycles_completed, s.details["open_sells"]) == (D(0), 1, 0)


def test_a_sell_with_nothing_left_to_sell_closes_the_loop() -> None:
    bot, buy = start()
    (sell,) = bot.on_order_event(filled(buy, "100.2"))
    assert bot.on_order_event(rejected(sell, "insufficient_balance")) == []
    s = bot.status()
    assert (s.position, s.cycles_completed, s.details["open_sells"]) == (D(0), 0, 0)


def test_a_rejected_sell_keeps_its_slot_until_a_restart() -> None:
    bot, buy = start(max_open_sells=1)
    (sell,) = bot.on_order_event(filled(buy, "100.2"))
    bot.on_order_event(rejected(sell, "risk_max_notional"))
    s = bot.status()
    assert "risk_max_notional" in (s.error or "") and s.details["open_sells"] == 1
    assert bot.on_trade(trade("100", T0 + 5 * SEC)) == []  # no sell again, no buy
    bot.on_stop()
    bot.on_restart()
    assert places(bot.on_trade(trade("100", T0 + 10 * SEC))) == [
        ("alice-volume:1.1:s2", "sell", "101.20", "0.995")
    ]


# ------------------------------------------------------------------ exit
def test_stop_cancels_everything_and_a_restart_sells_and_buys_again() -> None:
    bot, b1 = start()
    s1 = one_loop(bot, b1)
    (b2,) = bot.on_trade(trade("100", T0 + 5 * SEC))
    bot.on_order_event(filled(b2, "100", qty=D("0.5")))
    out = bot.on_stop()
    assert cancels(out) == [s1.intent_id, b2.intent_id]
    assert bot.status().phase == "stopped"
    assert bot.on_order_event(canceled(s1)) == []
    assert bot.on_order_event(canceled(b2, D("0.5"))) == []  # no sell while stopped
    assert bot.on_trade(trade("100", T0 + 10 * SEC)) == []
    assert bot.on_restart() == []
    assert bot.status().phase == "trading"
    assert places(bot.on_trade(trade("100", T0 + 11 * SEC))) == [
        ("alice-volume:1.1:s2", "sell", "101.20", "0.995"),
        ("alice-volume:1.2:s", "sell", "101.00", "0.500"),
    ]  # two sells wait (max_open_sells 2): no buy
    assert bot.on_trade(trade("100", T0 + 12 * SEC)) == []


def test_stop_without_cancel_on_exit_keeps_the_orders_working() -> None:
    bot, buy = start(cancel_on_exit=False)
    assert bot.on_stop() == []
    assert places(bot.on_order_event(filled(buy, "100.2"))) == [
        ("alice-volume:1.1:s", "sell", "101.20", "0.995")
    ]
    assert bot.on_trade(trade("100", T0 + 5 * SEC)) == []  # stopped: no buy


# ------------------------------------------------------------------ state
def test_snapshot_restore_mid_loop_gives_the_same_future() -> None:
    bot, b1 = start()
    one_loop(bot, b1)
    (b2,) = bot.on_trade(trade("100", T0 + 5 * SEC))
    bot.on_order_event(filled(b2, "100", qty=D("0.5")))
    bot.on_group_volume(D(300), {"bob": D(200)})
    copy = VolumeBot(CTX, params())
    copy.restore(bot.snapshot())
    assert copy.status() == bot.status()
    s1 = _place(bot, "alice-volume:1.1:s")
    steps = [
        lambda b: b.on_order_event(filled(b2, "100.1", qty=D("0.495"), cum=D("0.995"))),
        lambda b: b.on_trade(trade("101.5", T0 + 7 * SEC)),
        lambda b: b.on_order_event(filled(s1, "101.2")),
        lambda b: b.on_trade(trade("101", T0 + 10 * SEC)),
        lambda b: b.on_group_volume(D(10_000), {"bob": D(9_700)}),
        lambda b: b.on_stop(),
    ]
    for step in steps:
        assert step(copy) == step(bot)
    assert copy.status() == bot.status()
    assert copy.snapshot() == bot.snapshot()


def _place(bot: VolumeBot, intent_id: str) -> PlaceOrder:
    """The intent of one of the bot's orders, rebuilt from its tracker."""
    iid = IntentId(intent_id)
    o = bot.state.orders.orders[iid]
    return PlaceOrder(
        intent_id=iid,
        account=CTX.account,
        symbol=UNIT.symbol,
        side=o.side,
        qty=o.qty,
        price=o.price,
    )


def test_resend_repeats_unanswered_places_and_cancels() -> None:
    bot = VolumeBot(CTX, params())
    (buy,) = bot.on_trade(trade("100", T0))
    assert bot.resend() == [buy]  # no answer yet
    bot.on_order_event(accepted(buy))
    assert bot.resend() == []
    (cancel,) = bot.on_stop()
    copy = VolumeBot(CTX, params())
    copy.restore(bot.snapshot())
    assert copy.resend() == [cancel]  # the cancel is still unanswered
    copy.on_order_event(canceled(buy))
    assert copy.resend() == []


def test_status_block() -> None:
    bot, buy = start(target_volume=D(1000))
    one_loop(bot, buy)
    bot.on_group_volume(D("399.699"), {"bob": D(300), "alice": D("99.699")})
    bot.on_trade(trade("101", T0 + 1))
    s = bot.status()
    assert (s.bot, s.strategy, s.phase, s.run, s.cycle) == (
        "alice-volume",
        "volume",
        "trading",
        1,
        1,
    )
    assert (s.orders_placed, s.orders_filled, s.open_orders) == (2, 1, 1)
    assert (s.position, s.avg_price, s.last_price) == (D("0.995"), D("100.2"), D(101))
    assert s.unrealized_pnl == D("0.995") * (D(101) - D("100.2"))
    assert s.details == {
        "group": "sol-volume",
        "strategy_name": "sol-volume",  # the group's name by default
        "target_volume": "1000",
        "group_volume": "399.699",
        "progress_pct": "39.96",
        "own_volume": "99.6990",
        "open_sells": 1,
        "oto": "emulated",
        "oto_why": f"{NO_OTO_OFFER}; {OTO_EMULATION}",
        "user_volume.alice": "99.699",
        "user_volume.bob": "300",
    }


def test_a_snapshot_from_before_loops_were_booked_apart_loads() -> None:
    """An older snapshot holds one average-cost ``position`` and no ``book``: it loads,
    each open loop keeps its own cost, and the next sell realizes against it."""
    bot, b1 = start(max_open_sells=10)
    s1 = one_loop(bot, b1)
    (b2,) = bot.on_trade(trade("110", T0 + 5 * SEC))
    bot.on_order_event(accepted(b2))
    bot.on_order_event(filled(b2, "110.55", fee="0.05"))
    state = msgspec.json.decode(bot.snapshot())
    del state["book"]
    state["position"] = {"qty": "1.899", "open_cost": "199.6362", "open_fees": "0.05"}
    old = VolumeBot(CTX, params(max_open_sells=10))
    old.restore(msgspec.json.encode(state))
    assert (old.status().position, old.status().avg_price) == (
        D("1.899"),
        D("199.6362") / D("1.899"),
    )
    old.on_order_event(filled(s1, "101.2", fee="0.1"))
    s = old.status()
    # loop 1's share of the open fees: 0.05 * 0.995 / 1.899
    assert s.realized_pnl == D("0.995") - D("0.1") - D("0.05") * D("0.995") / D("1.899")
    assert (s.position, s.avg_price) == (D("0.904"), D("110.55"))
    assert old.state.position is None and b'position":null' in old.snapshot()


# ------------------------------------------------- seed 004's group settings
def test_strategy_name_is_shown_and_checked() -> None:
    bot = VolumeBot(CTX, params(strategy_name="KOGE 刷量策略"))
    assert bot.status().details["strategy_name"] == "KOGE 刷量策略"
    assert params(strategy_name="x" * 100).problems() == []
    assert params(strategy_name="a\nb", max_price_volatility_pct=D(-1)).problems() == [
        ("strategy_name", "must be at most 100 printable characters, got 'a\\nb'"),
        ("max_price_volatility_pct", "must be >= 0 (0 = off), got -1"),
    ]
    assert dict(
        params(
            strategy_name="y" * 101, volatility_window_seconds=D(0), max_concurrent_users=-1
        ).problems()
    ).keys() == {"strategy_name", "volatility_window_seconds", "max_concurrent_users"}


def test_buys_pause_while_the_price_moves_more_than_the_limit_within_the_window() -> None:
    """max_price_volatility_pct 2 over 10 s: (high - low) / low * 100 of the reference
    prices of the last 10 s of market time (both ends in), checked at every interval."""
    bot, b1 = start(max_price_volatility_pct=D(2), volatility_window_seconds=D(10))
    one_loop(bot, b1)
    assert bot.status().details["buying_paused"] is None
    assert bot.on_trade(trade("102.5", T0 + 3 * SEC)) == []  # 2.5 % above 100: paused
    # interval 2 (T0 + 5 s): the window [T0 - 5 s, T0 + 5 s] holds 100 and 102.5
    assert bot.on_trade(trade("102", T0 + 5 * SEC)) == []
    reason = bot.status().details["buying_paused"]
    assert reason == (
        "buying paused: the price moved 2.50% (100 to 102.5) within 10 s, "
        "above max_price_volatility_pct=2"
    )
    assert bot.status().phase == "trading" and bot.status().error is None
    # T0 + 10 s: 100 (at T0) is still in the window [T0, T0 + 10 s]: still paused
    assert bot.on_trade(trade("102", T0 + 10 * SEC)) == []
    # T0 + 10 s + 1 ns: 100 has left; 102 to 102.5 is 0.49 %: calm, the next interval buys
    assert bot.on_trade(trade("102", T0 + 10 * SEC + 1)) == []
    assert bot.status().details["buying_paused"] is None
    (b2,) = bot.on_trade(trade("102", T0 + 15 * SEC))
    assert places([b2])[0][:2] == ("alice-volume:1.2:b", "buy")


def test_the_volatility_pause_stops_buys_not_sells_and_survives_a_snapshot() -> None:
    bot, b1 = start(max_price_volatility_pct=D(1), volatility_window_seconds=D(60))
    bot.on_trade(trade("95", T0 + 1))  # 5.26 % within the window
    copy = VolumeBot(CTX, params(max_price_volatility_pct=D(1), volatility_window_seconds=D(60)))
    copy.restore(bot.snapshot())
    for b in (bot, copy):
        (sell,) = b.on_order_event(filled(b1, "100.2"))  # the loop still sells
        assert places([sell])[0][1] == "sell"
        b.on_order_event(accepted(sell))
        assert b.on_trade(trade("96", T0 + 5 * SEC)) == []  # no buy: paused
    assert copy.snapshot() == bot.snapshot()


def test_off_by_default_the_window_is_not_kept() -> None:
    bot, _ = start()
    bot.on_trade(trade("50", T0 + 1))
    assert (bot.state.highs, bot.state.lows, bot.state.pause) == ([], [], None)
    assert "buying_paused" not in bot.status().details


def _turn_bot(user: str) -> VolumeBot:
    ctx = bot_context(f"{user}-volume", user, f"{user}-paper", "volume", UNIT, group="g")
    return VolumeBot(ctx, params(max_concurrent_users=2, max_open_sells=10))


def test_at_most_max_concurrent_users_buy_and_the_rest_wait_their_turn() -> None:
    """Three users, max_concurrent_users 2: the host's report names the users in play and
    who holds a turn; free turns go to waiting users by name; a turn is kept while its bot
    is in play and freed when it stops."""
    bots = {u: _turn_bot(u) for u in ("carol", "alice", "bob")}
    # before any report nobody buys
    for b in bots.values():
        assert b.on_trade(trade("100", T0)) == []
        assert b.group_turn() is False
        assert b.status().details["turn"] == "waiting for a turn: the group not heard yet"

    def report() -> dict[str, bool]:
        view = {u: t for u, b in bots.items() if (t := b.group_turn()) is not None}
        for b in bots.values():
            b.on_group_volume(D(0), {}, view)
        return view

    assert report() == {"carol": False, "alice": False, "bob": False}
    assert {u: b.group_turn() for u, b in bots.items()} == {
        "carol": False,
        "alice": True,
        "bob": True,
    }
    assert report() == {"carol": False, "alice": True, "bob": True}  # the next report
    assert bots["carol"].status().details["turn"] == (
        "waiting for a turn: 2 of 2 users trading (alice, bob)"
    )
    buys = {u: places(b.on_trade(trade("100", T0 + 5 * SEC))) for u, b in bots.items()}
    assert buys["carol"] == [] and buys["alice"] and buys["bob"]
    # a late report that still shows nobody holding changes nothing for holders
    bots["alice"].on_group_volume(D(0), {}, {"alice": False, "bob": False, "carol": False})
    assert bots["alice"].group_turn() is True
    # alice stops: out of play; at the next report carol takes the free turn
    bots["alice"].on_stop()
    assert bots["alice"].group_turn() is None
    assert report() == {"carol": False, "bob": True}
    assert (bots["carol"].group_turn(), bots["carol"].status().details["turn"]) == (
        True,
        "trading",
    )
    assert places(bots["carol"].on_trade(trade("100", T0 + 10 * SEC)))[0][1] == "buy"


def test_a_turn_is_freed_when_the_target_is_reached() -> None:
    bot = _turn_bot("alice")
    bot.on_group_volume(D(0), {}, {})  # alone in the group
    assert bot.on_trade(trade("100", T0)) != [] and bot.group_turn() is True
    bot.on_group_volume(D(10_000), {"bob": D(10_000)})
    assert (bot.status().phase, bot.group_turn()) == ("target_reached", None)
