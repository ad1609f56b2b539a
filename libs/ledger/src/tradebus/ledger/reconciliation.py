"""The ledger as the reconciler uses it: the accounts, their balances, and its reports.

:class:`ReconciliationLedger` is everything the reconciler reads from and
writes to Postgres. It writes only reconciliation reports: adjustment
entries are journal entries, written by execution, the ledger's one writer
of them, on the reconciler's request (``exec.adjust``:
:meth:`tradebus.ledger.store.Ledger.record_adjustment`).
"""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg
import msgspec

from tradebus.common.ids import AccountId
from tradebus.common.messages import ReconReport
from tradebus.ledger.history import journal_balances


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

    async def insert_recon_report(self, report: ReconReport) -> int:
        """Store a reconciliation report; returns its id."""
        rows = json.loads(msgspec.json.encode(report.rows))
        return await self._pool.fetchval(
            "INSERT INTO recon_reports (account_id, status, ledger_watermark, rows, ts)"
            " VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING id",
            report.account,
            report.status,
            report.ledger_watermark,
            json.dumps(rows),
            report.ts_event,
        )
