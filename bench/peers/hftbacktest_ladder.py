"""The ladder of docs/strategies.md section 1 in hftbacktest 2.4 (numba), on the peers' trades.

Standalone: run by the peers' virtualenv's Python (``.tools/peers``), it
imports only hftbacktest and numpy (numba comes with hftbacktest).

    python hftbacktest_ladder.py hftbacktest.npy '<ladder parameters as JSON>'

prints one JSON line: ``engine``, ``version``, ``events`` (rows of the
input), ``seconds`` (wall time of building the backtest and running the
strategy to the end, after a warm-up run on the first 2,000 rows that
compiles the numba code), ``placed`` (orders submitted), ``filled`` (orders
seen FILLED), ``cycles`` (take-profit sells filled), ``rss_mib`` (peak RSS).

Model (hftbacktest's, as close to tradebus's paper venue as it allows on
trades only): no order book (the input holds trades only), zero feed and
order latency, ``no_partial_fill_exchange`` with the risk-averse queue
model: a resting buy fills when a seller-initiated trade prints below it, a
resting sell when a buyer-initiated trade prints above it. The take-profit
sell is a GTC limit at ``floor_tick(p * 0.995)``: without a book it cannot be
matched as taker, so it rests and fills at its price on the next buyer's
trade above it (tradebus fills it at the next trade's price). Fees: 10 bps
maker, 20 bps taker of the traded value. Market time is the trade's receive
time. Ladder arithmetic in float64 with ``floor`` to the tick and step.
"""

import json
import sys
import time

import numpy as np
from hftbacktest import (
    FILLED,
    GTC,
    LIMIT,
    BacktestAsset,
    HashMapMarketDepthBacktest,
)
from numba import njit

TIMEOUT_NS = 3_600_000_000_000


@njit
def floor_to(x, unit):
    """``x`` rounded down to a multiple of ``unit`` (a small epsilon absorbs float error)."""
    return np.floor(x / unit + 1e-9) * unit


@njit
def ladder(hbt, tick, step, total_quote, n, drop_pct, inc_pct, tp_pct, min_quote, restart_ns):
    """Run the ladder to the end of the data; (placed, filled, cycles, trades seen)."""
    ids = np.zeros(n, np.uint64)
    qtys = np.zeros(n, np.float64)
    prices = np.zeros(n, np.float64)
    live = np.zeros(n, np.bool_)
    next_id = 1
    placed = 0
    filled = 0
    cycles = 0
    seen = 0
    started = False
    cycle_start = 0
    position = 0.0
    cost = 0.0
    any_fill = False
    sell_id = np.uint64(0)
    selling = False
    restart_pending = False
    r = 1.0 + inc_pct / 100.0
    while True:
        rc = hbt.wait_next_feed(False, TIMEOUT_NS)
        if rc == 1:
            break
        trades = hbt.last_trades(0)
        if len(trades) == 0:
            continue
        seen += len(trades)
        p = trades[len(trades) - 1].px
        now = hbt.current_timestamp
        hbt.clear_last_trades(0)
        orders = hbt.orders(0)
        # step 1: the fills of this event
        for i in range(n):
            if live[i]:
                o = orders.get(ids[i])
                if o is not None and o.status == FILLED:
                    live[i] = False
                    filled += 1
                    any_fill = True
                    position += o.exec_qty
                    cost += o.exec_qty * o.exec_price
        new_cycle = False
        if selling:
            o = orders.get(sell_id)
            if o is not None and o.status == FILLED:
                filled += 1
                cycles += 1
                selling = False
                position = 0.0
                cost = 0.0
                new_cycle = True
        hbt.clear_inactive_orders(0)
        # step 2: the strategy sees the event
        if restart_pending:
            restart_pending = False
            new_cycle = True
        if not started:
            started = True
            new_cycle = True
        if (
            not new_cycle
            and not selling
            and not any_fill
            and restart_ns > 0
            and now - cycle_start >= restart_ns
        ):
            for i in range(n):
                if live[i]:
                    hbt.cancel(0, ids[i], False)
                    live[i] = False
            restart_pending = True
            continue
        if new_cycle:
            cycle_start = now
            any_fill = False
            lowest = p * (1.0 - drop_pct / 100.0)
            gap = (p - lowest) / n
            base = total_quote / n if inc_pct == 0 else total_quote * (r - 1.0) / (r**n - 1.0)
            base = max(min_quote, base)
            s = 0.0
            for i in range(n):
                s += base * r**i
            scale = min(1.0, total_quote / s)
            for i in range(n):
                price = floor_to(p - gap * (i + 1), tick)
                qty = floor_to(base * r**i * scale / price, step)
                prices[i] = price
                qtys[i] = qty
                if price * qty >= min_quote:
                    ids[i] = next_id
                    next_id += 1
                    hbt.submit_buy_order(0, ids[i], price, qty, GTC, LIMIT, False)
                    live[i] = True
                    placed += 1
            continue
        if position > 0 and not selling:
            avg = cost / position
            if (p - avg) / avg * 100.0 >= tp_pct:
                for i in range(n):
                    if live[i]:
                        hbt.cancel(0, ids[i], False)
                        live[i] = False
                sell_id = np.uint64(next_id)
                next_id += 1
                qty = np.round(position / step) * step
                hbt.submit_sell_order(0, sell_id, floor_to(p * 0.995, tick), qty, GTC, LIMIT, False)
                placed += 1
                selling = True
    return placed, filled, cycles, seen


def backtest(rows, tick, step):
    """An hftbacktest over ``rows`` with the module docstring's model."""
    asset = (
        BacktestAsset()
        .data(rows)
        .linear_asset(1.0)
        .constant_order_latency(0, 0)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.001, 0.002)
        .tick_size(tick)
        .lot_size(step)
        .last_trades_capacity(10_000)
    )
    return HashMapMarketDepthBacktest([asset])


def peak_rss_mib() -> float:
    """This process's peak resident set since it was exec'd (``VmHWM`` of
    ``/proc/self/status``), in MiB. Not ``ru_maxrss``: that survives ``execve`` and so
    starts at the RSS of the process that forked this one (the whole bench's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run(rows, params):
    """Build and run; the result tuple of :func:`ladder`."""
    tick, step = float(params["tick_size"]), float(params["step_size"])
    hbt = backtest(rows, tick, step)
    out = ladder(
        hbt,
        tick,
        step,
        float(params["total_quote"]),
        int(params["order_count"]),
        float(params["max_drop_pct"]),
        float(params["increment_pct"]),
        float(params["take_profit_pct"]),
        float(params.get("min_order_quote", "10")),
        int(float(params.get("no_fill_restart_minutes", "60")) * 60 * 1_000_000_000),
    )
    hbt.close()
    return out


def main():
    from importlib.metadata import version

    rows = np.load(sys.argv[1])
    params = json.loads(sys.argv[2])
    run(rows[:2000].copy(), params)  # compile
    started = time.perf_counter()
    placed, filled, cycles, seen = run(rows, params)
    seconds = time.perf_counter() - started
    out = {
        "engine": "hftbacktest",
        "version": version("hftbacktest"),
        "events": len(rows),
        "trades_seen": int(seen),
        "seconds": seconds,
        "placed": int(placed),
        "filled": int(filled),
        "cycles": int(cycles),
        "rss_mib": peak_rss_mib(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
