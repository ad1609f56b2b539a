"""Pure ledger arithmetic: the journal entries a fill creates, and balance sums.

Double entry per fill (spot), all in the account's assets:

===========  =====================  ======================  ==================
fill side    base asset             quote asset             fee asset
===========  =====================  ======================  ==================
buy          ``+qty`` (fill)        ``-qty*price`` (fill)   ``-fee`` (fee)
sell         ``-qty`` (fill)        ``+qty*price`` (fill)   ``-fee`` (fee)
===========  =====================  ======================  ==================

The balance of an asset is the sum of its entries (DESIGN.md, "Ledger").
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

import msgspec

from tradebus.common.messages import Side
from tradebus.common.money import ZERO

EntryKind = Literal["deposit", "withdrawal", "fill", "fee", "adjustment"]


class JournalEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One signed movement of ``amount`` of ``asset`` on ``account``; ``ref`` says why."""

    account: str
    asset: str
    amount: Decimal
    kind: EntryKind
    ref: str


class FillFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the ledger needs to know of a fill to book it."""

    account: str
    base: str
    quote: str
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    ref: str


def fill_entries(fill: FillFacts) -> list[JournalEntry]:
    """The journal entries of one spot fill (see the module table).

    A zero fee books no fee entry.
    """
    sign = 1 if fill.side == "buy" else -1
    entries = [
        JournalEntry(
            account=fill.account, asset=fill.base, amount=sign * fill.qty, kind="fill", ref=fill.ref
        ),
        JournalEntry(
            account=fill.account,
            asset=fill.quote,
            amount=-sign * fill.qty * fill.price,
            kind="fill",
            ref=fill.ref,
        ),
    ]
    if fill.fee:
        entries.append(
            JournalEntry(
                account=fill.account,
                asset=fill.fee_asset,
                amount=-fill.fee,
                kind="fee",
                ref=fill.ref,
            )
        )
    return entries


def deposit_entries(account: str, balances: dict[str, Decimal], ref: str) -> list[JournalEntry]:
    """One ``deposit`` entry per asset with a non-zero starting balance."""
    return [
        JournalEntry(account=account, asset=asset, amount=amount, kind="deposit", ref=ref)
        for asset, amount in sorted(balances.items())
        if amount
    ]


def sum_balances(entries: Iterable[JournalEntry]) -> dict[tuple[str, str], Decimal]:
    """Balance per ``(account, asset)``: the sum of its entries."""
    totals: dict[tuple[str, str], Decimal] = {}
    for e in entries:
        key = (e.account, e.asset)
        totals[key] = totals.get(key, ZERO) + e.amount
    return totals
