"""A dry run trades exactly as ``tradebus backtest`` on the same ticks.

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
from tradebus.backtest.engine import Backtest
from tradebus.backtest.setup import VENUE, make_setup
from tradebus.common.messages import QuoteTick, TradeTick
from tradebus.engine.venue import VenueFill
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
