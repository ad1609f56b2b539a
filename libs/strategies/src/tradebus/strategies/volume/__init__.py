"""The ``volume`` strategy (shared/STRATEGIES.md §4): ``params`` (its parameters and the
pricing of a loop's orders), ``state`` (the loops and what a bot remembers) and ``bot``
(:class:`VolumeBot`)."""
