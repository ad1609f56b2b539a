"""The martingale strategy against hand-computed cases of shared/STRATEGIES.md §2.

Reference parameters (worked out by hand from the formulas): base_quote 100,
safety_quote 50, N = 3, d = 2, s = 1.5, v = 2, T = 1.5 on a market with tick
0.01 and step 0.001.

* base order at p = 100: ``floor_tick(100 * 1.005) = 100.50``,
  ``floor_step(100 / 100.50) = floor_step(0.99502) = 0.995``;
* ``dev_j`` = 2, 2 + 3 = 5, 2 + 3 + 4.5 = 9.5 %; from P_base = 100 the safety
  prices are 98.00, 95.00, 90.50; quotes 50, 100, 200; quantities
  50/98 = 0.5102 -> 0.510, 100/95 = 1.0526 -> 1.052, 200/90.5 = 2.2099 -> 2.209;
* worst-case capital = 100 + 50 + 100 + 200 = 450;
* take-profit after the base fill at 100: ``floor_tick(100 * 1.015) = 101.50``
  for 0.995; after s1 fills at 98: avg = (99.5 + 49.98) / 1.505 = 99.32226,
  ``floor_tick(99.32226 * 1.015) = floor_tick(100.81209) = 100.81`` for 1.505;
  after s2 at 95: avg = 249.42 / 2.557 = 97.54400 -> ``floor_tick(99.00716) = 99.00``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal as D
from functools import partial

import msgspec
import pytest

from tests.support import ticks
from tests.support.markets import BTCUSDT as BTC
from tests.support.markets import SOLUSDC as UNIT
from tests.support.markets import bot_context
from tests.support.orders import OrderEvents
from tradebus.common.ids import AccountId
from tradebus.common.markets import Market
from tradebus.common.messages import (
    AccountBalances,
    AssetBalance,
    CancelOrder,
    Intent,
    PlaceOrder,
    TradeTick,
)
from tradebus.strategies.martingale.bot import MartingaleBot
from tradebus.strategies.martingale.params import (
    MartingaleParams,
    base_order,
    deviation_pct,
    plan_safety_orders,
    worst_case_capital,
)

SECOND = 1_000_000_000
ID = "alice-mg:1.1:"


def params(**kw: object) -> MartingaleParams:
    base: dict[str, object] = {
        "base_quote": D(100),
        "safety_quote": D(50),
        "max_safety_orders": 3,
        "price_deviation_pct": D(2),
        "step_scale": D("1.5"),
        "volume_scale": D(2),
        "take_profit_pct": D("1.5"),
    }
    base.update(kw)
    return MartingaleParams(**base)  # type: ignore[arg-type]


def levels(p_base: str, market: Market = UNIT, **kw: object) -> list[tuple[int, str, str]]:
    plan = plan_safety_orders(D(p_base), params(**kw), market)
    return [(lv.index, str(lv.price), str(lv.qty)) for lv in plan]


# --------------------------------------------------------------------------- levels
def test_safety_levels_by_hand() -> None:
    assert [deviation_pct(j, params()) for j in (1, 2, 3)] == [D(2), D(5), D("9.5")]
    assert levels("100") == [(1, "98.00", "0.510"), (2, "95.00", "1.052"), (3, "90.50", "2.209")]
    assert [lv.quote for lv in plan_safety_orders(D(100), params(), UNIT)] == [50, 100, 200]


def test_base_order_notional_never_exceeds_base_quote() -> None:
    assert base_order(D(100), params(), UNIT) == (D("100.50"), D("0.995"))
    price, qty = base_order(D("61837.63"), params(base_quote=D(250)), BTC)
    # floor_tick(62146.81815) = 62146.81; 250 / 62146.81 = 0.0040227 -> 0.00402
    assert (price, qty) == (D("62146.81"), D("0.00402"))
    assert price * qty <= 250


def test_levels_on_a_real_market_with_equal_steps_and_sizes() -> None:
    # s = v = 1: dev 0.5, 1.0, 1.5 %; 61837.63 * 0.995 = 61528.441850 -> 61528.44 etc.
    got = levels(
        "61837.63",
        BTC,
        safety_quote=D(100),
        price_deviation_pct=D("0.5"),
        step_scale=D(1),
        volume_scale=D(1),
    )
    assert got == [
        (1, "61528.44", "0.00162"),  # 100 / 61528.44 = 0.0016252
        (2, "61219.25", "0.00163"),  # 61837.63 * 0.99 = 61219.2537; 100/61219.25 = 0.0016335
        (3, "60910.06", "0.00164"),  # 61837.63 * 0.985 = 60910.06555; 0.0016417
    ]


def test_levels_below_the_minimum_order_are_skipped() -> None:
    # quotes 8, 16, 32: s1 at 98.00 * 0.081 = 7.94 < 10 is skipped
    assert levels("100", safety_quote=D(8)) == [(2, "95.00", "0.168"), (3, "90.50", "0.353")]


def test_worst_case_capital_is_base_plus_every_safety_quote() -> None:
    assert worst_case_capital(params()) == D(450)
    assert worst_case_capital(params(max_safety_orders=0)) == D(100)
    assert worst_case_capital(params(volume_scale=D(1), max_safety_orders=20)) == D(1100)


def test_parameter_problems_name_the_field() -> None:
    bad = params(
        base_quote=D(0),
        safety_quote=D(-1),
        max_safety_orders=21,
        price_deviation_pct=D(0),
        step_scale=D("0.9"),
        volume_scale=D("0.5"),
        take_profit_pct=D(0),
        stop_loss_pct=D(100),
        cooldown_seconds=D(-1),
    )
    assert dict(bad.problems()) == {
        "base_quote": "must be > 0",
        "safety_quote": "must be > 0",
        "max_safety_orders": "must be between 0 and 20",
        "price_deviation_pct": "must be > 0 and < 100",
        "step_scale": "must be >= 1",
        "volume_scale": "must be >= 1",
        "take_profit_pct": "must be > 0",
        "stop_loss_pct": "must be >= 0 and < 100 (0 = none)",
        "cooldown_seconds": "must be >= 0",
    }
    assert params().problems() == []
    assert params(max_safety_orders=0, safety_quote=D(0)).problems() == []
    # dev_3 = 30 * (1 + 1.5 + 2.25) = 142.5 %
    (deep,) = params(price_deviation_pct=D(30)).problems()
    assert deep[0] == "price_deviation_pct" and "142.5" in deep[1]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="martingale_factor"):
        msgspec.convert({"base_quote": "1", "martingale_factor": 2}, MartingaleParams, strict=False)


# ---------------------------------------------------------------------------- cycle
CTX = bot_context("alice-mg", "alice", "alice-paper", "martingale", UNIT)
trade = partial(ticks.trade, symbol=UNIT.symbol)
quote = partial(ticks.quote, symbol=UNIT.symbol)
EV = OrderEvents(CTX, liquidity="maker", reject_message="venue says no")
accepted, filled, canceled, rejected = EV.accepted, EV.filled, EV.canceled, EV.rejected
cancel_rejected = EV.cancel_rejected


def balances(usdc: str, account: AccountId = CTX.account) -> AccountBalances:
    free = D(usdc)
    return AccountBalances(
        account=account,
        venue="binance",
        balances=[AssetBalance(asset="USDC", total=free, free=free, locked=D(0))],
        ledger_watermark=0,
    )


def places(intents: list[Intent]) -> list[PlaceOrder]:
    return [i for i in intents if isinstance(i, PlaceOrder)]


def cancels(intents: list[Intent]) -> list[str]:
    return [i.target_intent_id for i in intents if isinstance(i, CancelOrder)]


def brief(intents: list[Intent]) -> list[tuple[str, str, str, str]]:
    """(leg, side, price, qty) of each place."""
    return [
        (p.intent_id.removeprefix(ID), p.side, str(p.price), str(p.qty)) for p in places(intents)
    ]


def tell(bot: MartingaleBot, *events: object) -> list[Intent]:
    out: list[Intent] = []
    for event in events:
        out += bot.on_order_event(event)  # type: ignore[arg-type]
    return out


def new_bot(**kw: object) -> MartingaleBot:
    bot = MartingaleBot(CTX, params(**kw))
    assert bot.on_balances(balances("1000")) == []
    return bot


@dataclass
class Cycle:
    """A bot whose base order filled at 100 (fee 0.02), with tp1 and s1..s3 accepted."""

    bot: MartingaleBot
    base: PlaceOrder
    tp1: PlaceOrder
    safeties: list[PlaceOrder]

    @property
    def s1(self) -> PlaceOrder:
        return self.safeties[0]

    @property
    def s2(self) -> PlaceOrder:
        return self.safeties[1]

    @property
    def s3(self) -> PlaceOrder:
        return self.safeties[2]


def in_cycle(**kw: object) -> Cycle:
    bot = new_bot(**kw)
    (base,) = places(bot.on_trade(trade("100", 1 * SECOND)))
    tell(bot, accepted(base))
    (tp1,) = places(tell(bot, filled(base, "100", "0.02")))
    tell(bot, accepted(tp1))
    safeties = places(bot.on_trade(trade("100", 2 * SECOND)))
    tell(bot, *[accepted(s) for s in safeties])
    return Cycle(bot, base, tp1, safeties)


# ---------------------------------------------------------------- balance check
def test_no_order_before_the_balances_are_heard() -> None:
    bot = MartingaleBot(CTX, params())
    assert bot.on_trade(trade("100", 1)) == []
    assert bot.status().phase == "checking"
    assert bot.status().details["worst_case_capital"] == "450"
    assert bot.on_balances(balances("450")) == []  # exactly enough
    assert bot.status().phase == "waiting"
    assert brief(bot.on_trade(trade("100", 2))) == [("b", "buy", "100.50", "0.995")]


def test_too_little_free_quote_fails_naming_the_numbers() -> None:
    bot = MartingaleBot(CTX, params())
    bot.on_balances(balances("449.99"))
    status = bot.status()
    assert status.phase == "failed"
    assert status.error is not None
    assert "worst-case capital 450 USDC" in status.error
    assert "base_quote 100" in status.error and "free balance 449.99 USDC" in status.error
    assert bot.on_trade(trade("100", 1)) == []


def test_balances_of_another_account_are_ignored() -> None:
    bot = MartingaleBot(CTX, params())
    bot.on_balances(balances("10", account=AccountId("bob-paper")))
    assert bot.status().phase == "checking"


def test_later_cycles_do_not_check_again() -> None:
    c = in_cycle()
    bot = c.bot
    tell(bot, filled(c.tp1, "101.50"), *[canceled(o) for o in c.safeties])
    bot.on_balances(balances("0"))  # ignored: only the first cycle is checked
    assert bot.status().phase == "cooldown"
    out = bot.on_trade(trade("101", 3 * SECOND))
    assert [p.intent_id for p in places(out)] == ["alice-mg:1.2:b"]
    assert (str(out[0].price), str(out[0].qty)) == ("101.50", "0.985")  # type: ignore[union-attr]


def test_a_tiny_base_order_fails_the_bot() -> None:
    bot = new_bot(base_quote=D(5), max_safety_orders=0)  # 5 < min_order_quote 10
    assert bot.on_trade(trade("100", 1)) == []
    assert bot.status().phase == "failed"
    assert "min_order_quote=10" in (bot.status().error or "")


# ------------------------------------------------------------------------ cycle
def test_cycle_start_base_order_and_take_profit_then_safeties() -> None:
    bot = new_bot()
    out = bot.on_trade(trade("100", 1 * SECOND))
    assert [p.intent_id for p in places(out)] == [ID + "b"]
    assert out[0].trigger_ts == 1 * SECOND  # type: ignore[union-attr]
    assert bot.status().phase == "entering"
    tell(bot, accepted(out[0]))
    assert bot.on_trade(trade("100.2", 1 * SECOND + 1)) == []  # nothing before the fill
    tp = tell(bot, filled(out[0], "100", "0.02"))
    assert brief(tp) == [("tp1", "sell", "101.50", "0.995")]
    assert places(tp)[0].clamp_to_free
    # the safety orders are new capital: placed on the next market event, from P_base = 100
    safeties = bot.on_trade(trade("100.1", 2 * SECOND))
    assert brief(safeties) == [
        ("s1", "buy", "98.00", "0.510"),
        ("s2", "buy", "95.00", "1.052"),
        ("s3", "buy", "90.50", "2.209"),
    ]
    assert bot.on_trade(trade("100.1", 3 * SECOND)) == []  # placed once
    assert bot.status().phase == "active"


def test_quote_mid_is_the_reference_before_any_trade() -> None:
    bot = new_bot()
    assert brief(bot.on_quote(quote("99.99", "100.01", 5))) == [("b", "buy", "100.50", "0.995")]


def test_p_base_is_the_average_fill_price_of_the_base_order() -> None:
    bot = new_bot()
    (base,) = places(bot.on_trade(trade("100", 1)))
    tell(bot, accepted(base))
    tp1 = tell(bot, filled(base, "100", qty=D("0.495")))  # a partial fill: TP, no safeties
    assert brief(tp1) == [("tp1", "sell", "101.50", "0.495")]
    assert bot.on_trade(trade("100", 2)) == []
    assert bot.status().phase == "entering"
    out = tell(bot, filled(base, "101", qty=D("0.5")))
    assert cancels(out) == [ID + "tp1"] and places(out) == []
    # avg (49.5 + 50.5) / 0.995 = 100.50251; * 1.015 = 102.01005
    assert brief(tell(bot, canceled(places(tp1)[0]))) == [("tp2", "sell", "102.01", "0.995")]
    # P_base = 100 / 0.995 = 100.50251: s1 = floor_tick(98.49246) = 98.49
    assert brief(bot.on_trade(trade("100", 3)))[0] == ("s1", "buy", "98.49", "0.507")
    assert bot.status().details["base_price"] == str(D(100) / D("0.995"))


def test_take_profit_is_replaced_only_after_the_cancel_is_confirmed() -> None:
    c = in_cycle()
    bot = c.bot
    out = tell(bot, filled(c.s1, "98", "0.01"))
    assert cancels(out) == [ID + "tp1"] and places(out) == []  # the old TP still locks the SOL
    assert bot.on_trade(trade("98", 3 * SECOND)) == []  # still waiting
    assert bot.status().details["take_profit_price"] == "100.81"
    tp2 = tell(bot, canceled(c.tp1))
    assert brief(tp2) == [("tp2", "sell", "100.81", "1.505")]
    tell(bot, accepted(tp2[0]))
    # a second safety fill: tp2 replaced by tp3
    assert cancels(tell(bot, filled(c.s2, "95"))) == [ID + "tp2"]
    assert brief(tell(bot, canceled(tp2[0]))) == [("tp3", "sell", "99.00", "2.557")]
    assert bot.status().details["safety_orders_filled"] == 2


def test_two_fills_before_the_cancel_is_confirmed_give_one_new_take_profit() -> None:
    c = in_cycle()
    bot = c.bot
    assert cancels(tell(bot, filled(c.s1, "98"))) == [ID + "tp1"]
    assert tell(bot, filled(c.s2, "95")) == []  # the cancel is already on its way
    assert brief(tell(bot, canceled(c.tp1))) == [("tp2", "sell", "99.00", "2.557")]


def test_a_take_profit_that_filled_before_its_cancel() -> None:
    c = in_cycle()
    bot = c.bot
    cancel = tell(bot, filled(c.s1, "98"))
    assert tell(bot, cancel_rejected(cancel[0])) == []  # still open for all we know
    out = tell(bot, filled(c.tp1, "101.50"))  # it had sold 0.995 of the 1.505
    # the rest keeps the average cost 99.32226 (average-cost method): tp2 at 100.81
    assert brief(out) == [("tp2", "sell", "100.81", "0.510")]
    status = bot.status()
    assert status.position == D("0.510") and status.phase == "active"
    share = D("0.995") / D("1.505")
    assert status.realized_pnl == D("0.995") * D("101.50") - D("149.48") * share - D("0.02") * share


def test_a_take_profit_partly_filled_before_its_cancel_is_replaced_for_the_rest() -> None:
    c = in_cycle()
    bot = c.bot
    tell(bot, filled(c.s1, "98"))  # cancel of tp1 sent
    assert tell(bot, filled(c.tp1, "101.50", qty=D("0.400"))) == []  # part of it sold first
    out = tell(bot, canceled(c.tp1, filled_qty=D("0.400")))
    # left: 1.105 at the same average 99.32226 (selling does not move it)
    assert brief(out) == [("tp2", "sell", "100.81", "1.105")]


def test_a_cancel_reporting_unheard_fills_waits_for_them() -> None:
    c = in_cycle()
    bot = c.bot
    tell(bot, filled(c.s1, "98"))
    assert tell(bot, canceled(c.tp1, filled_qty=D("0.400"))) == []  # 0.400 sold, not heard yet
    assert bot.on_trade(trade("99", 3 * SECOND)) == []
    out = tell(bot, filled(c.tp1, "101.50", qty=D("0.400")))
    assert brief(out) == [("tp2", "sell", "100.81", "1.105")]


def test_take_profit_closes_the_cycle_and_the_next_starts_after_the_cooldown() -> None:
    c = in_cycle(cooldown_seconds=D(60))
    bot = c.bot
    tell(bot, filled(c.s1, "98", "0.01"))
    (tp2,) = places(tell(bot, canceled(c.tp1)))
    out = tell(bot, filled(tp2, "100.81", "0.03"))
    assert cancels(out) == [c.s2.intent_id, c.s3.intent_id]  # the leftover safety orders
    assert bot.status().phase == "closing"
    tell(bot, canceled(c.s2))
    assert tell(bot, canceled(c.s3)) == []
    status = bot.status()
    # proceeds 1.505 * 100.81 = 151.71905; cost 149.48; fees 0.02 + 0.01 + 0.03
    assert status.realized_pnl == D("151.71905") - D("149.48") - D("0.06")
    assert (status.phase, status.cycles_completed, status.position) == ("cooldown", 1, 0)
    # the cycle ended at the first market event after the sale: 10 s
    assert bot.on_trade(trade("101", 10 * SECOND)) == []
    assert bot.status().details["cooldown_until_ns"] == 70 * SECOND
    assert bot.on_quote(quote("100", "101", 70 * SECOND - 1)) == []
    out = bot.on_trade(trade("101", 70 * SECOND))
    assert [p.intent_id for p in places(out)] == ["alice-mg:1.2:b"]
    assert str(places(out)[0].price) == "101.50"  # floor_tick(101 * 1.005)
    assert bot.status().cycle == 2 and bot.status().phase == "entering"


def test_without_cooldown_the_next_cycle_starts_at_the_same_event() -> None:
    c = in_cycle()
    bot = c.bot
    tell(bot, filled(c.tp1, "101.50"), *[canceled(s) for s in c.safeties])
    assert [p.intent_id for p in places(bot.on_trade(trade("101.6", 3 * SECOND)))] == [
        "alice-mg:1.2:b"
    ]


def test_without_cooldown_the_closing_event_starts_the_next_cycle_at_its_price() -> None:
    """STRATEGIES.md §2: with cooldown 0 the next cycle starts at the closing event itself,
    at its price, without waiting for the leftover safety orders' cancels."""
    c = in_cycle()
    bot = c.bot
    out = tell(bot, filled(c.tp1, "101.50"))  # step 1 of the event: its fill
    assert cancels(out) == [s.intent_id for s in c.safeties]
    out = bot.on_trade(trade("101.6", 3 * SECOND))  # step 2: the event itself
    assert [(p.intent_id, str(p.price)) for p in places(out)] == [
        ("alice-mg:1.2:b", "102.10")  # floor_tick(101.6 * 1.005) = 102.108 -> 102.10
    ]
    s = bot.status()
    assert (s.cycles_completed, s.cycle, s.phase) == (1, 2, "entering")
    tell(bot, *[canceled(x) for x in c.safeties])  # the cancels confirmed later change nothing
    assert bot.status().phase == "entering"


def test_without_cooldown_a_late_fill_of_the_last_cycle_is_sold_by_the_next() -> None:
    c = in_cycle()
    bot = c.bot
    tell(bot, filled(c.tp1, "101.50"))
    (base2,) = places(bot.on_trade(trade("101.6", 3 * SECOND)))
    (tp1,) = places(tell(bot, accepted(base2), filled(c.s1, "98")))  # s1 filled before
    assert (tp1.intent_id, tp1.qty, bot.status().position) == (  # its cancel: cycle 2 sells it
        "alice-mg:1.2:tp1",
        D("0.510"),
        D("0.510"),
    )
    tell(bot, accepted(tp1))
    assert cancels(tell(bot, filled(base2, "102.10"))) == [tp1.intent_id]
    (tp2,) = places(tell(bot, canceled(tp1)))
    assert (tp2.intent_id, tp2.qty) == ("alice-mg:1.2:tp2", D("0.510") + base2.qty)


def test_with_a_cooldown_no_new_cycle_while_a_leftover_cancel_is_unconfirmed() -> None:
    c = in_cycle(cooldown_seconds=D(1))
    bot = c.bot
    tell(bot, filled(c.tp1, "101.50"), canceled(c.s1), canceled(c.s2))
    assert bot.on_trade(trade("101", 3 * SECOND)) == []
    assert bot.status().phase == "closing"
    tell(bot, canceled(c.s3))
    assert bot.on_trade(trade("101", 4 * SECOND - 1)) == []  # it ended at 3 s: cooling down
    assert places(bot.on_trade(trade("101", 4 * SECOND)))


def test_a_buy_filled_after_the_sale_reopens_the_cycle() -> None:
    c = in_cycle(cooldown_seconds=D(1))  # with 0 the next cycle does not wait (above)
    bot = c.bot
    tell(bot, filled(c.tp1, "101.50"))  # cancels for s1..s3 sent
    out = tell(bot, filled(c.s1, "98"))  # ... but s1 had filled
    assert brief(out) == [("tp2", "sell", "99.47", "0.510")]  # floor_tick(98 * 1.015)
    tell(bot, canceled(c.s2), canceled(c.s3))
    assert bot.status().phase == "active"
    assert bot.on_trade(trade("99", 3 * SECOND)) == []  # no new cycle, no new safety orders
    tell(bot, filled(places(out)[0], "99.96"))
    assert bot.status().phase == "cooldown" and bot.status().cycles_completed == 1


# ------------------------------------------------------------------- stop-loss
def test_stop_loss_cancels_everything_then_sells_marketably() -> None:
    c = in_cycle(stop_loss_pct=D(5))
    bot = c.bot
    tell(bot, filled(c.s1, "98", "0.01"))
    (tp2,) = places(tell(bot, canceled(c.tp1)))
    tell(bot, accepted(tp2))
    # avg 99.32226: the trigger is 94.35615
    assert bot.status().details["stop_loss_price"] == "94.35"
    assert bot.on_trade(trade("94.36", 3 * SECOND)) == []
    out = bot.on_trade(trade("94.35", 4 * SECOND))
    assert cancels(out) == [c.s2.intent_id, c.s3.intent_id, tp2.intent_id]
    assert places(out) == []  # the sell waits for the take-profit's cancel
    assert bot.status().phase == "stop_loss"
    tell(bot, canceled(c.s2), canceled(c.s3))
    sl = tell(bot, canceled(tp2))
    assert brief(sl) == [("sl", "sell", "93.87", "1.505")]  # floor_tick(94.35 * 0.995)
    assert places(sl)[0].clamp_to_free
    tell(bot, accepted(sl[0]))
    assert bot.on_trade(trade("94", 5 * SECOND)) == []
    tell(bot, filled(sl[0], "94.35", "0.07"))
    status = bot.status()
    # proceeds 1.505 * 94.35 = 141.99675; cost 149.48; fees 0.02 + 0.01 + 0.07
    assert status.realized_pnl == D("141.99675") - D("149.48") - D("0.10")
    assert (status.phase, status.cycles_completed, status.position) == ("cooldown", 1, 0)


def test_a_buy_filled_during_the_stop_loss_is_sold_too() -> None:
    c = in_cycle(stop_loss_pct=D(5))
    bot = c.bot
    bot.on_trade(trade("95", 3 * SECOND))  # 95 <= 100 * 0.95
    tell(bot, canceled(c.s1), canceled(c.s3))
    sl = tell(bot, canceled(c.tp1))
    assert brief(sl) == [("sl", "sell", "94.52", "0.995")]
    tell(bot, filled(c.s2, "95"))  # filled before its cancel arrived
    sl2 = tell(bot, filled(sl[0], "95"))
    assert brief(sl2) == [("sl2", "sell", "94.52", "1.052")]
    assert bot.status().phase == "stop_loss"
    tell(bot, filled(sl2[0], "95"))
    assert bot.status().phase == "cooldown"


def test_no_stop_loss_when_it_is_zero() -> None:
    c = in_cycle()
    bot = c.bot
    assert cancels(bot.on_trade(trade("1", 3 * SECOND))) == []
    assert bot.status().details["stop_loss_price"] is None


# -------------------------------------------------------------- rejects, clamps
def test_a_rejected_base_order_fails_the_bot() -> None:
    bot = new_bot()
    (base,) = places(bot.on_trade(trade("100", 1)))
    tell(bot, rejected(base, "insufficient_balance"))
    assert bot.status().phase == "failed"
    assert "base order rejected: insufficient_balance" in (bot.status().error or "")


def test_a_rejected_safety_order_is_reported_and_the_cycle_goes_on() -> None:
    c = in_cycle()
    bot = c.bot
    tell(bot, rejected(c.s3, "risk_max_notional"))
    status = bot.status()
    assert status.phase == "active" and "s3 rejected: risk_max_notional" in (status.error or "")


def test_a_take_profit_clamped_to_the_free_balance_writes_off_the_difference() -> None:
    bot = new_bot()
    (base,) = places(bot.on_trade(trade("100", 1)))
    (tp1,) = places(tell(bot, filled(base, "100")))
    tell(bot, accepted(tp1, qty=D("0.900")))  # the user sold 0.095 SOL by hand
    assert bot.status().position == D("0.900")
    tell(bot, filled(tp1, "101.50"))
    assert bot.status().position == 0 and bot.status().phase == "cooldown"


def test_a_take_profit_refused_for_lack_of_base_ends_the_cycle() -> None:
    bot = new_bot(max_safety_orders=0)
    (base,) = places(bot.on_trade(trade("100", 1)))
    (tp1,) = places(tell(bot, filled(base, "100")))
    tell(bot, rejected(tp1, "insufficient_balance"))  # all sold by hand
    assert bot.status().phase == "cooldown" and bot.status().position == 0


def test_a_sell_rejected_for_another_reason_fails_the_bot() -> None:
    bot = new_bot()
    (base,) = places(bot.on_trade(trade("100", 1)))
    (tp1,) = places(tell(bot, filled(base, "100")))
    tell(bot, rejected(tp1, "risk_max_notional"))
    assert bot.status().phase == "failed"
    assert "sell tp1 rejected" in (bot.status().error or "")


# ------------------------------------------------------------------- lifecycle
def test_stop_cancels_open_orders_only_when_configured() -> None:
    c = in_cycle()
    bot = c.bot
    assert cancels(bot.on_stop()) == [c.tp1.intent_id] + [s.intent_id for s in c.safeties]
    assert bot.status().phase == "stopped"
    c2 = in_cycle(cancel_on_exit=False)
    bot2 = c2.bot
    assert bot2.on_stop() == []


def test_restart_replaces_what_the_stop_canceled_under_new_ids() -> None:
    c = in_cycle()
    bot = c.bot
    tell(bot, filled(c.s1, "98"))  # tp1 cancel sent
    assert places(tell(bot, canceled(c.tp1)))  # tp2
    stop = bot.on_stop()
    tell(bot, *[canceled(o) for o in stop])
    assert bot.on_trade(trade("99", 3 * SECOND)) == []  # stopped: no ticks matter
    assert bot.on_restart() == []
    assert bot.status().phase == "active"
    out = bot.on_trade(trade("99", 4 * SECOND))
    assert brief(out) == [
        ("s2r1", "buy", "95.00", "1.052"),
        ("s3r1", "buy", "90.50", "2.209"),
        ("tp3", "sell", "100.81", "1.505"),
    ]


def test_restart_without_cancel_on_exit_keeps_the_resting_orders() -> None:
    c = in_cycle(cancel_on_exit=False)
    bot = c.bot
    bot.on_stop()
    bot.on_restart()
    assert bot.on_trade(trade("99", 3 * SECOND)) == []


def test_restart_before_the_first_cycle_checks_the_balance_again() -> None:
    bot = MartingaleBot(CTX, params())
    bot.on_balances(balances("1"))
    bot.on_stop()
    bot.on_restart()
    assert bot.status().phase == "checking"
    bot.on_balances(balances("450"))  # the user funded the account
    assert bot.status().phase == "waiting"


def test_a_base_order_canceled_unfilled_opens_a_new_cycle() -> None:
    bot = new_bot()
    (base,) = places(bot.on_trade(trade("100", 1)))
    tell(bot, accepted(base), *[canceled(o) for o in bot.on_stop()])
    bot.on_restart()
    assert bot.on_trade(trade("100", 2)) == []  # the cycle is given up...
    assert [p.intent_id for p in places(bot.on_trade(trade("100", 3)))] == ["alice-mg:1.2:b"]


def test_status_block() -> None:
    c = in_cycle(stop_loss_pct=D(10))
    bot = c.bot
    tell(bot, filled(c.s1, "98"))
    bot.on_trade(trade("99", 3 * SECOND))
    s = bot.status()
    qty, cost = D("1.505"), D("149.48")
    avg = cost / qty
    assert (s.phase, s.run, s.cycle) == ("active", 1, 1)
    assert (s.orders_placed, s.orders_filled, s.open_orders) == (5, 2, 3)  # tp1 cancel pending
    assert (s.filled_qty, s.filled_quote, s.avg_price, s.position) == (qty, cost, avg, qty)
    assert s.last_price == 99 and s.position_value == qty * 99
    assert s.unrealized_pnl == qty * 99 - cost - D("0.02")
    assert s.unrealized_pct == s.unrealized_pnl / (cost + D("0.02")) * 100
    assert s.take_profit_progress_pct == 0  # below the average
    assert s.details == {
        "worst_case_capital": "450",
        "base_price": "100",
        "safety_orders_filled": 1,
        "max_safety_orders": 3,
        "take_profit_price": "100.81",
        "stop_loss_price": "89.39",  # floor_tick(99.32226 * 0.9)
        "next_safety_price": "95.00",
        "cooldown_until_ns": None,
        "trailing_peak": None,  # trailing take-profit off
        "trailing_stop_price": None,
    }
    bot.on_trade(trade("100", 4 * SECOND))
    pct = (100 - avg) / avg * 100 / D("1.5") * 100
    assert bot.status().take_profit_progress_pct == pct
    assert msgspec.json.decode(msgspec.json.encode(bot.status()))["details"]["base_price"] == "100"


# --------------------------------------------------------- snapshot and resend
def test_snapshot_restore_mid_cycle_gives_the_same_future() -> None:
    c = in_cycle(stop_loss_pct=D(3))
    bot = c.bot
    tell(bot, filled(c.s1, "98", "0.01"))
    (tp2,) = places(tell(bot, canceled(c.tp1)))
    copy = MartingaleBot(CTX, params(stop_loss_pct=D(3)))
    copy.restore(bot.snapshot())
    assert copy.status() == bot.status()
    events: list[object] = [
        accepted(tp2),
        trade("99", 5 * SECOND),
        filled(c.s2, "95"),
        trade("95", 6 * SECOND),
        trade("95.5", 7 * SECOND),
        trade("94", 8 * SECOND),
    ]
    for event in events:
        if isinstance(event, TradeTick):
            a, b = bot.on_trade(event), copy.on_trade(event)
        else:
            a, b = bot.on_order_event(event), copy.on_order_event(event)  # type: ignore[arg-type]
        assert a == b
    assert copy.snapshot() == bot.snapshot()
    assert copy.status() == bot.status()


def test_resend_repeats_unanswered_places_and_cancels_exactly() -> None:
    bot = new_bot()
    (base,) = places(bot.on_trade(trade("100", 1)))
    (tp1,) = places(tell(bot, accepted(base), filled(base, "100")))
    safeties = bot.on_trade(trade("100", 2))  # tp1 and s1..s3 not yet acknowledged
    tell(bot, accepted(safeties[0]))
    cancel = tell(bot, filled(safeties[0], "98"))  # cancel of tp1
    copy = MartingaleBot(CTX, params())
    copy.restore(bot.snapshot())
    assert copy.resend() == [tp1, *cancel, *safeties[1:]]
    assert bot.resend() == copy.resend()


def test_a_snapshot_of_another_strategy_is_refused() -> None:
    bot = MartingaleBot(CTX, params())
    with pytest.raises(msgspec.DecodeError):
        bot.restore(b'{"phase": "buying"}')
