"""The grid bot's core, driven by ticks and order events alone (no service, no clock).

Each test follows the rules of the package's README.md: the levels, a buy at every
idle level below the price, the sale of each filled buy one level up, round trips,
refusals, stop and restart, and snapshot/restore.
"""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

from tradebus.common.ids import AccountId, BotId, IntentId, UserId
from tradebus.common.markets import Market
from tradebus.common.messages import (
    CancelOrder,
    Intent,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    QuoteTick,
    TradeTick,
)
from tradebus.strategies.core import BotContext
from tradebus_grid import GRID
from tradebus_grid.bot import GridBot
from tradebus_grid.params import GridError, GridParams, buy_qty, level_prices

MARKET = Market(
    symbol="BTCUSDT",
    base="BTC",
    quote="USDT",
    tick_size=D("0.01"),
    step_size=D("0.001"),
    min_notional=D("5"),
)
CTX = BotContext(
    bot=BotId("g"),
    user=UserId("alice"),
    account=AccountId("alice-paper"),
    strategy="grid",
    venue="binance",
    market=MARKET,
)
PARAMS = GridParams(
    lower_price=D("100"), upper_price=D("110"), grid_levels=11, quote_per_level=D("50")
)


def trade(price: str, ts: int) -> TradeTick:
    return TradeTick(
        venue="binance", symbol="BTCUSDT", unified_symbol="BTC/USDT", price=D(price),
        size=D(1), aggressor="sell", trade_id=str(ts), ts_event=ts, ts_recv=ts, ts_init=ts,
    )  # fmt: skip


def quote(bid: str, ask: str, ts: int) -> QuoteTick:
    return QuoteTick(
        venue="binance", symbol="BTCUSDT", unified_symbol="BTC/USDT", bid=D(bid),
        bid_size=D(1), ask=D(ask), ask_size=D(1), ts_event=ts, ts_recv=ts, ts_init=ts,
    )  # fmt: skip


def accepted(order: PlaceOrder) -> OrderAccepted:
    return OrderAccepted(
        intent_id=order.intent_id, user=CTX.user, source=CTX.bot, account=CTX.account,
        symbol="BTCUSDT", side=order.side, order_type="limit", price=order.price,
        qty=order.qty, client_order_id="c", venue_order_id="v", ts_event=1,
    )  # fmt: skip


def filled(
    order: PlaceOrder, qty: D | None = None, fee: str = "0.01", fee_asset: str = "USDT"
) -> OrderFilled:
    q = order.qty if qty is None else qty
    assert order.price is not None
    return OrderFilled(
        intent_id=order.intent_id, user=CTX.user, source=CTX.bot, account=CTX.account,
        symbol="BTCUSDT", side=order.side, trade_id=f"t-{order.intent_id}-{q}",
        price=order.price, qty=q, fee=D(fee), fee_asset=fee_asset, liquidity="maker",
        cum_qty=q, leaves_qty=order.qty - q, ts_event=2,
    )  # fmt: skip


def canceled(order: PlaceOrder, filled_qty: D) -> OrderCanceled:
    return OrderCanceled(
        intent_id=order.intent_id, user=CTX.user, source=CTX.bot, account=CTX.account,
        symbol="BTCUSDT", filled_qty=filled_qty, ts_event=3,
    )  # fmt: skip


def places(intents: list[Intent]) -> list[PlaceOrder]:
    assert all(isinstance(i, PlaceOrder) for i in intents), intents
    return [i for i in intents if isinstance(i, PlaceOrder)]


def new_bot(params: GridParams = PARAMS) -> GridBot:
    return GridBot(CTX, params)


def test_the_parameters_name_each_bad_field() -> None:
    assert PARAMS.problems() == []
    bad = GridParams(
        lower_price=D("100"), upper_price=D("100"), grid_levels=1, quote_per_level=D("-5")
    )
    assert bad.problems() == [
        ("upper_price", "must be above lower_price 100 (got 100)"),
        ("grid_levels", "must be between 2 and 200 (got 1)"),
        ("quote_per_level", "must be > 0 (got -5)"),
    ]
    nan = msgspec.structs.replace(PARAMS, lower_price=D("NaN"))
    assert nan.problems() == [("lower_price", "must be > 0 (got NaN)")]


def test_levels_are_evenly_spaced_and_floored_to_the_tick() -> None:
    assert level_prices(PARAMS, MARKET) == [D(100 + i) for i in range(11)]
    odd = msgspec.structs.replace(PARAMS, upper_price=D("101"), grid_levels=4)  # step 1/3
    assert level_prices(odd, MARKET) == [D("100"), D("100.33"), D("100.66"), D("101")]
    fine = msgspec.structs.replace(PARAMS, upper_price=D("100.05"), grid_levels=11)
    with pytest.raises(GridError, match=r"finer than tick_size 0\.01"):
        level_prices(fine, MARKET)
    assert buy_qty(D("103"), PARAMS, MARKET) == D("0.485")  # floor_step(50 / 103)


def test_the_first_price_places_a_buy_at_every_level_below_it() -> None:
    bot = new_bot()
    assert bot.on_quote(quote("105.4", "105.6", 1)) != []  # the mid sets p before a trade
    assert bot.state.phase == "running"
    buys = places(bot.on_trade(trade("105.5", 2)))
    assert buys == []  # every level below p already has its buy
    bot = new_bot()
    buys = places(bot.on_trade(trade("105.5", 2)))
    assert [(b.side, b.price, b.qty) for b in buys] == [
        ("buy", D(100 + i), buy_qty(D(100 + i), PARAMS, MARKET)) for i in range(6)
    ]
    assert [b.intent_id for b in buys] == [f"g:1.{i + 1}:b{i}" for i in range(6)]
    assert all(b.trigger_ts == 2 and b.ts_init == 2 for b in buys)
    # the price rises above level 6: it buys too; level 10 (the top) never buys
    more = places(bot.on_trade(trade("111", 3)))
    assert [(b.price, b.intent_id) for b in more] == [
        (D(100 + i), f"g:1.{i + 1}:b{i}") for i in range(6, 10)
    ]


def test_a_filled_buy_is_sold_one_level_up_and_a_round_trip_buys_again() -> None:
    bot = new_bot()
    buys = places(bot.on_trade(trade("105.5", 1)))
    b5 = buys[5]  # 105: qty floor_step(50/105) = 0.476
    assert bot.on_order_event(accepted(b5)) == []
    half = D("0.2")
    assert bot.on_order_event(filled(b5, half)) == []  # not done yet: no sell
    (sell,) = places(bot.on_order_event(filled(b5, b5.qty - half)))
    assert (sell.side, sell.price, sell.qty, sell.intent_id) == ("sell", D(106), b5.qty, "g:1.6:s5")
    assert bot.on_trade(trade("105.2", 2)) == []  # level 5 holds: no buy while it sells
    assert bot.on_order_event(filled(sell)) == []
    s = bot.state
    cost, proceeds = b5.qty * 105 + D("0.02"), b5.qty * 106 - D("0.01")
    assert (s.round_trips, s.grid_profit) == (1, proceeds - cost)
    assert s.levels[5].held == 0 and s.position.qty == 0
    assert D(str(bot.status().details["grid_profit"])) == proceeds - cost == D("0.446")
    assert bot.status().cycles_completed == 1
    assert bot.on_trade(trade("105", 3)) == []  # the rule is price_i < p
    (again,) = places(bot.on_trade(trade("105.01", 4)))
    assert (again.price, again.intent_id) == (D(105), "g:1.7:b5")


def test_a_fee_in_the_base_asset_is_not_sold() -> None:
    bot = new_bot()
    b3 = places(bot.on_trade(trade("103.5", 1)))[3]
    (sell,) = places(bot.on_order_event(filled(b3, fee="0.0004", fee_asset="BTC")))
    assert sell.qty == b3.qty - D("0.001")  # floor_step(qty - fee)
    assert bot.state.position.qty == b3.qty - D("0.0004")  # the dust stays in the position


def test_a_partly_filled_buy_canceled_from_outside_sells_what_it_got() -> None:
    bot = new_bot()
    b2 = places(bot.on_trade(trade("102.5", 1)))[2]
    bot.on_order_event(filled(b2, D("0.1")))
    (sell,) = places(bot.on_order_event(canceled(b2, D("0.1"))))
    assert (sell.price, sell.qty) == (D(103), D("0.1"))


def test_a_sale_canceled_from_outside_is_placed_again_in_the_same_round() -> None:
    bot = new_bot()
    b2 = places(bot.on_trade(trade("102.5", 1)))[2]
    (sell,) = places(bot.on_order_event(filled(b2)))
    (again,) = places(bot.on_order_event(canceled(sell, D(0))))
    assert (sell.intent_id, again.intent_id) == ("g:1.3:s2", "g:1.3:s2r2")  # round 3: b2's
    assert (again.price, again.qty) == (D(103), b2.qty)
    assert bot.on_order_event(filled(again)) == [] and bot.state.round_trips == 1


def test_a_refused_order_fails_the_bot() -> None:
    bot = new_bot()
    b0 = places(bot.on_trade(trade("100.5", 1)))[0]
    refused = OrderRejected(
        intent_id=b0.intent_id, user=CTX.user, source=CTX.bot, account=CTX.account,
        reason="insufficient_balance", message="free 1 USDT", ts_event=2,
    )  # fmt: skip
    assert bot.on_order_event(refused) == []
    assert bot.state.phase == "failed"
    assert bot.status().error == "buy b0 at 100.00 rejected: insufficient_balance: free 1 USDT"
    assert bot.on_trade(trade("100.5", 3)) == []


def test_an_order_below_the_market_minimum_fails_the_bot_at_its_first_price() -> None:
    bot = new_bot(msgspec.structs.replace(PARAMS, quote_per_level=D("4")))
    assert bot.on_trade(trade("105", 1)) == []
    assert bot.state.phase == "failed"
    assert bot.state.error is not None and "raise quote_per_level" in bot.state.error


def test_stop_cancels_and_restart_places_the_grid_again() -> None:
    bot = new_bot()
    buys = places(bot.on_trade(trade("102.5", 1)))
    cancels = bot.on_stop()
    assert [c.target_intent_id for c in cancels if isinstance(c, CancelOrder)] == [
        b.intent_id for b in buys
    ]
    for b in buys:
        bot.on_order_event(canceled(b, D(0)))
    assert bot.state.phase == "stopped"
    assert bot.on_restart() == []
    again = places(bot.on_trade(trade("102.5", 3)))
    assert [a.intent_id for a in again] == [IntentId(f"g:1.{i + 4}:b{i}") for i in range(3)]
    kept = new_bot(msgspec.structs.replace(PARAMS, cancel_on_exit=False))
    kept.on_trade(trade("102.5", 1))
    assert kept.on_stop() == []


def test_flatten_cancels_then_sells_the_position_at_market_and_stops() -> None:
    bot = new_bot()
    buys = places(bot.on_trade(trade("103.5", 1)))
    b3 = buys[3]
    (sell,) = places(bot.on_order_event(filled(b3)))
    cancels = bot.flatten()
    assert bot.state.phase == "flattening"
    targets = [c.target_intent_id for c in cancels if isinstance(c, CancelOrder)]
    assert targets == [b.intent_id for b in buys[:3]] + [sell.intent_id]
    for order in [*buys[:3], sell]:
        out = bot.on_order_event(canceled(order, D(0)))
    (close,) = places(out)  # the last cancel confirmed: the position goes at market
    assert (close.side, close.order_type, close.price) == ("sell", "market", None)
    assert close.qty == b3.qty
    assert close.intent_id == "g:1.0:f1" and close.clamp_to_free
    assert bot.on_trade(trade("90", 5)) == []  # no new buy while flattening
    done = OrderFilled(
        intent_id=close.intent_id, user=CTX.user, source=CTX.bot, account=CTX.account,
        symbol="BTCUSDT", side="sell", trade_id="t-close", price=D("103.2"), qty=close.qty,
        fee=D("0.05"), fee_asset="USDT", liquidity="taker", cum_qty=close.qty,
        leaves_qty=D(0), ts_event=6,
    )  # fmt: skip
    assert bot.on_order_event(done) == []
    assert bot.state.phase == "stopped" and bot.state.position.qty == 0
    assert bot.state.position.realized_pnl == b3.qty * (D("103.2") - 103) - D("0.01") - D("0.05")
    idle = new_bot()
    assert idle.flatten() == [] and idle.state.phase == "stopped"  # nothing open or held


def test_a_restored_snapshot_trades_exactly_as_the_original() -> None:
    bot = new_bot()
    b4 = places(bot.on_trade(trade("104.5", 1)))[4]
    bot.on_order_event(filled(b4))
    copy = new_bot()
    copy.restore(bot.snapshot())
    assert copy.state == bot.state
    for step, price in enumerate(["105.5", "103.2", "106.7"], start=2):
        assert copy.on_trade(trade(price, step)) == bot.on_trade(trade(price, step))
    assert copy.snapshot() == bot.snapshot()


def test_the_entry_point_object_is_the_grid() -> None:
    assert GRID.params is GridParams and GRID.bot is GridBot
    assert GridBot.state_type().phase == "waiting"
