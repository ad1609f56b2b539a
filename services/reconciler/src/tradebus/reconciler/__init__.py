"""tradebus reconciler: compares venue balances with the ledger, per account and asset."""
