"""The per-bot gauges of a strategy host and execution's consumer-lag gauges, without a bus."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import nats.errors
from prometheus_client import CollectorRegistry

from tradebus.common.ids import AccountId, UserId
from tradebus.common.messages import BotStatus
from tradebus.execution.consumer_lag import record_consumer_info, refresh_consumer_lag
from tradebus.execution.metrics import ExecutionMetrics
from tradebus.strategy.bot_metrics import BotGauges

LABELS = {"bot": "a-btc", "user": "alice", "account": "alice-paper", "symbol": "BTCUSDT"}


def status(**fields: object) -> BotStatus:
    base = {**LABELS, "strategy": "ladder", "venue": "binance"}
    return BotStatus(**{**base, **fields})  # type: ignore[arg-type]


def test_bot_gauges_follow_the_statuses_and_forget_bots_that_left() -> None:
    registry = CollectorRegistry()
    gauges = BotGauges(registry)
    gauges.update(
        [status(position=Decimal("0.5"), realized_pnl=Decimal("1.25"), unrealized_pnl=Decimal(-2))]
    )
    get = registry.get_sample_value
    assert get("tradebus_strategy_bot_position", LABELS) == 0.5
    assert get("tradebus_strategy_bot_realized_pnl", LABELS) == 1.25
    assert get("tradebus_strategy_bot_unrealized_pnl", LABELS) == -2
    gauges.update([status(symbol="ETHUSDT")])  # same bot on a new market: old series gone
    assert get("tradebus_strategy_bot_position", LABELS) is None
    assert get("tradebus_strategy_bot_position", {**LABELS, "symbol": "ETHUSDT"}) == 0
    gauges.update([])  # the bot left the host
    assert get("tradebus_strategy_bot_position", {**LABELS, "symbol": "ETHUSDT"}) is None
    gauges.forget("never-here")


def test_position_check_gauges_follow_the_statuses() -> None:
    registry = CollectorRegistry()
    gauges = BotGauges(registry)
    get = registry.get_sample_value
    gauges.update([status(position=Decimal("0.5"))])  # never checked
    assert get("tradebus_strategy_bot_position_difference", LABELS) == 0
    assert get("tradebus_strategy_bot_position_mismatch", LABELS) == 0
    assert get("tradebus_strategy_bot_average_missing", LABELS) == 0
    found = status(
        position=Decimal("0.5"),
        position_difference=Decimal("-0.25"),
        position_mismatch=True,
        average_missing=True,
    )
    gauges.update([found])
    assert get("tradebus_strategy_bot_position_difference", LABELS) == -0.25
    assert get("tradebus_strategy_bot_position_mismatch", LABELS) == 1
    assert get("tradebus_strategy_bot_average_missing", LABELS) == 1
    gauges.update([])
    assert get("tradebus_strategy_bot_position_mismatch", LABELS) is None


class FakeJs:
    def __init__(self, info: object | None) -> None:
        self.info = info
        self.asked: list[tuple[str, str]] = []

    async def consumer_info(self, stream: str, consumer: str, timeout: float | None = None):
        self.asked.append((stream, consumer))
        if self.info is None:
            raise nats.errors.TimeoutError
        return self.info


async def test_consumer_lag_gauges_come_from_the_consumer_info() -> None:
    registry = CollectorRegistry()
    metrics = ExecutionMetrics(registry)
    info = SimpleNamespace(num_pending=7, num_ack_pending=3, num_redelivered=None)
    js = FakeJs(info)
    assert await refresh_consumer_lag(js, [UserId("alice"), UserId("bob")], "execution", metrics)
    assert js.asked == [("INTENTS_alice", "execution"), ("INTENTS_bob", "execution")]
    labels = {"consumer": "execution"}
    get = registry.get_sample_value
    assert get("tradebus_execution_consumer_pending_messages", labels) == 14  # summed
    assert get("tradebus_execution_consumer_ack_pending_messages", labels) == 6
    assert get("tradebus_execution_consumer_redelivered_messages", labels) == 0
    # a failed query leaves the last values
    assert not await refresh_consumer_lag(FakeJs(None), [UserId("alice")], "execution", metrics)
    assert get("tradebus_execution_consumer_pending_messages", labels) == 14
    record_consumer_info(
        metrics,
        "execution",
        [SimpleNamespace(num_pending=0, num_ack_pending=0, num_redelivered=1)],
    )
    assert get("tradebus_execution_consumer_redelivered_messages", labels) == 1


def test_a_big_host_refreshes_its_bots_gauges_a_thousand_at_a_time_in_turn() -> None:
    from tests.support.markets import BTCUSDT_MIN, bot_context
    from tests.support.sinks import Capture
    from tradebus.strategies.ladder.bot import LadderBot
    from tradebus.strategies.ladder.params import LadderParams
    from tradebus.strategies.registry import BotSpec
    from tradebus.strategy.host import GAUGE_BOTS_PER_REFRESH, BotRunner, Dispatcher
    from tradebus.strategy.host_metrics import HostMetrics

    registry = CollectorRegistry()
    dispatcher = Dispatcher(Capture(), HostMetrics(registry))
    params = LadderParams(
        total_quote=Decimal(100), order_count=2, max_drop_pct=Decimal(5), take_profit_pct=Decimal(1)
    )
    n = 2 * GAUGE_BOTS_PER_REFRESH + 500
    for i in range(n):
        ctx = bot_context(f"b{i:05d}", "u", "u-paper", "ladder", BTCUSDT_MIN)
        spec = BotSpec(
            id=ctx.bot,
            user=UserId("u"),
            account=AccountId("u-paper"),
            strategy="ladder",
            venue="binance",
        )
        dispatcher.add(BotRunner(LadderBot(ctx, params), spec))

    def exported() -> set[str]:
        return {
            sample.labels["bot"]
            for metric in registry.collect()
            if metric.name == "tradebus_strategy_bot_position"
            for sample in metric.samples
        }

    dispatcher.update_state_gauge()
    assert len(exported()) == GAUGE_BOTS_PER_REFRESH
    assert registry.get_sample_value("tradebus_strategy_bots", {"state": "running"}) == n
    dispatcher.update_state_gauge()
    assert len(exported()) == 2 * GAUGE_BOTS_PER_REFRESH
    dispatcher.update_state_gauge()
    assert len(exported()) == n  # every bot had its turn
    dispatcher.remove("b00000")
    assert len(exported()) == n - 1
