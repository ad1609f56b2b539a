"""tradebus strategy: pure strategy cores (no I/O) and the host process that runs them."""
