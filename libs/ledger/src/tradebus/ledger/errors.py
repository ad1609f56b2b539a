"""What the Postgres ledger's failures mean to its callers, named once.

* :data:`LEDGER_UNAVAILABLE`: the database cannot be reached or answered
  nothing usable (a connection error, a restart under way). Nothing was
  written; try again later. The execution core counts these among its
  transient errors (:data:`tradebus.engine.orders.TRANSIENT_ERRORS`).
* :data:`LEDGER_REFUSED_VALUE`: the database refused a value it cannot hold
  (a number beyond NUMERIC, a NUL in text). The intent carrying it is bad:
  refused, never retried.
"""

from __future__ import annotations

import asyncpg

LEDGER_UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)
LEDGER_REFUSED_VALUE: tuple[type[Exception], ...] = (asyncpg.DataError,)
