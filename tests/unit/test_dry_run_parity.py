"""A dry run trades exactly as ``tradebus backtest`` on the same ticks, on its own wallet.

The strategy host's dispatcher runs a dry-run ladder (``execute_trades: false``:
its orders go to its simulated venue, :mod:`tradebus.strategy.dryrun`) over
recorded BTCUSDT ticks; the backtest runs the same ladder, wallet and fees over
the same ticks. Both execute on the engine's paper venue by the paper fill model,
so they must make the same fills, in the same order, and end with the same
position and realized P&L. Intents go nowhere else: the host's sink gets none.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
from prometheus_client import CollectorRegistry

from tests.support.markets import BTCUSDT_MIN
from tests.support.sinks import Capture
from tests.support.ticks import trade
from tradebus.backtest.engine import Backtest
from tradebus.backtest.setup import VENUE, make_setup
from tradebus.common.ids import AccountId, BotId, UserId
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import AccountBalances, AssetBalance, QuoteTick, TradeTick
from tradebus.engine.venue import VenueFill
from tradebus.strategies.registry import BotSpec
from tradebus.strategy.host import Dispatcher
from tradebus.strategy.host_metrics import HostMetrics
from tradebus.strategy.supervisor import build_runner

LADDER = {
    "total_quote": "1000",
    "order_count": 4,
    "max_drop_pct": "0.05",
    "take_profit_pct": "0.01",
}


def test_a_dry_run_fills_exactly_as_the_backtest(
    btc_ticks: list[TradeTick | QuoteTick],
) -> None:
    ticks = [msgspec.structs.replace(t, venue=VENUE) for t in btc_ticks if t.symbol == "BTCUSDT"]
    market = {k: str(getattr(BTCUSDT_MIN, k)) for k in ("tick_size", "step_size", "min_notional")}
    setup = make_setup(
        "ladder",
        {
            **LADDER,
            **market,
            "symbol": "BTCUSDT",
            "balances": {"USDT": "10000"},
            "maker_fee_bps": "10",
            "taker_fee_bps": "10",
        },
    )
    backtest = Backtest(setup)
    backtest.run(ticks)

    spec = msgspec.structs.replace(
        setup.spec, execute_trades=False, dry_run_wallet={"USDT": Decimal(10000)}
    )
    sink = Capture()
    dispatcher = Dispatcher(sink, HostMetrics(CollectorRegistry()))
    runner = build_runner(spec, setup.catalog, 1, lambda subject, payload: None)
    dispatcher.add(runner)
    for tick in ticks:
        dispatcher.on_tick(tick)
    assert runner.dry is not None

    def fills(made: list[VenueFill]) -> list[tuple[str, str, Decimal, Decimal, Decimal]]:
        return [(f.intent_id, f.side, f.price, f.qty, f.fee) for f in made]

    expected = fills(backtest.desk.fills)
    assert len(expected) >= 8, "the data should make the ladder trade"
    assert fills(runner.dry.desk.fills) == expected
    dry, reference = runner.status("h"), backtest.bot.status()
    assert (dry.position, dry.realized_pnl, dry.cycles_completed) == (
        reference.position,
        reference.realized_pnl,
        reference.cycles_completed,
    )
    assert dry.dry_run and dry.details["dry_run_fills"] == len(expected)
    assert sink.intents == []  # nothing left the host


def test_a_dry_run_martingale_checks_its_simulated_wallet_not_the_account() -> None:
    """A core that takes balances (martingale's worst-case check, STRATEGIES.md §2) is
    given its simulated account's, whatever the real account holds."""
    catalog = MarketCatalog({"binance": [BTCUSDT_MIN]})
    spec = BotSpec(
        id=BotId("bob-mg"),
        user=UserId("bob"),
        account=AccountId("bob-live"),
        strategy="martingale",
        venue="binance",
        symbol="BTCUSDT",
        params={
            "base_quote": "100",
            "safety_quote": "100",
            "max_safety_orders": 2,
            "price_deviation_pct": "1",
            "take_profit_pct": "1",
        },
        execute_trades=False,
        dry_run_wallet={"USDT": Decimal(500)},
    )
    sink = Capture()
    dispatcher = Dispatcher(sink, HostMetrics(CollectorRegistry()))
    runner = build_runner(spec, catalog, 1, lambda subject, payload: None)
    dispatcher.add(runner)
    live = AccountId("bob-live")
    empty = AccountBalances(account=live, venue="backpack", balances=[], ledger_watermark=0)
    dispatcher.on_balances(runner, empty)
    assert runner.core.state.phase == "waiting"  # 500 USDT simulated >= 300 worst case
    dispatcher.on_tick(trade("60000", 1, "BTCUSDT"))
    assert runner.status("h").details["dry_run_intents"] == 1  # the base order, simulated
    assert sink.intents == []

    poor = msgspec.structs.replace(spec, id=BotId("bob-mg2"), dry_run_wallet={"USDT": Decimal(1)})
    runner = build_runner(poor, catalog, 1, lambda subject, payload: None)
    dispatcher.add(runner)
    plenty = Decimal(10**6)
    usdt = AssetBalance(asset="USDT", free=plenty, locked=Decimal(0), total=plenty)
    rich = AccountBalances(account=live, venue="backpack", balances=[usdt], ledger_watermark=0)
    dispatcher.on_balances(runner, rich)
    assert runner.core.state.phase == "failed"
    assert "exceeds the free balance 1 USDT" in (runner.status("h").error or "")
