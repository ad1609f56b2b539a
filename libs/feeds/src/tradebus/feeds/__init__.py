"""tradebus market-data feeds: venue parsers and readers of recorded files; no I/O of their own.

One parser per venue (:mod:`.binance`, :mod:`.backpack`, and :mod:`.ccxt_parser`
for every exchange reached through ccxt), each turning the venue's raw frames
into :class:`~tradebus.common.messages.QuoteTick` / :class:`~tradebus.common.messages.TradeTick`
with a fast path for recorded frames; one reader of recorded files
(:mod:`.readers`). The marketdata service (live feeds, replay) and the
backtest use the same code.
"""
