"""tradebus marketdata: one connection per venue, ticks on ``md.quote.*`` / ``md.trade.*``."""
