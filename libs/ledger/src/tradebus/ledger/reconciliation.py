"""The ledger as the reconciler uses it: the accounts, their balances, and its reports.

:class:`ReconciliationLedger` is everything the reconciler reads from and
writes to Postgres. It writes only reconciliation reports: adjustment
entries are journal entries, written by execution, the ledger's one writer
of them, on the reconciler's request (``exec.adjust``:
:meth:`tradebus.ledger.store.Ledger.record_adjustment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import asyncpg
import msgspec

from tradebus.common.ids import AccountId
from tradebus.common.messages import ReconReport
from tradebus.ledger.history import journal_balances, journal_balances_many

_ROWS = msgspec.json.Encoder()
"""Encodes a report's rows for their ``jsonb`` column (decimals as JSON strings)."""


class ReconciliationLedger:
    """The reconciler's reads and writes behind an :class:`asyncpg.Pool` (module docstring)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def account_ids(self) -> list[AccountId]:
        """Every account of the ledger, by id."""
        records = await self._pool.fetch("SELECT id FROM accounts ORDER BY id")
        return [AccountId(r["id"]) for r in records]

    async def balances(
        self, account_id: AccountId, up_to_id: int | None = None
    ) -> dict[str, Decimal]:
        """Balance per asset of one account as of a venue snapshot's watermark
        ``up_to_id`` (:func:`~tradebus.ledger.history.journal_balances`)."""
        return await journal_balances(self._pool, account_id, up_to_id)

    async def balances_many(
        self, accounts: Sequence[tuple[AccountId, int | None]]
    ) -> list[dict[str, Decimal]]:
        """:meth:`balances` of every ``(account, watermark)`` pair in one query, in the
        pairs' order (:func:`~tradebus.ledger.history.journal_balances_many`)."""
        return await journal_balances_many(self._pool, accounts)

    async def insert_recon_report(self, report: ReconReport) -> int:
        """Store a reconciliation report; returns its id."""
        (report_id,) = await self.insert_recon_reports([report])
        return report_id

    async def insert_recon_reports(self, reports: Sequence[ReconReport]) -> list[int]:
        """Store reconciliation reports in one statement; returns their ids, in the
        reports' order (ascending: ids are taken in that order).

        The columns travel as arrays (``unnest``), so any number of reports is one
        round trip; ``rows`` is stored as ``jsonb`` of the report's rows (decimals
        as JSON strings, as the reports are published).
        """
        if not reports:
            return []
        ids = await self._pool.fetch(
            "INSERT INTO recon_reports (account_id, status, ledger_watermark, rows, ts)"
            " SELECT a, s, w, r::jsonb, t FROM unnest($1::text[], $2::text[], $3::bigint[],"
            " $4::text[], $5::bigint[]) WITH ORDINALITY AS u(a, s, w, r, t, n) ORDER BY n"
            " RETURNING id",
            [r.account for r in reports],
            [r.status for r in reports],
            [r.ledger_watermark for r in reports],
            [_ROWS.encode(r.rows).decode() for r in reports],
            [r.ts_event for r in reports],
        )
        # one statement takes the ids of its rows from the sequence in insertion order
        # (ORDER BY n), and the sequence only grows: sorted ids are the reports' order
        return sorted(r["id"] for r in ids)
