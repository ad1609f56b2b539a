"""tradebus shared library."""
