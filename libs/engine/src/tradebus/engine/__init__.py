"""tradebus execution core: intents to venue orders and events, exactly once, with no I/O
of its own (docs/design.md, "Packages").
"""
