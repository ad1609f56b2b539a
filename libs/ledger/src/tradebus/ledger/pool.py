"""Connections to the ledger: one :class:`asyncpg.Pool` per process, set up once.

Every reader and writer of the ledger (:class:`tradebus.ledger.store.Ledger`,
:class:`tradebus.ledger.history.LedgerHistory`,
:class:`tradebus.ledger.reconciliation.ReconciliationLedger`) runs its
statements on a pool from :func:`create_pool`.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg


async def init_connection(conn: asyncpg.Connection) -> None:
    """Read NUMERIC as text, so ``60000`` comes back as ``Decimal("60000")``, not ``6E+4``.

    Pass as ``init=`` to :func:`asyncpg.create_pool`.
    """
    await conn.set_type_codec(
        "numeric", encoder=str, decoder=Decimal, schema="pg_catalog", format="text"
    )


SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}
"""Session settings of every ledger connection.

Each execution of a prepared statement is planned for its values and the
table as it is now. A generic plan is fixed once, after five executions: on
a young ledger (a few hundred orders, no statistics yet) it chose the
``orders_by_source`` index for a primary-key lookup of an order, so every
later lookup scanned all of that user's orders (1 ms at 25,000 orders, and
growing). The ledger's statements are few and cheap to plan.
"""


async def keep_session(conn: asyncpg.Connection) -> None:
    """A pool ``reset`` that sends nothing: asyncpg has already rolled back an open
    transaction (``Connection._reset``) before it calls this.

    asyncpg's default reset runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` on every release: one more round trip after each
    statement of ``Pool.fetch``/``execute``. A process whose statements leave
    no session state behind (no ``LISTEN``, ``SET``, cursor or advisory lock held
    past its ``finally``) can skip it.
    """


async def create_pool(
    url: str, min_size: int = 1, max_size: int = 4, light_reset: bool = False
) -> asyncpg.Pool:
    """An asyncpg pool to the ledger with :func:`init_connection` and
    :data:`SERVER_SETTINGS` applied; ``light_reset``: released connections are not
    reset on the server (:func:`keep_session`)."""
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        server_settings=SERVER_SETTINGS,
        reset=keep_session if light_reset else None,
    )
