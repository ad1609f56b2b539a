"""The order state machine: the one place that decides whether an order may change status."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tradebus.common import order_status
from tradebus.common.order_status import InvalidTransition, OrderStatus

S = OrderStatus


def test_terminal_statuses_go_nowhere_and_open_ones_somewhere() -> None:
    assert {S.FILLED, S.CANCELED, S.REJECTED} == order_status.TERMINAL
    assert {S.NEW, S.UNKNOWN, S.ACCEPTED, S.PARTIALLY_FILLED} == order_status.OPEN
    assert {S.ACCEPTED, S.PARTIALLY_FILLED} == order_status.CANCELABLE
    for status in order_status.TERMINAL:
        for new in S:
            assert not order_status.can_become(status, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("new", "accepted"),
        ("new", "unknown"),
        ("new", "rejected"),
        ("new", "filled"),  # a fill booked before the acceptance was
        ("unknown", "accepted"),
        ("unknown", "filled"),
        ("accepted", "partially_filled"),
        ("partially_filled", "partially_filled"),
        ("partially_filled", "canceled"),
    ],
)
def test_moves_the_table_has(old: str, new: str) -> None:
    assert order_status.check(old, new) == new


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("filled", "accepted"),  # a late acceptance after the fill
        ("accepted", "unknown"),
        ("accepted", "rejected"),
        ("new", "canceled"),  # the venue never had it
        ("canceled", "filled"),
        ("rejected", "accepted"),
    ],
)
def test_moves_it_refuses_raise_naming_both(old: str, new: str) -> None:
    with pytest.raises(InvalidTransition, match=f"{old} cannot become {new}"):
        order_status.check(old, new)


def test_sources_are_the_compare_and_set_guards_stores_use() -> None:
    assert order_status.sources("accepted") == ("new", "unknown")
    assert order_status.sources("unknown") == ("new",)
    assert order_status.sources("canceled") == ("accepted", "partially_filled")
    assert order_status.sources("rejected") == ("new", "unknown")


def test_a_fill_moves_an_open_order_and_leaves_a_terminal_one() -> None:
    assert order_status.after_fill("accepted", D("0.5"), D(1)) == S.PARTIALLY_FILLED
    assert order_status.after_fill("partially_filled", D(1), D(1)) == S.FILLED
    assert order_status.after_fill("new", D(1), D(1)) == S.FILLED
    assert order_status.after_fill("canceled", D("0.2"), D(1)) == S.CANCELED
