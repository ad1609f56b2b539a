"""``tradebus backtest``: replay recorded market data through strategies offline."""
