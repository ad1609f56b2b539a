"""tradebus backtests: a strategy core and the execution service's own core, over recorded
market data, in one process (:mod:`.engine`); no NATS, no database, no service.
"""
