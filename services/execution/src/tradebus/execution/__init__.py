"""tradebus execution: the only holder of keys, the only venue writer, the only ledger writer."""
