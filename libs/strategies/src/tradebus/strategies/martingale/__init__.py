"""The ``martingale`` strategy (shared/STRATEGIES.md §2): ``params`` (its parameters and
the pure planning of a cycle's orders), ``state`` (what a bot remembers, its status block)
and ``bot`` (:class:`MartingaleBot`, how it trades)."""
