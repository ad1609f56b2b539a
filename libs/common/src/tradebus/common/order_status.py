"""The one place that decides whether an order may change status.

An order's life at execution (the ledger's ``orders.status``, the in-memory
store of a backtest) is this state machine (:data:`TRANSITIONS`); nothing
else sets a status:

* ``new``: its row is written before the venue is asked;
* ``new`` -> ``accepted`` (the venue took it), ``rejected`` (the venue
  refused it, or its account halted), ``unknown`` (no answer: resolved by
  asking the venue for its client id), or ``partially_filled``/``filled`` (a
  fill booked before the acceptance was);
* ``unknown`` -> ``accepted``, ``rejected``, ``partially_filled``, ``filled``;
* ``accepted``/``partially_filled`` -> ``partially_filled``, ``filled``,
  ``canceled``.

``filled``, ``canceled`` and ``rejected`` are terminal. A fill of an order
that is already terminal (a fill the venue reports after the cancel was
confirmed: the cancel lost the race) is booked, its quantity counts, and the
status stays.

Stores apply it as compare-and-set: a move is written only from one of
:func:`sources` of the new status, so a late answer (an ``accepted`` after the
fill) changes nothing. :func:`check` raises for a move the table does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum


class OrderStatus(StrEnum):
    """An order's status at execution (values as stored in the ledger)."""

    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


S = OrderStatus
TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.ACCEPTED, S.REJECTED, S.UNKNOWN, S.PARTIALLY_FILLED, S.FILLED}),
    S.UNKNOWN: frozenset({S.ACCEPTED, S.REJECTED, S.PARTIALLY_FILLED, S.FILLED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
}
"""Status -> the statuses it may move to."""

OPEN: frozenset[OrderStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if nxt)
"""Statuses of an order that may still change (new, unknown, accepted, partially filled)."""
TERMINAL: frozenset[OrderStatus] = frozenset(TRANSITIONS) - OPEN
CANCELABLE: frozenset[OrderStatus] = frozenset(
    s for s, nxt in TRANSITIONS.items() if S.CANCELED in nxt
)
"""Statuses from which a cancel can end an order (the venue has it: accepted, partially filled)."""


class InvalidTransition(ValueError):
    """A status change the table does not allow; names both statuses."""


def can_become(old: str, new: str) -> bool:
    """True if an order in ``old`` may move to ``new``."""
    return OrderStatus(new) in TRANSITIONS[OrderStatus(old)]


def check(old: str, new: str) -> OrderStatus:
    """``new`` if an order in ``old`` may move there.

    Raises
    ------
    InvalidTransition
        If the table has no such move.
    """
    if not can_become(old, new):
        raise InvalidTransition(f"an order that is {old} cannot become {new}")
    return OrderStatus(new)


def sources(new: str) -> tuple[str, ...]:
    """Every status from which an order may move to ``new`` (a store's compare-and-set guard)."""
    target = OrderStatus(new)
    return tuple(sorted(s.value for s, nxt in TRANSITIONS.items() if target in nxt))


def after_fill(status: str, filled_qty: Decimal, qty: Decimal) -> OrderStatus:
    """The status of an order in ``status`` once ``filled_qty`` of its ``qty`` is filled.

    Open orders become ``filled`` or ``partially_filled``; a terminal order
    keeps its status (module docstring).
    """
    current = OrderStatus(status)
    if current in TERMINAL:
        return current
    return OrderStatus.FILLED if filled_qty >= qty else OrderStatus.PARTIALLY_FILLED
