"""tradebus strategy: the host process that runs many users' bots.

The cores it runs are ``tradebus.strategies``; this package is the runtime only:
dispatch, supervisor, leases, KV, publisher, inputs, control.
"""
