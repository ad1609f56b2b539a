"""The per-bot position check and the average set by hand, on the ladder core (issue 19).

Hand-computed cases of docs/strategies.md "Position check": a ladder bot on
SOL/USDC buys 2.040 SOL at 98 (its top level); then the account is found
holding another quantity for it. ``difference = held - position``, above the
threshold when ``|difference| / position * 100 > threshold``; a difference
acts on the second check in a row above it.
"""

from __future__ import annotations

from decimal import Decimal as D
from functools import partial

import msgspec
import pytest

from tests.support import ticks
from tests.support.markets import SOLUSDC as UNIT
from tests.support.markets import bot_context
from tests.support.orders import OrderEvents, places
from tradebus.common.messages import AccountBalances, AssetBalance, BotPosition
from tradebus.common.positions import Position
from tradebus.strategies.ladder.bot import LadderBot
from tradebus.strategies.ladder.params import LadderParams
from tradebus.strategies.position_check import (
    PositionCheck,
    PositionCheckState,
    above_threshold,
    run_check,
)
from tradebus.strategies.registry import BotSpec, typed_params
from tradebus.strategy.host import BotRunner
from tradebus.strategy.position_checks import PositionChecks, held_for

CTX = bot_context("alice-ladder", "alice", "alice-paper", "ladder", UNIT)
trade = partial(ticks.trade, symbol=UNIT.symbol)
EV = OrderEvents(CTX, liquidity="maker")
LADDER = {"total_quote": "1000", "order_count": 5, "max_drop_pct": "10", "take_profit_pct": "2"}


def bot_with_position(**check: object) -> LadderBot:
    """A ladder bot holding 2.040 SOL bought at 98, its last price 100."""
    settings = PositionCheck(**{"enabled": True, **check})  # type: ignore[arg-type]
    params = LadderParams(
        total_quote=D(1000),
        order_count=5,
        max_drop_pct=D(10),
        take_profit_pct=D(2),
        position_check=settings,
    )
    bot = LadderBot(CTX, params)
    buys = places(bot.on_trade(trade("100", 1_000)))
    for b in buys:
        bot.on_order_event(EV.accepted(b))
    bot.on_order_event(EV.filled(buys[0], "98", "0"))
    assert bot.state.position.qty == D("2.040")
    return bot


def test_settings_are_off_by_default_and_validated_by_field_path() -> None:
    params, problems = typed_params("ladder", LADDER)
    assert problems == [] and params.position_check == PositionCheck()
    assert PositionCheck() == PositionCheck(
        enabled=False,
        interval_seconds=D(60),
        on_tick=False,
        position_difference_threshold=D(5),
        action="alert",
    )
    bad = {
        **LADDER,
        "position_check": {
            "enabled": True,
            "interval_seconds": "0",
            "position_difference_threshold": "-1",
            "action": "sell",
        },
    }
    _, problems = typed_params("ladder", bad)
    assert problems == [
        ("position_check.interval_seconds", "must be > 0 (got 0)"),
        ("position_check.position_difference_threshold", "must be >= 0 percent (got -1)"),
        ("position_check.action", "must be one of alert, adopt, reduce (got 'sell')"),
    ]
    _, problems = typed_params("ladder", {**LADDER, "position_check": {"every": 1}})
    assert problems == [
        (
            "position_check.every",
            "unknown field (known: action, enabled, interval_seconds, on_tick,"
            " position_difference_threshold)",
        )
    ]


def test_a_bot_with_the_check_off_is_not_checked() -> None:
    bot = bot_with_position(enabled=False)
    assert bot.check_position(D(0)) is None
    assert bot.state.position.qty == D("2.040")


def test_threshold_is_percent_of_the_position_and_any_holding_of_a_flat_bot() -> None:
    assert not above_threshold(D(2), D("2.1"), D(5))  # 5 % exactly is not above
    assert above_threshold(D(2), D("2.1001"), D(5))
    assert above_threshold(D(2), D("1.8"), D(5))
    assert above_threshold(D(0), D("0.001"), D(5))  # a flat bot: unbounded
    assert not above_threshold(D(0), D(0), D(5))


def test_within_threshold_is_ok_and_changes_nothing() -> None:
    bot = bot_with_position(action="adopt")
    result = bot.check_position(D("2.1"))  # +0.06 = 2.94 % <= 5 %
    assert result is not None and result.outcome == "ok"
    assert result.difference == D("0.060")
    assert bot.state.position.qty == D("2.040")
    assert bot.state.position_check.alert is None


def test_alert_reports_the_difference_and_keeps_the_position() -> None:
    bot = bot_with_position(action="alert")
    first = bot.check_position(D("1.020"))  # the user sold half by hand
    assert first is not None and first.outcome == "pending"
    second = bot.check_position(D("1.020"))
    assert second is not None and second.outcome == "alert"
    assert (second.position, second.held, second.difference) == (
        D("2.040"),
        D("1.020"),
        D("-1.020"),
    )
    assert bot.state.position.qty == D("2.040")
    memory = bot.state.position_check
    assert memory.alert == (
        "position 2.040 but the account holds 1.020 for the bot "
        "(difference -1.020, 50.00 %; threshold 5 %)"
    )
    assert memory.adjustments == 0
    # in line again: the alert clears
    assert bot.check_position(D("2.040")).outcome == "ok"  # type: ignore[union-attr]
    assert bot.state.position_check.alert is None


def test_one_check_above_the_threshold_then_one_within_does_nothing() -> None:
    # a fill in flight between execution and the bot looks like a difference once
    bot = bot_with_position(action="adopt")
    assert bot.check_position(D("4.080")).outcome == "pending"  # type: ignore[union-attr]
    assert bot.check_position(D("2.040")).outcome == "ok"  # type: ignore[union-attr]
    assert bot.check_position(D("4.080")).outcome == "pending"  # type: ignore[union-attr]
    assert bot.state.position.qty == D("2.040")


def test_adopt_takes_the_extra_into_the_position_at_the_current_price() -> None:
    bot = bot_with_position(action="adopt")
    bot.on_trade(trade("101", 2_000))  # p = 101
    bot.check_position(D("3.040"))
    result = bot.check_position(D("3.040"))
    assert result is not None and result.outcome == "adopt"
    # 2.040 at 98 + 1.000 at 101: avg = (199.92 + 101) / 3.040
    assert (result.qty, result.price) == (D("1.000"), D(101))
    assert result.old_average == D(98)
    assert result.new_average == (D("199.920") + D(101)) / D("3.040")
    assert result.ref == "alice-ladder:1:position:1"
    position = bot.state.position
    assert (position.qty, position.adopted_qty, position.bought_qty) == (
        D("3.040"),
        D("1.000"),
        D("2.040"),  # nothing was traded: no volume, no fee
    )
    # take-profit follows the new average: 2 % above 98.9868... is 100.9666...
    assert bot.status().details["take_profit_price"] == str(result.new_average * D("1.02"))
    assert bot.check_position(D("3.040")).outcome == "ok"  # type: ignore[union-attr]


def test_adopt_writes_off_a_shortfall_at_average_cost() -> None:
    bot = bot_with_position(action="adopt")
    bot.check_position(D("1.540"))
    result = bot.check_position(D("1.540"))
    assert result is not None and result.outcome == "reduce"
    assert (result.qty, result.price, result.new_average) == (D("-0.500"), D(98), D(98))
    assert (bot.state.position.qty, bot.state.position.written_off_qty) == (
        D("1.540"),
        D("0.500"),
    )
    assert bot.state.position.realized_pnl == 0  # left the bot's control: no P&L


def test_reduce_writes_off_a_shortfall_and_only_reports_an_extra() -> None:
    bot = bot_with_position(action="reduce")
    bot.check_position(D(0))
    result = bot.check_position(D(0))  # all sold by hand
    assert result is not None and result.outcome == "reduce"
    assert result.qty == D("-2.040") and bot.state.position.qty == 0
    other = bot_with_position(action="reduce")
    other.check_position(D(3))
    extra = other.check_position(D(3))
    assert extra is not None and extra.outcome == "alert"
    assert other.state.position.qty == D("2.040")


def test_adopt_without_a_price_only_reports() -> None:
    check = {"enabled": True, "action": "adopt"}
    bot = LadderBot(CTX, msgspec.convert({**LADDER, "position_check": check}, LadderParams))
    bot.check_position(D(1))
    result = bot.check_position(D(1))
    assert result is not None and result.outcome == "alert"
    assert bot.state.position_check.alert is not None
    assert bot.state.position_check.alert.endswith("; no price yet to adopt at")
    assert bot.state.position.qty == 0


def test_corrections_are_deterministic_and_survive_a_snapshot() -> None:
    runs = []
    for _ in range(2):
        bot = bot_with_position(action="adopt")
        bot.check_position(D("3.040"))
        runs.append((bot.check_position(D("3.040")), bot.snapshot()))
    assert runs[0] == runs[1]
    restored = LadderBot(CTX, bot_with_position(action="adopt").params)
    restored.restore(runs[0][1])
    assert restored.state.position.qty == D("3.040")
    assert restored.state.position_check.adjustments == 1


def test_an_old_snapshot_without_the_new_fields_loads() -> None:
    bot = bot_with_position()
    raw = msgspec.json.decode(bot.snapshot())
    del raw["position_check"]
    del raw["position"]["adopted_qty"]
    bot.restore(msgspec.json.encode(raw))
    assert bot.state.position_check.checks == 0 and bot.state.position.adopted_qty == 0


def test_set_average_by_hand() -> None:
    bot = bot_with_position()
    result = bot.set_average(D(95))
    assert (result.outcome, result.old_average, result.new_average) == ("average", D(98), D(95))
    assert result.ref == "alice-ladder:1:position:1"
    assert bot.state.position.avg_price == D(95) and bot.state.position.qty == D("2.040")
    # take-profit now triggers 2 % above 95 = 96.9
    out = bot.on_trade(trade("96.9", 3_000))
    assert any(getattr(i, "side", None) == "sell" for i in out)


@pytest.mark.parametrize("price", [D(0), D(-1), D("NaN"), D("Infinity")])
def test_set_average_refuses_a_price_not_above_zero(price: D) -> None:
    bot = bot_with_position()
    with pytest.raises(ValueError, match="price must be > 0"):
        bot.set_average(price)


def test_set_average_refuses_a_flat_bot() -> None:
    bot = LadderBot(CTX, msgspec.convert(LADDER, LadderParams))
    with pytest.raises(ValueError, match="holds no position"):
        bot.set_average(D(95))


def test_a_position_at_average_zero_pauses_take_profit_until_set() -> None:
    # seed 001: a balance with an average of 0 (an old snapshot, an import): no
    # take-profit (and no crash dividing by it) until the average is set by hand
    bot = bot_with_position()
    bot.state.position = Position(qty=D("2.040"), open_cost=D(0))
    bot._position_moved()
    assert bot.state.position.avg_price == 0
    assert bot.on_trade(trade("150", 2_000)) == []
    status = bot.status()
    assert status.take_profit_progress_pct == 0
    bot.set_average(D(98))
    out = bot.on_trade(trade("150", 3_000))
    assert any(getattr(i, "side", None) == "sell" for i in out)


def test_the_hosts_status_flags_a_zero_average_and_the_check_findings() -> None:
    # the host's status block (what the gauges and alert rules read)
    bot = bot_with_position(action="alert")
    spec = BotSpec(
        id=CTX.bot, user=CTX.user, account=CTX.account, strategy="ladder", venue="binance"
    )
    runner = BotRunner(bot, spec)
    shown = runner.status("h")
    assert (shown.position_mismatch, shown.average_missing, shown.position_check) == (
        False,
        False,
        None,
    )
    bot.check_position(D(1))
    shown = runner.status("h")
    assert shown.position_mismatch and shown.position_difference == D("-1.040")
    assert shown.position_check is not None and "difference -1.040" in shown.position_check
    bot.state.position = Position(qty=D("2.040"), open_cost=D(0))
    assert runner.status("h").average_missing
    bot.check_position(D("2.040"))  # in line again
    bot.set_average(D(97))
    shown = runner.status("h")
    assert not shown.average_missing and not shown.position_mismatch and shown.avg_price == D(97)
    assert shown.position_check == "average set by hand: 0 -> 97"


# ------------------------------------------------------------- the host's schedule
class _Market:
    def __init__(self) -> None:
        self.seq = 0


def scheduled(**check: object) -> tuple[PositionChecks, BotRunner, _Market]:
    bot = bot_with_position(**check)
    spec = BotSpec(
        id=CTX.bot, user=CTX.user, account=CTX.account, strategy="ladder", venue="binance"
    )
    runner = BotRunner(bot, spec)
    market = _Market()
    runner.markets = [market]  # type: ignore[list-item]
    return PositionChecks(None, None), runner, market  # type: ignore[arg-type]


def test_a_bot_is_checked_at_start_then_every_interval() -> None:
    checks, runner, market = scheduled(interval_seconds=D(10))
    assert checks._due(runner, 100.0)  # never checked: at once
    checks._last[runner.bot], checks._seq[runner.bot] = 100.0, market.seq
    market.seq += 5  # ticks do not count without on_tick
    assert not checks._due(runner, 105.0)
    assert checks._due(runner, 110.0)
    runner.lifecycle = "paused"
    assert not checks._due(runner, 120.0)


def test_on_tick_checks_on_ticks_at_most_once_a_second() -> None:
    checks, runner, market = scheduled(interval_seconds=D(60), on_tick=True)
    checks._last[runner.bot], checks._seq[runner.bot] = 100.0, market.seq
    assert not checks._due(runner, 102.0)  # no tick since
    market.seq += 1
    assert not checks._due(runner, 100.5)  # a tick, but within the second
    assert checks._due(runner, 101.0)


def test_held_is_the_account_total_less_the_other_bots_positions() -> None:
    _, runner, _ = scheduled()
    balances = AccountBalances(
        account=CTX.account,
        venue="paper",
        balances=[AssetBalance(asset="SOL", total=D(10), free=D(8), locked=D(2))],
        ledger_watermark=1,
        bot_positions=[
            BotPosition(source=CTX.bot, asset="SOL", qty=D(3)),  # the bot itself
            BotPosition(source="alice-other", asset="SOL", qty=D("2.5")),
            BotPosition(source="alice-other", asset="BTC", qty=D(1)),  # another asset
            BotPosition(source="manual", asset="SOL", qty=D(4)),  # behind the bots' backs
        ],
    )
    assert held_for(runner, balances) == D("7.5")


def test_a_huge_difference_is_reported_not_raised() -> None:
    memory = PositionCheckState()
    position = Position(qty=D("1e-8"), open_cost=D("1e-3"))
    settings = PositionCheck(enabled=True)
    for _ in range(2):
        result = run_check(settings, memory, position, D("1e30"), D(100), "x:1:position:")
    assert result.outcome == "alert" and memory.alert is not None
    assert f"{D('1e40'):.2f} %" in memory.alert  # 1e30 / 1e-8 * 100
