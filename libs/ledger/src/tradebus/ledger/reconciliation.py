"""Ledger writes of the reconciler's results: its reports, and adjustments of drift.

:class:`ReconciliationWrites` is a base of :class:`~tradebus.ledger.store.Ledger`
(it needs its ``_pool``). Adjustment entries are written by execution, the
ledger's one writer of journal entries, on the reconciler's request
(``exec.adjust``); reports by the reconciler.
"""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg
import msgspec

from tradebus.common.messages import ReconReport


class ReconciliationWrites:
    """Reconciliation writes of :class:`~tradebus.ledger.store.Ledger`."""

    _pool: asyncpg.Pool

    async def record_adjustment(
        self, account_id: str, rows: list[tuple[str, Decimal, Decimal | None]], ref: str, ts: int
    ) -> bool:
        """Write ``(asset, amount, price)`` adjustment entries once per ``ref``.

        A drift is corrected by new entries (kind ``adjustment``, valued at
        ``price``), never by changing old ones. Returns False, writing
        nothing, if entries with this ``ref`` exist for the account.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                "SELECT 1 FROM journal WHERE account_id = $1 AND kind = 'adjustment'"
                " AND ref = $2 LIMIT 1",
                account_id,
                ref,
            )
            if done:
                return False
            await conn.executemany(
                "INSERT INTO journal (account_id, asset, amount, kind, ref, ts, price)"
                " VALUES ($1, $2, $3, 'adjustment', $4, $5, $6)",
                [(account_id, asset, amount, ref, ts, price) for asset, amount, price in rows],
            )
        return True

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
