"""Notices collected per user and sent at most once per window (pure).

Fills can come many a second (a grid filling a ladder); a chat channel must not
get one message per fill. Notices wait in a user's outbox; every window
(``TRADEBUS_BATCH_SECONDS``) :meth:`Outbox.drain` makes one message per user who
has any: the notice itself when there is one, else a digest with a line per notice
(the first :data:`MAX_DIGEST_LINES`, then how many more).
"""

from __future__ import annotations

from collections import defaultdict

import msgspec

from tradebus.notify.events import WARNING_KINDS, Notice

MAX_DIGEST_LINES = 20
"""Lines of a digest written out; the rest are counted."""
MAX_PENDING = 1000
"""Notices one user's outbox keeps between two drains; beyond, they are only counted."""

KIND_TITLES = {
    "fill": "fill",
    "take_profit": "take-profit",
    "halted": "account halted",
    "drift": "drift found",
    "killswitch": "kill switch engaged",
    "bot_failed": "bot failed",
}


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One message to send to every channel of ``user``: ``title``, ``body`` and the
    Apprise notify type (``info`` or ``warning``); ``notices`` it holds."""

    user: str
    title: str
    body: str
    notify_type: str
    notices: int


class Outbox:
    """Per-user queues of notices (module docstring)."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._pending: dict[str, list[Notice]] = defaultdict(list)
        self._dropped: dict[str, int] = defaultdict(int)
        self._max = max_pending

    def add(self, notice: Notice) -> None:
        """Queue ``notice`` for its user (counted only, once the queue is full)."""
        queue = self._pending[notice.user]
        if len(queue) < self._max:
            queue.append(notice)
        else:
            self._dropped[notice.user] += 1

    def pending(self) -> int:
        """Notices waiting, every user together."""
        return sum(len(q) for q in self._pending.values())

    def drain(self) -> list[Message]:
        """One message per user with notices waiting (module docstring); empties the
        outbox."""
        messages = [
            digest(user, queue, self._dropped.get(user, 0))
            for user, queue in self._pending.items()
            if queue
        ]
        self._pending.clear()
        self._dropped.clear()
        return messages


def digest(user: str, notices: list[Notice], dropped: int = 0) -> Message:
    """The message of ``notices`` (all of ``user``): the notice itself when alone, else
    ``tradebus · alice · 12 events (9 fills, 3 take-profits)`` with a line each."""
    warn = any(n.kind in WARNING_KINDS for n in notices)
    notify_type = "warning" if warn else "info"
    if len(notices) == 1 and not dropped:
        (only,) = notices
        title = f"tradebus · {KIND_TITLES.get(only.kind, only.kind)}"
        return Message(user=user, title=title, body=only.text, notify_type=notify_type, notices=1)
    counts: dict[str, int] = defaultdict(int)
    for n in notices:
        counts[KIND_TITLES.get(n.kind, n.kind)] += 1
    total = len(notices) + dropped
    parts = ", ".join(f"{c} × {k}" for k, c in counts.items())
    title = f"tradebus · {user} · {total} events ({parts})"
    lines = [n.text for n in notices[:MAX_DIGEST_LINES]]
    more = total - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    return Message(
        user=user, title=title, body="\n".join(lines), notify_type=notify_type, notices=total
    )
