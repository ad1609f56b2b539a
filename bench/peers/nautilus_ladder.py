"""The ladder of docs/strategies.md section 1 in NautilusTrader, timed on the peers' trades.

Standalone: run by the peers' virtualenv's Python (``.tools/peers``, Python
>= 3.12), it imports only nautilus_trader and numpy.

    python nautilus_ladder.py trades.npz '<ladder parameters as JSON>'

prints one JSON line: ``engine``, ``version``, ``events`` (trade ticks fed),
``seconds`` (wall time of ``BacktestEngine.run()``; building the ticks and
the engine is not timed), ``placed``, ``filled`` (orders filled in full;
Nautilus fills a resting order partly when a trade is smaller than it),
``cycles`` (take-profit sells filled), ``rss_mib`` (peak RSS).

Model (NautilusTrader's simulated venue): a BTCUSDT ``CurrencyPair`` (tick
0.01, step 0.00001, fees 10 bps maker / 20 bps taker), a cash account with
10,000 USDT, an L1 book driven by the trades (``trade_execution``), no
latency model. A resting buy fills when a trade reaches its price; the
take-profit sell (a limit at ``floor_tick(p * 0.995)``) is marketable against
the L1 book and fills at once. Ticks carry ``ts_init = ts_event`` = the
receive time. Ladder arithmetic in Decimal, as tradebus's.
"""

import json
import sys
import time
from decimal import ROUND_FLOOR, Decimal

import numpy as np
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import BTC, USDT
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType, OrderSide
from nautilus_trader.model.identifiers import InstrumentId, Symbol, TradeId, Venue
from nautilus_trader.model.instruments import CurrencyPair
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy

VENUE = Venue("BINANCE")
INSTRUMENT_ID = InstrumentId(Symbol("BTCUSDT"), VENUE)


def peak_rss_mib() -> float:
    """This process's peak resident set since it was exec'd (``VmHWM`` of
    ``/proc/self/status``), in MiB. Not ``ru_maxrss``: that survives ``execve`` and so
    starts at the RSS of the process that forked this one (the whole bench's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def floor_to(x: Decimal, unit: Decimal) -> Decimal:
    """``x`` rounded down to a multiple of ``unit``."""
    return (x / unit).to_integral_value(ROUND_FLOOR) * unit


class LadderConfig(StrategyConfig, frozen=True):
    """The ladder's parameters (docs/strategies.md section 1), as text."""

    tick: str
    step: str
    total_quote: str
    order_count: int
    max_drop_pct: str
    increment_pct: str
    take_profit_pct: str
    min_order_quote: str = "10"
    no_fill_restart_minutes: str = "60"


class Ladder(Strategy):
    """One ladder bot: buys below the cycle's start price, sells the position at the take-profit."""

    def __init__(self, config: LadderConfig) -> None:
        super().__init__(config)
        c = config
        self.tick, self.step = Decimal(c.tick), Decimal(c.step)
        self.q, self.n = Decimal(c.total_quote), c.order_count
        self.d, self.i = Decimal(c.max_drop_pct), Decimal(c.increment_pct)
        self.t, self.m = Decimal(c.take_profit_pct), Decimal(c.min_order_quote)
        self.restart_ns = int(Decimal(c.no_fill_restart_minutes) * 60 * 1_000_000_000)
        self.placed = self.filled = self.cycles = 0
        self.buys: list = []
        self.sell = None
        self.position = Decimal(0)
        self.cost = Decimal(0)
        self.any_fill = False
        self.cycle_start = 0
        self.new_cycle = True

    def on_start(self) -> None:
        self.subscribe_trade_ticks(INSTRUMENT_ID)

    def on_order_filled(self, event) -> None:
        done = self.cache.order(event.client_order_id).is_closed
        self.filled += done  # orders filled in full (a trade smaller than the order fills part)
        if event.order_side == OrderSide.BUY:
            qty, px = event.last_qty.as_decimal(), event.last_px.as_decimal()
            self.position += qty
            self.cost += qty * px
            self.any_fill = True
        elif done:
            self.cycles += 1
            self.sell = None
            self.position = self.cost = Decimal(0)
            self.new_cycle = True

    def cancel_buys(self) -> None:
        for o in self.buys:
            if o.is_open:
                self.cancel_order(o)
        self.buys = []

    def on_trade_tick(self, tick: TradeTick) -> None:
        p = tick.price.as_decimal()
        now = tick.ts_init
        if self.new_cycle:
            self.new_cycle = False
            self.start_cycle(p, now)
            return
        if (
            self.sell is None
            and not self.any_fill
            and self.restart_ns > 0
            and now - self.cycle_start >= self.restart_ns
        ):
            self.cancel_buys()
            self.new_cycle = True
            return
        if self.position > 0 and self.sell is None:
            avg = self.cost / self.position
            if (p - avg) / avg * 100 >= self.t:
                self.cancel_buys()
                self.sell = self.order_factory.limit(
                    INSTRUMENT_ID,
                    OrderSide.SELL,
                    Quantity(self.position, 5),
                    Price(floor_to(p * Decimal("0.995"), self.tick), 2),
                )
                self.placed += 1
                self.submit_order(self.sell)

    def start_cycle(self, p0: Decimal, now: int) -> None:
        self.cycle_start, self.any_fill = now, False
        n = self.n
        lowest = p0 * (1 - self.d / 100)
        gap = (p0 - lowest) / n
        r = 1 + self.i / 100
        base = self.q / n if self.i == 0 else self.q * (r - 1) / (r**n - 1)
        base = max(self.m, base)
        scale = min(Decimal(1), self.q / sum(base * r**k for k in range(n)))
        for k in range(n):
            price = floor_to(p0 - gap * (k + 1), self.tick)
            qty = floor_to(base * r**k * scale / price, self.step)
            if price * qty >= self.m:
                order = self.order_factory.limit(
                    INSTRUMENT_ID, OrderSide.BUY, Quantity(qty, 5), Price(price, 2)
                )
                self.buys.append(order)
                self.placed += 1
                self.submit_order(order)


def ticks_of(path: str) -> list[TradeTick]:
    """The trades of ``trades.npz`` as NautilusTrader ticks."""
    z = np.load(path)
    ts, prices, sizes, buyer = z["ts_recv"], z["price"], z["size"], z["buyer_aggressor"]
    out = []
    for k in range(len(ts)):
        t = int(ts[k])
        out.append(
            TradeTick(
                INSTRUMENT_ID,
                Price(float(prices[k]), 2),
                Quantity(float(sizes[k]), 5),
                AggressorSide.BUYER if buyer[k] else AggressorSide.SELLER,
                TradeId(str(k)),
                t,
                t,
            )
        )
    return out


def main() -> None:
    from importlib.metadata import version

    params = json.loads(sys.argv[2])
    ticks = ticks_of(sys.argv[1])
    engine = BacktestEngine(
        BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR", bypass_logging=True))
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        starting_balances=[Money(10_000, USDT), Money(0, BTC)],
        base_currency=None,
    )
    engine.add_instrument(
        CurrencyPair(
            INSTRUMENT_ID,
            Symbol("BTCUSDT"),
            BTC,
            USDT,
            2,
            5,
            Price.from_str(params["tick_size"]),
            Quantity.from_str(params["step_size"]),
            0,
            0,
            maker_fee=Decimal(params["maker_fee_bps"]) / 10_000,
            taker_fee=Decimal(params["taker_fee_bps"]) / 10_000,
        )
    )
    engine.add_data(ticks)
    strategy = Ladder(
        LadderConfig(
            tick=params["tick_size"],
            step=params["step_size"],
            total_quote=params["total_quote"],
            order_count=int(params["order_count"]),
            max_drop_pct=params["max_drop_pct"],
            increment_pct=params["increment_pct"],
            take_profit_pct=params["take_profit_pct"],
            min_order_quote=params.get("min_order_quote", "10"),
            no_fill_restart_minutes=params.get("no_fill_restart_minutes", "60"),
        )
    )
    engine.add_strategy(strategy)
    started = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - started
    out = {
        "engine": "nautilus_trader",
        "version": version("nautilus_trader"),
        "events": len(ticks),
        "seconds": seconds,
        "placed": strategy.placed,
        "filled": strategy.filled,
        "cycles": strategy.cycles,
        "rss_mib": peak_rss_mib(),
    }
    engine.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
