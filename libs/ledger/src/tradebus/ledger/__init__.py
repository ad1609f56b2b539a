"""tradebus ledger: the Postgres record of accounts, orders, fills and balances."""
