"""Running the execution core without an event loop (a backtest, the tests' simulation).

The core (:mod:`tradebus.engine.core`) is written against ports whose methods
are coroutines, because in the execution service they do I/O (the Postgres
ledger, a live venue, NATS). Given ports that never wait (the
:class:`~tradebus.engine.store.MemoryStore`, the paper venue, an event sink
that appends to a list), a call of the core is a coroutine that runs to its
end the first time it is stepped: :func:`run_sync` steps it once and returns
its result, with no event loop at all. That is the same code the service
runs, driven synchronously.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class WouldWait(RuntimeError):
    """The coroutine waited on something: a port of a synchronous run that does I/O."""


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """The result of ``coro``, which must finish without waiting.

    Raises
    ------
    WouldWait
        If ``coro`` suspended (it is closed first).
    BaseException
        Whatever ``coro`` raised.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise WouldWait("a synchronous run met a port that waits; give it ports that never wait")
