"""The ``ladder`` strategy (shared/STRATEGIES.md §1): ``params`` (its parameters and buy
levels), ``state`` (what a bot remembers) and ``bot`` (:class:`LadderBot`, how it trades)."""
