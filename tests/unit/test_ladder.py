"""The ladder strategy against hand-computed cases of shared/STRATEGIES.md §1.

Level arithmetic (the expected values below were worked out by hand from the
formulas: ``lowest = P0(1-D/100)``, ``step = (P0-lowest)/n``,
``price_i = floor_tick(P0 - step(i+1))``, ``base = Q/n`` or
``Q(r-1)/(r**n-1)``, ``base = max(m, base)``, ``scale = min(1, Q/sum)``,
``qty_i = floor_step(base r**i scale / price_i)``, keep ``price*qty >= m``),
then the cycle: fills, take-profit, restart, no-fill restart, exit.
"""

from __future__ import annotations

from decimal import Decimal as D
from functools import partial

import msgspec
import pytest

from tests.support import ticks
from tests.support.markets import BTCUSDT as BTC
from tests.support.markets import SOLUSDC as UNIT
from tests.support.markets import bot_context
from tests.support.orders import OrderEvents, cancels, places
from tradebus.common.ids import IntentId, UserId
from tradebus.common.markets import Market
from tradebus.common.messages import CancelOrder, CancelRejected, PlaceOrder
from tradebus.strategies.ladder.bot import LadderBot
from tradebus.strategies.ladder.params import LadderError, LadderParams, plan_levels

MINUTE = 60_000_000_000


def params(**kw: object) -> LadderParams:
    base: dict[str, object] = {
        "total_quote": D(1000),
        "order_count": 5,
        "max_drop_pct": D(10),
        "take_profit_pct": D(2),
    }
    base.update(kw)
    return LadderParams(**base)  # type: ignore[arg-type]


def levels(p0: str, market: Market = UNIT, **kw: object) -> list[tuple[int, str, str]]:
    return [
        (lv.index, str(lv.price), str(lv.qty)) for lv in plan_levels(D(p0), params(**kw), market)
    ]


# --------------------------------------------------------------------------- levels
def test_equal_sizes_when_increment_is_zero() -> None:
    # lowest 90, step 2; base = 1000/5 = 200 quote per level
    assert levels("100") == [
        (0, "98.00", "2.040"),  # 200/98 = 2.0408
        (1, "96.00", "2.083"),  # 200/96 = 2.0833
        (2, "94.00", "2.127"),  # 200/94 = 2.1276
        (3, "92.00", "2.173"),  # 200/92 = 2.1739
        (4, "90.00", "2.222"),  # 200/90 = 2.2222, the last level is `lowest`
    ]


def test_incremental_sizes() -> None:
    # r = 1.5; base = 1000*0.5/(1.5**4 - 1) = 123.0769; quotes 123.08, 184.62, 276.92, 415.38
    assert levels("100", order_count=4, max_drop_pct=D(8), increment_pct=D(50)) == [
        (0, "98.00", "1.255"),
        (1, "96.00", "1.923"),
        (2, "94.00", "2.945"),
        (3, "92.00", "4.515"),
    ]


def test_minimum_order_drops_a_level() -> None:
    # r = 2; base = 50/7 = 7.14 -> max(10, 7.14) = 10; sum 10+20+40 = 70; scale = 50/70;
    # quotes 7.14, 14.29, 28.57: level 0 is 99 * 0.072 = 7.13 < 10 and is dropped.
    got = levels("100", total_quote=D(50), order_count=3, max_drop_pct=D(3), increment_pct=D(100))
    assert got == [(1, "98.00", "0.145"), (2, "97.00", "0.294")]


def test_prices_floor_to_the_tick_on_a_real_market() -> None:
    # P0 = 61837.63, D = 0.5: lowest 61528.44185, step 61.83763
    assert levels("61837.63", BTC, max_drop_pct=D("0.5")) == [
        (0, "61775.79", "0.00323"),
        (1, "61713.95", "0.00324"),
        (2, "61652.11", "0.00324"),
        (3, "61590.27", "0.00324"),
        (4, "61528.44", "0.00325"),
    ]


def test_single_level() -> None:
    assert levels("100", total_quote=D(100), order_count=1, max_drop_pct=D(5)) == [
        (0, "95.00", "1.052")
    ]


def test_no_surviving_level_is_a_clear_error() -> None:
    # base 6 -> 10, scale 0.6: every level is 6 quote < min_order_quote 10
    with pytest.raises(LadderError, match=r"min_order_quote=10.*total_quote=30.*order_count=5"):
        plan_levels(D(100), params(total_quote=D(30)), UNIT)


def test_parameter_problems_name_the_field() -> None:
    bad = params(total_quote=D(0), order_count=0, max_drop_pct=D(100), take_profit_pct=D(-1))
    assert dict(bad.problems()) == {
        "total_quote": "must be > 0",
        "order_count": "must be between 1 and 200",
        "max_drop_pct": "must be > 0 and < 100",
        "take_profit_pct": "must be > 0",
    }
    assert params().problems() == []


# ---------------------------------------------------------------------------- cycle
CTX = bot_context("alice-ladder", "alice", "alice-paper", "ladder", UNIT)
trade = partial(ticks.trade, symbol=UNIT.symbol)
quote = partial(ticks.quote, symbol=UNIT.symbol)
EV = OrderEvents(CTX, liquidity="maker")
accepted, filled, canceled, rejected = EV.accepted, EV.filled, EV.canceled, EV.rejected


def start(**kw: object) -> tuple[LadderBot, list[PlaceOrder]]:
    bot = LadderBot(CTX, params(**kw))
    buys = places(bot.on_trade(trade("100", 1_000)))
    for b in buys:
        bot.on_order_event(accepted(b))
    return bot, buys


def test_first_event_starts_a_cycle_with_deterministic_ids() -> None:
    bot, buys = start()
    assert [b.intent_id for b in buys] == [f"alice-ladder:1.1:b{i}" for i in range(5)]
    assert [str(b.price) for b in buys] == ["98.00", "96.00", "94.00", "92.00", "90.00"]
    assert all(b.side == "buy" and b.account == "alice-paper" for b in buys)
    assert all(b.trigger_ts == 1_000 for b in buys)  # live from the next event
    assert bot.status().phase == "buying"


def test_status_shows_the_resting_levels_and_the_take_profit_price_and_distance() -> None:
    bot, buys = start()
    prices = sorted((b.price for b in buys if b.price is not None), reverse=True)
    details = bot.status().details
    assert details["open_levels"] == len(buys) == len(prices)
    assert (details["next_level_price"], details["last_level_price"]) == (
        str(prices[0]),
        str(prices[-1]),
    )
    assert details["take_profit_price"] is None and details["take_profit_distance_pct"] is None
    # the top level fills at 98: take profit at 98 * 1.02 = 99.96, 2 % above avg
    bot.on_order_event(filled(buys[0], "98", "0"))
    bot.on_trade(trade("98.5", 2_000))
    details = bot.status().details
    assert details["open_levels"] == len(buys) - 1
    assert details["next_level_price"] == str(prices[1])
    assert D(str(details["take_profit_price"])) == D("99.96")
    # (99.96 - 98.5) / 98.5 * 100
    assert D(str(details["take_profit_distance_pct"])) == (D("99.96") - D("98.5")) / D("98.5") * 100


def test_quote_mid_is_the_reference_before_any_trade() -> None:
    bot = LadderBot(CTX, params())
    buys = places(bot.on_quote(quote("99.99", "100.01", 5)))
    assert str(buys[0].price) == "98.00"  # P0 = mid = 100.00


def test_take_profit_cancels_buys_and_sells_the_position() -> None:
    bot, buys = start()
    assert bot.on_order_event(filled(buys[0], "98", "0.02")) == []
    assert bot.on_trade(trade("99.95", 2_000)) == []  # (99.95-98)/98 = 1.99 % < 2 %
    out = bot.on_trade(trade("99.96", 3_000))  # 2.0 % reached
    cancels = [i for i in out if isinstance(i, CancelOrder)]
    sells = [i for i in out if isinstance(i, PlaceOrder)]
    assert [c.target_intent_id for c in cancels] == [b.intent_id for b in buys[1:]]
    assert len(sells) == 1
    sell = sells[0]
    assert (sell.intent_id, sell.side, str(sell.price), sell.qty) == (
        "alice-ladder:1.1:s1",
        "sell",
        "99.46",
        D("2.040"),  # floor_tick(99.96 * 0.995)
    )
    assert bot.status().phase == "closing"


def test_take_profit_sells_the_net_quantity_when_the_buy_fee_is_taken_in_base() -> None:
    # Backpack charges a buy's fee in the asset bought: 2.040 bought, 0.0021 kept as fee,
    # so the account holds 2.0379 and the take-profit sells floor_step(2.0379) = 2.037
    bot, buys = start()
    fill = msgspec.structs.replace(filled(buys[0], "98"), fee=D("0.0021"), fee_asset="SOL")
    bot.on_order_event(fill)
    status = bot.status()
    assert (status.position, status.avg_price) == (D("2.0379"), D(98))
    sell = next(i for i in bot.on_trade(trade("99.96", 3_000)) if isinstance(i, PlaceOrder))
    assert sell.qty == D("2.037")


def test_cycle_closes_with_realized_pnl_and_restarts() -> None:
    bot, buys = start()
    bot.on_order_event(filled(buys[0], "98", "0.02"))
    out = bot.on_trade(trade("99.96", 3_000))
    sell = next(i for i in out if isinstance(i, PlaceOrder))
    bot.on_order_event(accepted(sell))
    for b in buys[1:]:
        assert bot.on_order_event(canceled(b)) == []
    assert bot.on_order_event(filled(sell, "99.96", "0.03")) == []  # no capital on an event
    status = bot.status()
    # proceeds 2.040*99.96 = 203.9184; cost 2.040*98 = 199.92; fees 0.02 + 0.03
    assert status.realized_pnl == D("203.9184") - D("199.92") - D("0.05")
    assert status.cycles_completed == 1
    assert status.position == 0
    assert status.phase == "waiting"
    # new cycle at the next price 99.96: lowest 89.964, step 1.9992 -> 97.9608
    restart = places(bot.on_trade(trade("99.96", 4_000)))
    assert [i.intent_id for i in restart][:1] == ["alice-ladder:1.2:b0"]
    assert str(restart[0].price) == "97.96"


def test_no_restart_after_take_profit_stops_the_bot() -> None:
    bot, buys = start(restart_after_take_profit=False)
    bot.on_order_event(filled(buys[0], "98", "0"))
    sell = next(i for i in bot.on_trade(trade("100", 3_000)) if isinstance(i, PlaceOrder))
    for b in buys[1:]:
        bot.on_order_event(canceled(b))
    assert bot.on_order_event(filled(sell, "100", "0")) == []
    assert bot.status().phase == "stopped"


def test_no_fill_restart_after_m_minutes_of_market_time() -> None:
    bot, buys = start(no_fill_restart_minutes=D(1))
    assert bot.on_trade(trade("100.5", 1_000 + MINUTE - 1)) == []
    out = bot.on_trade(trade("100.5", 1_000 + MINUTE))
    assert [c.target_intent_id for c in out] == [b.intent_id for b in buys]  # type: ignore[union-attr]
    assert all(isinstance(c, CancelOrder) for c in out)
    assert bot.status().phase == "restarting"
    # the new cycle starts at the first price after the last cancel is confirmed
    for b in buys:
        assert bot.on_order_event(canceled(b)) == []
    assert bot.status().phase == "waiting"
    placed = places(bot.on_quote(quote("100.4", "100.6", 1_000 + MINUTE + 1)))
    assert placed[0].intent_id == "alice-ladder:1.2:b0"
    assert str(placed[0].price) == "98.49"  # floor_tick(100.5 - 2.01)
    assert bot.status().phase == "buying"


def test_a_buy_filled_before_its_restart_cancel_is_kept_not_doubled() -> None:
    bot, buys = start(no_fill_restart_minutes=D(1))
    bot.on_trade(trade("99", 1_000 + MINUTE))  # restart: cancels sent
    bot.on_order_event(filled(buys[0], "98", "0"))  # ...but b0 had already filled
    for b in buys[1:]:
        assert bot.on_order_event(canceled(b)) == []  # no new cycle
    status = bot.status()
    assert (status.phase, status.cycle, status.position) == ("buying", 1, D("2.040"))
    out = bot.on_trade(trade("99.96", 1_000 + MINUTE + 1))  # and it takes profit on it
    assert [i.intent_id for i in out if isinstance(i, PlaceOrder)] == ["alice-ladder:1.1:s1"]


def test_a_fill_stops_the_no_fill_clock() -> None:
    bot, buys = start(no_fill_restart_minutes=D(1))
    bot.on_order_event(filled(buys[0], "98", "0"))
    assert bot.on_trade(trade("98.5", 1_000 + 2 * MINUTE)) == []


def test_a_buy_filled_during_closing_is_sold_too() -> None:
    bot, buys = start()
    bot.on_order_event(filled(buys[0], "98", "0"))
    sell = next(i for i in bot.on_trade(trade("99.96", 3_000)) if isinstance(i, PlaceOrder))
    bot.on_order_event(filled(buys[1], "96", "0"))  # filled before its cancel arrived
    cancel_b1 = CancelRejected(
        intent_id=IntentId(f"{buys[1].intent_id}:x"),
        user=UserId("alice"),
        source=CTX.bot,
        target_intent_id=buys[1].intent_id,
        reason="not_open",
        message="",
        ts_event=0,
    )
    bot.on_order_event(cancel_b1)
    for b in buys[2:]:
        bot.on_order_event(canceled(b))
    extra = places(bot.on_order_event(filled(sell, "99.96", "0")))
    assert [(i.intent_id, i.qty) for i in extra] == [("alice-ladder:1.1:s2", D("2.083"))]
    assert bot.on_order_event(filled(extra[0], "99.9", "0")) == []
    assert bot.status().cycles_completed == 1
    restart = bot.on_trade(trade("99.9", 5_000))
    assert restart[0].intent_id == "alice-ladder:1.2:b0"


def test_stop_cancels_open_orders_only_when_configured() -> None:
    bot, buys = start()
    bot.on_order_event(filled(buys[0], "98", "0"))
    assert [c.target_intent_id for c in cancels(bot.on_stop())] == [b.intent_id for b in buys[1:]]
    assert bot.status().phase == "stopped"
    bot2, _ = start(cancel_on_exit=False)
    assert bot2.on_stop() == []


def test_failed_ladder_reports_why() -> None:
    bot = LadderBot(CTX, params(total_quote=D(30)))
    assert bot.on_trade(trade("100", 1)) == []
    status = bot.status()
    assert status.phase == "failed"
    assert status.error is not None and "min_order_quote" in status.error


def test_rejected_take_profit_sell_fails_the_bot_with_the_reason() -> None:
    bot, buys = start()
    bot.on_order_event(filled(buys[0], "98", "0"))
    sell = next(i for i in bot.on_trade(trade("99.96", 3_000)) if isinstance(i, PlaceOrder))
    bot.on_order_event(rejected(sell, "risk_max_notional", message="over the account's limit"))
    assert bot.status().phase == "failed"
    assert "risk_max_notional" in (bot.status().error or "")


def test_take_profit_sells_only_what_the_account_really_holds() -> None:
    """Seed 001: the user sold 1 of the 2.040 SOL by hand; execution clamps the sell."""
    bot, buys = start()
    bot.on_order_event(filled(buys[0], "98", "0"))
    sell = next(i for i in bot.on_trade(trade("99.96", 3_000)) if isinstance(i, PlaceOrder))
    assert sell.clamp_to_free and sell.qty == D("2.040")
    bot.on_order_event(msgspec.structs.replace(accepted(sell), qty=D("1.040")))
    assert bot.status().position == D("1.040")  # 1 SOL written off at the average cost
    for b in buys[1:]:
        bot.on_order_event(canceled(b))
    bot.on_order_event(filled(msgspec.structs.replace(sell, qty=D("1.040")), "99.96", "0"))
    status = bot.status()
    assert (status.cycles_completed, status.position) == (1, 0)
    assert status.realized_pnl == D("1.040") * (D("99.96") - 98)


def test_take_profit_with_nothing_left_closes_the_cycle() -> None:
    bot, buys = start()
    bot.on_order_event(filled(buys[0], "98", "0"))
    sell = next(i for i in bot.on_trade(trade("99.96", 3_000)) if isinstance(i, PlaceOrder))
    for b in buys[1:]:
        bot.on_order_event(canceled(b))
    bot.on_order_event(rejected(sell, "insufficient_balance", message="free SOL is 0"))
    status = bot.status()
    assert (status.phase, status.position, status.cycles_completed) == ("waiting", 0, 1)
    assert status.realized_pnl == 0


def test_status_block() -> None:
    bot, buys = start()
    bot.on_order_event(filled(buys[0], "98", "0"))
    bot.on_order_event(filled(buys[1], "96", "0"))
    bot.on_trade(trade("98", 2_000))
    s = bot.status()
    qty = D("2.040") + D("2.083")
    avg = (D("2.040") * 98 + D("2.083") * 96) / qty
    assert (s.orders_placed, s.orders_filled, s.open_orders) == (5, 2, 3)
    assert s.filled_qty == qty and s.filled_quote == D("2.040") * 98 + D("2.083") * 96
    assert s.avg_price == avg
    assert s.position_value == qty * 98
    assert s.unrealized_pnl == qty * 98 - qty * avg
    assert s.take_profit_progress_pct == (98 - avg) / avg * 100 / 2 * 100


def test_snapshot_restore_gives_the_same_future() -> None:
    bot, buys = start()
    bot.on_order_event(filled(buys[0], "98", "0.01"))
    copy = LadderBot(CTX, params())
    copy.restore(bot.snapshot())
    for price, ts in (("99", 5_000), ("99.97", 6_000), ("101", 7_000)):
        assert copy.on_trade(trade(price, ts)) == bot.on_trade(trade(price, ts))
    assert copy.status() == bot.status()
