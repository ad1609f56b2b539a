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
    """A clock that only moves when told to; for tests and replays."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        """The time last set."""
        return self._now

    def set_ns(self, value: int) -> None:
        """Move the clock to ``value`` (ns); it never moves backwards.

        Raises
        ------
        ValueError
            If ``value`` is before the current time.
        """
        if value < self._now:
            raise ValueError(f"clock cannot move backwards: {value} < {self._now}")
        self._now = value

    def advance_ns(self, delta: int) -> None:
        """Move the clock forward by ``delta`` ns."""
        self.set_ns(self._now + delta)
