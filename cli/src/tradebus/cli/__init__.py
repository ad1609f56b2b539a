"""tradebus operator CLI."""
