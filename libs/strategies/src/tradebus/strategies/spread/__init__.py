"""The ``spread`` strategy (shared/STRATEGIES.md §3): ``params`` (the two symbols, legs,
entry, adds and exits), ``state`` (what a bot remembers) and ``bot`` (:class:`SpreadBot`)."""
