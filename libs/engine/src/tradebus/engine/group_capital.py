"""A strategy group's shared capital cap (seed 001's dual strategy ``totalCapital``).

The bots of one strategy group of one user on one account share ``total_capital``
(bot file ``strategies.<group>.total_capital``): together they never commit more
quote than that. What a group commits (docs/strategies.md, "Group capital cap"):

    committed = sum over the group's bots of
                (remaining notional of their open buy orders: price x (qty - filled))
              + (cost of the positions they hold: qty x average price, long only)

A buy of one of the group's bots is refused (``group_capital``) when
``committed + price x qty > total_capital``; sells are never refused by it.

Execution learns each bot's group and cap from KV ``bots`` (the specs the strategy
hosts run; ``tradebus.execution.bot_groups`` keeps :class:`GroupCaps` current). A
bot is named by the source of its intents (the subject ``intent.<user>.<bot>``),
so what a bot's intent says can never take it out of its group. This module is the
engine's side: the membership, and the arithmetic (pure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

import msgspec

from tradebus.common.ids import AccountId, UserId
from tradebus.common.money import ZERO
from tradebus.common.positions import Position
from tradebus.ledger.rows import OrderRow


class GroupMember(msgspec.Struct, frozen=True, kw_only=True):
    """One bot of a capped group: its owner, account, group and the group's cap (quote)."""

    user: UserId
    account: AccountId
    group: str
    total_capital: Decimal


class GroupCap(msgspec.Struct, frozen=True, kw_only=True):
    """A group as one of its bots' intents sees it: its name, its cap (the lowest any of
    its bots names, should two disagree), and its bots (intent sources)."""

    group: str
    total_capital: Decimal
    bots: frozenset[str]


class GroupCaps:
    """Which bot belongs to which capped group (module docstring)."""

    def __init__(self) -> None:
        self._members: dict[str, GroupMember] = {}

    def set(self, bot: str, member: GroupMember | None) -> None:
        """``bot`` is now ``member`` of a capped group (None: of none, or removed)."""
        if member is None:
            self._members.pop(bot, None)
        else:
            self._members[bot] = member

    def of(self, user: UserId, account: AccountId, source: str) -> GroupCap | None:
        """The capped group of the bot ``source`` of ``user`` trading ``account``; None
        when it is in none (a manual order, a bot without a cap, another account)."""
        member = self._members.get(source)
        if member is None or (member.user, member.account) != (user, account):
            return None
        key = (member.user, member.account, member.group)
        peers = {b: m for b, m in self._members.items() if (m.user, m.account, m.group) == key}
        cap = min(m.total_capital for m in peers.values())
        return GroupCap(group=member.group, total_capital=cap, bots=frozenset(peers))


def committed_quote(
    open_orders: Iterable[OrderRow],
    positions: Iterable[Position],
    bots: frozenset[str],
    last_price: Callable[[str], Decimal | None],
) -> Decimal:
    """The quote a group commits now (module docstring): the remaining notional of its
    bots' open buy orders (a market order at ``last_price(symbol)``, 0 when unknown) and
    the open cost of its bots' long ``positions`` (the caller gives those of its bots)."""
    total = ZERO
    for row in open_orders:
        if row.source not in bots or row.side != "buy":
            continue
        price = row.price if row.price is not None else last_price(row.symbol)
        if price is not None:
            total += price * (row.qty - row.filled_qty)
    for position in positions:
        if position.qty > 0:
            total += position.open_cost
    return total
