"""The paper venue: a deterministic simulated exchange fed by real market data
(STRATEGIES.md, "Paper fill model"); :mod:`.exchange` is its entry point.
"""
