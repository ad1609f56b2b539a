"""A strategy host's intent sink for tests without a bus."""

from __future__ import annotations

from tradebus.common.messages import Intent


class Capture:
    """An :class:`~tradebus.strategy.host.IntentSink` that keeps what it is given:
    ``intents`` as ``(subject, intent)`` in order, ``states`` the last snapshot per bot."""

    def __init__(self) -> None:
        self.intents: list[tuple[str, Intent]] = []
        self.states: dict[str, bytes] = {}

    def submit(self, subject: str, intent: Intent, tick_ts_init: int | None) -> None:
        self.intents.append((subject, intent))

    def put_state(self, bot: str, record: bytes) -> None:
        self.states[bot] = record
