"""Read-only reports from the ledger for people: history, P&L, CSV export.

* :mod:`.scope`: whose rows a report reads (a :data:`~.scope.UserId` or
  :data:`~.scope.ALL_USERS`), the argument errors, :class:`~.scope.Page` and
  its opaque keyset cursor;
* :mod:`.history`: pages of orders and fills (:func:`~.history.orders_page`,
  :func:`~.history.fills_page`);
* :mod:`.pnl`: position and realized / unrealized P&L per bot or account and
  market, and a bot's P&L over time for charts (average cost,
  :class:`tradebus.common.positions.Position`);
* :mod:`.export`: any of their records as CSV text, streamed.

Everything here only reads; the gateway's routes and the CLI's summary call it.
"""
