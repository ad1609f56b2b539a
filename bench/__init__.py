"""tradebus benchmarks: ``python -m bench`` (``make bench``) prints one table of every row.

Benchmarks print figures measured on this machine with the recorded data;
they never assert them (they are not timed tests). Each row has its module,
runnable alone as ``python -m bench.<module>``, whose docstring gives the
method and units: :mod:`bench.floor`, :mod:`bench.feedbench`,
:mod:`bench.tickbench`, :mod:`bench.execbench`, :mod:`bench.reconbench`,
:mod:`bench.enginebench`, :mod:`bench.startup`. :mod:`bench.__main__` runs
them in sequence and :mod:`bench.table` prints the table.
"""
