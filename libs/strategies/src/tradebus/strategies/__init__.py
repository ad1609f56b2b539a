"""tradebus strategies: the pure, deterministic strategy cores and what drives them alike.

``core`` (the :class:`~tradebus.strategies.core.Strategy` contract, ``BotBase``,
``BotState``, ``BotInput``, the order tracker), ``wake`` (the per-market index of
the ticks that can make a bot act), the four cores ``ladder``, ``martingale``,
``spread`` and ``volume`` (each ``params``, ``state``, ``bot``), ``catalog``
(the strategies of the installed entry points ``tradebus.strategies``, users'
plug-ins included, checked at load), ``builtin`` (the four as entry point
objects), ``registry`` (bot specs, a core from a spec) and ``botfile`` (the
layered bot file). No I/O beyond reading a bot file; imports only ``tradebus.common``.
"""
