"""tradebus benchmarks: ``python -m bench`` (``make bench``).

Benchmarks print figures measured on a real local stack; they never assert
them (they are not timed tests) and exit non-zero only when the stack itself
cannot run.

One benchmark for now, :mod:`bench.hostbench`: the recorded Binance feeds
replayed at full speed through marketdata -> NATS -> a strategy host running
1,000 ladder bots (with execution's paper venue closing the loop), reporting
ticks/s and the tick-to-intent latency observed on the bus.
"""
