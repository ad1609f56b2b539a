"""Clocks: the only place services read the time. Times are integer ns since the epoch."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Something that tells the time in integer nanoseconds since the Unix epoch."""

    def now_ns(self) -> int:
        """Current time, ns since the epoch."""
        ...


class LiveClock:
    """Wall-clock time (:func:`time.time_ns`)."""

    def now_ns(self) -> int:
        """Current wall-clock time, ns since the epoch."""
        return time.time_ns()


class ManualClock:
    """A clock that says what it is told (a replay's market time; tests).

    Parameters
    ----------
    now
        The time it starts at, ns since the epoch.
    """

    def __init__(self, now: int = 0) -> None:
        self.now = now

    def now_ns(self) -> int:
        """The time last set, ns since the epoch."""
        return self.now
