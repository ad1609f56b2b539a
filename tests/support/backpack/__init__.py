"""A protocol-faithful local Backpack exchange (REST + WebSocket) for tests.

See :mod:`tests.support.backpack.server` for the entry point, and the module
docstrings of ``auth`` (signing), ``rest`` and ``ws`` (the endpoints, what
they mirror), ``engine`` (matching, funds), ``faults``, and ``recorded``
(``binance_ticks``: shared/data captures to replay, kept out of this package's
imports so the server does not depend on the marketdata parser).
"""
