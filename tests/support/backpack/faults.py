"""Faults a test can switch on in the local Backpack server, and the request log.

Each fault is one-shot or counted, and consumed by the requests (or fills)
it applies to, so a test states exactly what goes wrong and when:

* :class:`InjectedError` — answer the next ``count`` matching requests with
  an error *instead of* processing them (HTTP 429 ``TOO_MANY_REQUESTS``,
  400 ``INSUFFICIENT_FUNDS``, 503 ``MAINTENANCE``, ...);
* :class:`Stall` — process the next ``count`` matching requests (the order
  *is* executed, cancelled, ...) but hold the answer for ``seconds`` (past
  the client's timeout), or until the server stops when ``seconds`` is None,
  then drop the connection without an answer;
* WebSocket faults live on the server (``drop_ws``, ``drop_ws_on_fill``,
  ``resend_ws_frames``, ``ws_resend_on_subscribe``).

``match`` selects requests by instruction (``orderExecute``) or by path
(``/api/v1/depth``); None matches every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class InjectedError:
    """Answer ``count`` matching requests with ``status`` and ``{"code", "message"}``."""

    status: int
    code: str
    message: str
    count: int = 1
    match: str | None = None


@dataclass
class Stall:
    """Hold the answer to ``count`` matching requests (after processing them)."""

    seconds: float | None = None
    count: int = 1
    match: str | None = None


@dataclass
class RequestRecord:
    """One HTTP request as the server saw and answered it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    instruction: str | None
    api_key: str | None
    status: int | None = None
    """HTTP status answered; None while held by a :class:`Stall`, or if never answered."""
    outcome: str = ""
    """``ok``, ``error`` (refused by the exchange), ``auth`` (refused signature),
    ``injected`` (an :class:`InjectedError`), ``stalled`` (answer withheld)."""
    error: str | None = None
    """The error code or message answered, if any."""


def _matches(match: str | None, instruction: str | None, path: str) -> bool:
    return match is None or match in (instruction, path)


@dataclass
class Faults:
    """The switched-on REST faults, consumed in the order they were added."""

    errors: list[InjectedError] = field(default_factory=list)
    stalls: list[Stall] = field(default_factory=list)

    def take_error(self, instruction: str | None, path: str) -> InjectedError | None:
        """The injected error for this request, if any (counts it down)."""
        for fault in self.errors:
            if fault.count > 0 and _matches(fault.match, instruction, path):
                fault.count -= 1
                return fault
        return None

    def take_stall(self, instruction: str | None, path: str) -> Stall | None:
        """The stall for this request, if any (counts it down)."""
        for fault in self.stalls:
            if fault.count > 0 and _matches(fault.match, instruction, path):
                fault.count -= 1
                return fault
        return None
