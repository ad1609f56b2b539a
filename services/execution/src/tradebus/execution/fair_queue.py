"""The intents execution holds, in per-account lanes, taken fairly across users (pure).

Execution fetches each user's ``INTENTS_<user>`` stream on its own and puts
every message it fetched here, in the lane of the account it names (within
that user's lanes: an intent naming another user's account is refused, in
the sender's own lane of that name), or in the user's lane ``""`` if it
names none (it cannot be decoded). What it hands the engine next is
:meth:`FairQueue.batch`:

* **per-account order**: a lane is first in, first out; an intent is never
  taken before the intents ahead of it in its lane;
* **isolation**: a lane that must wait (its live venue is connecting or
  down, rate-limited, or its head failed unexpectedly) is *held* until a
  time (:meth:`FairQueue.hold`); the other lanes, the same user's other
  accounts included, are taken meanwhile;
* **fairness**: a batch takes one intent from each user with something
  ready, then a second from each, and so on (round-robin over users, and
  over each user's lanes), and the next batch starts with the next user, so
  one user's backlog of any size delays another user's intent by at most one
  round, not by the backlog.

The engine handles a leading part of the batch (a group of places, or the
first intent alone) and the caller :meth:`FairQueue.remove` s what was
handled; the rest stay where they were, still in lane order. Nothing here
does I/O: messages are acked, held in progress and dead-lettered by
:mod:`tradebus.execution.intent_consumer`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from tradebus.engine.intake import Admitted, Refused

DOOR_LANE = ""
"""The lane of a user's intents refused at the door (no account to wait for)."""


class Delivery:
    """One fetched JetStream message of ``INTENTS_<user>`` and what execution made of it.

    Attributes
    ----------
    msg
        The nats-py message (``ack``, ``in_progress``, ``term``); replaced by a
        redelivery of the same stream sequence.
    door
        The intent admitted, or refused at the door.
    user
        The stream's user.
    lane
        The account it names (:data:`DOOR_LANE` if it names none).
    seq
        Its stream sequence in ``INTENTS_<user>``.
    attempts
        How many times handling it raised an unexpected error.
    """

    __slots__ = ("attempts", "door", "lane", "msg", "seq", "user")

    def __init__(self, msg: Any, door: Admitted | Refused, user: str, seq: int) -> None:
        self.msg = msg
        self.door = door
        self.user = user
        self.lane: str
        if isinstance(door, Admitted):
            self.lane = door.account.id
        else:  # a refusal that names an account waits behind that account's intents
            self.lane = door.account or DOOR_LANE
        self.seq = seq
        self.attempts = 0

    def __repr__(self) -> str:
        return f"Delivery({self.user!r}, {self.lane!r}, seq={self.seq})"


class _UserLanes:
    """One user's lanes (account -> deliveries in stream order) and their rotation."""

    __slots__ = ("count", "lanes", "order")

    def __init__(self) -> None:
        self.lanes: dict[str, deque[Delivery]] = {}
        self.order: deque[str] = deque()
        self.count = 0


class FairQueue:
    """Held deliveries by user and lane (see the module docstring).

    Times (``now``, ``until``) are monotonic seconds of the caller's clock.
    """

    def __init__(self) -> None:
        self._users: dict[str, _UserLanes] = {}
        self._turn: deque[str] = deque()
        self._held: dict[tuple[str, str], float] = {}
        self._by_seq: dict[tuple[str, int], Delivery] = {}

    def __len__(self) -> int:
        return len(self._by_seq)

    def count(self, user: str) -> int:
        """How many deliveries of ``user`` are held (the per-user bound of fetching)."""
        lanes = self._users.get(user)
        return lanes.count if lanes is not None else 0

    def add(self, delivery: Delivery) -> bool:
        """Queue ``delivery`` at the end of its lane; False if its stream sequence is
        already held (a redelivery: the held one takes the new message, keeps its place)."""
        key = (delivery.user, delivery.seq)
        held = self._by_seq.get(key)
        if held is not None:
            held.msg = delivery.msg
            return False
        self._by_seq[key] = delivery
        user = self._users.get(delivery.user)
        if user is None:
            user = self._users[delivery.user] = _UserLanes()
            self._turn.append(delivery.user)
        lane = user.lanes.get(delivery.lane)
        if lane is None:
            lane = user.lanes[delivery.lane] = deque()
            user.order.append(delivery.lane)
        lane.append(delivery)
        user.count += 1
        return True

    def find(self, user: str, seq: int) -> Delivery | None:
        """The held delivery of ``user``'s stream sequence ``seq``, or None."""
        return self._by_seq.get((user, seq))

    def hold(self, user: str, lane: str, until: float) -> None:
        """Take nothing from ``user``'s ``lane`` before ``until``."""
        self._held[(user, lane)] = until

    def held_until(self, user: str, lane: str) -> float | None:
        """When the hold of ``user``'s ``lane`` ends, or None if it is not held."""
        return self._held.get((user, lane))

    def next_release(self) -> float | None:
        """The earliest end of a hold, or None if no lane is held."""
        return min(self._held.values(), default=None)

    def users_ready(self, now: float) -> int:
        """How many users have an intent in a lane that is not held past ``now``."""
        held = self._held
        return sum(
            1
            for name, user in self._users.items()
            if any(held.get((name, lane), 0.0) <= now for lane in user.lanes)
        )

    def batch(self, limit: int, now: float) -> list[Delivery]:
        """Up to ``limit`` deliveries, round-robin over users and their lanes, each lane's
        in order, none from a lane held past ``now`` (the module docstring)."""
        for key, until in list(self._held.items()):
            if until <= now:
                del self._held[key]
        out: list[Delivery] = []
        taken: dict[tuple[str, str], int] = {}
        users = list(self._turn)
        more = True
        while more and len(out) < limit:
            more = False
            for name in users:
                picked = self._pick(name, taken)
                if picked is None:
                    continue
                out.append(picked)
                more = True
                if len(out) >= limit:
                    break
        if self._turn:
            self._turn.rotate(-1)
        return out

    def _pick(self, name: str, taken: dict[tuple[str, str], int]) -> Delivery | None:
        """The next delivery of user ``name``'s next lane with one left (rotating its lanes)."""
        user = self._users[name]
        for _ in range(len(user.order)):
            lane_name = user.order[0]
            user.order.rotate(-1)
            if (name, lane_name) in self._held:
                continue
            lane = user.lanes[lane_name]
            i = taken.get((name, lane_name), 0)
            if i < len(lane):
                taken[(name, lane_name)] = i + 1
                return lane[i]
        return None

    def remove(self, deliveries: list[Delivery]) -> None:
        """Forget handled deliveries (each is at the front of its lane, in batch order)."""
        for delivery in deliveries:
            if self._by_seq.pop((delivery.user, delivery.seq), None) is None:
                continue
            user = self._users[delivery.user]
            lane = user.lanes[delivery.lane]
            if lane[0] is delivery:
                lane.popleft()
            else:
                lane.remove(delivery)
            user.count -= 1
            if not lane:
                del user.lanes[delivery.lane]
                user.order.remove(delivery.lane)
                self._held.pop((delivery.user, delivery.lane), None)
            if not user.lanes:
                del self._users[delivery.user]
                self._turn.remove(delivery.user)

    def __iter__(self) -> Iterator[Delivery]:
        """Every held delivery (to keep them in progress at JetStream)."""
        return iter(list(self._by_seq.values()))
