"""Pure ledger arithmetic: the journal entries a fill creates, and balance sums.

Double entry per spot fill, all in the account's assets:

===========  =====================  ======================  ==================
fill side    base asset             quote asset             fee asset
===========  =====================  ======================  ==================
buy          ``+qty`` (fill)        ``-qty*price`` (fill)   ``-fee`` (fee)
sell         ``-qty`` (fill)        ``+qty*price`` (fill)   ``-fee`` (fee)
===========  =====================  ======================  ==================

Perpetual fills (linear, quote-margined) move no base asset. The position
is journaled in a pseudo-asset named by :func:`position_asset`
(``BTCUSDT-PERP``), whose balance is the signed position in base units; the
quote asset moves only by the realized P&L the venue reports and the fee:

===========  ==========================  ===============================  ============
fill side    position pseudo-asset       quote asset                      fee asset
===========  ==========================  ===============================  ============
buy          ``+qty`` (fill)             ``+realized_pnl`` (realized_pnl)  ``-fee`` (fee)
sell         ``-qty`` (fill)             ``+realized_pnl`` (realized_pnl)  ``-fee`` (fee)
===========  ==========================  ===============================  ============

The venue reports the same pseudo-asset in its balances (total = signed
position), so the reconciler compares positions like any other asset.
Unrealized P&L is never journaled. A funding payment of a position is one
``funding`` entry in the quote asset (negative when paid; :func:`funding_ref`).

The balance of an asset is the sum of its entries (DESIGN.md, "Ledger").
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Literal

import msgspec

from tradebus.common.ids import AccountId
from tradebus.common.messages import Side
from tradebus.common.money import ZERO

EntryKind = Literal["deposit", "withdrawal", "fill", "fee", "realized_pnl", "adjustment", "funding"]

FILL_KINDS: tuple[EntryKind, ...] = ("fill", "fee", "realized_pnl")
"""The kinds a fill books (one transaction with the fill row)."""

POSITION_SUFFIX = "-PERP"


def funding_ref(symbol: str, interval_end_ms: int) -> str:
    """The ``ref`` of the funding entry of ``symbol``'s interval ending at
    ``interval_end_ms``: one payment per position and interval, booked once."""
    return f"funding:{symbol}:{interval_end_ms}"


def position_asset(symbol: str) -> str:
    """The pseudo-asset that holds the perpetual position of ``symbol`` (``BTCUSDT-PERP``).

    Its balance is the signed position in base units (short < 0).
    """
    return f"{symbol}{POSITION_SUFFIX}"


class JournalEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One signed movement of ``amount`` of ``asset`` on ``account``; ``ref`` says why."""

    account: AccountId
    asset: str
    amount: Decimal
    kind: EntryKind
    ref: str


class FillFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the ledger needs to know of a fill to book it."""

    account: AccountId
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
    return entries + _fee_entry(fill.account, fill.fee, fill.fee_asset, fill.ref)


def _fee_entry(account: AccountId, fee: Decimal, fee_asset: str, ref: str) -> list[JournalEntry]:
    """The ``fee`` entry of a fill (a debit of ``fee`` in ``fee_asset``); none for a zero fee."""
    if not fee:
        return []
    return [JournalEntry(account=account, asset=fee_asset, amount=-fee, kind="fee", ref=ref)]


class PerpFillFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the ledger needs to know of a perpetual fill to book it.

    ``realized_pnl`` (quote asset, fees excluded) is the venue's: the price
    difference of the quantity this fill closed against the average entry
    price, zero for a fill that only opens or adds.
    """

    account: AccountId
    symbol: str
    quote: str
    side: Side
    qty: Decimal
    realized_pnl: Decimal
    fee: Decimal
    fee_asset: str
    ref: str


def perp_fill_entries(fill: PerpFillFacts) -> list[JournalEntry]:
    """The journal entries of one perpetual fill (see the module's second table).

    A zero realized P&L or a zero fee books no entry of that kind.
    """
    entries = [
        JournalEntry(
            account=fill.account,
            asset=position_asset(fill.symbol),
            amount=fill.qty if fill.side == "buy" else -fill.qty,
            kind="fill",
            ref=fill.ref,
        )
    ]
    if fill.realized_pnl:
        entries.append(
            JournalEntry(
                account=fill.account,
                asset=fill.quote,
                amount=fill.realized_pnl,
                kind="realized_pnl",
                ref=fill.ref,
            )
        )
    return entries + _fee_entry(fill.account, fill.fee, fill.fee_asset, fill.ref)


def deposit_entries(
    account: AccountId, balances: dict[str, Decimal], ref: str
) -> list[JournalEntry]:
    """One ``deposit`` entry per asset with a non-zero starting balance."""
    return [
        JournalEntry(account=account, asset=asset, amount=amount, kind="deposit", ref=ref)
        for asset, amount in sorted(balances.items())
        if amount
    ]


def sum_balances(entries: Iterable[JournalEntry]) -> dict[tuple[AccountId, str], Decimal]:
    """Balance per ``(account, asset)``: the sum of its entries."""
    totals: dict[tuple[AccountId, str], Decimal] = {}
    for e in entries:
        key = (e.account, e.asset)
        totals[key] = totals.get(key, ZERO) + e.amount
    return totals
