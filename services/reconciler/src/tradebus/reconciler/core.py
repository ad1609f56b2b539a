"""Reconciliation arithmetic (pure): venue totals vs ledger sums, within per-asset tolerances.

Source: seed 001 (startup and scheduled reconciliation of exchange balance
against local statistics, with per-asset tolerances, ``DEFAULT`` for the
rest). For each asset held on either side: ``drift = venue_total -
ledger_total``; the asset is ok when ``|drift| <= tolerance``; the account is
ok when every asset is. A short report (:func:`short`) keeps only the drifting
assets; a detailed one (the default) every asset compared.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.common.messages import AssetBalance, ReconReport, ReconRow
from tradebus.common.money import ZERO

DEFAULT_KEY = "DEFAULT"


def tolerance_for(asset: str, tolerances: dict[str, Decimal]) -> Decimal:
    """The asset's tolerance, else ``DEFAULT``'s, else zero (exact)."""
    return tolerances.get(asset, tolerances.get(DEFAULT_KEY, ZERO))


def reconcile(
    account: str,
    venue: list[AssetBalance],
    ledger: dict[str, Decimal],
    tolerances: dict[str, Decimal],
    watermark: int,
    ts: int,
) -> ReconReport:
    """Compare one account's venue balances with its ledger balances.

    Parameters
    ----------
    venue
        The venue's balances (``total`` counts).
    ledger
        Ledger balance per asset (sum of journal entries up to ``watermark``).
    tolerances
        Absolute tolerance per asset, in that asset; ``DEFAULT`` for the rest.
    watermark
        Last journal entry the venue snapshot reflects.
    ts
        Report time, ns.
    """
    venue_totals = {b.asset: b.total for b in venue}
    rows = []
    for asset in sorted(set(venue_totals) | set(ledger)):
        v = venue_totals.get(asset, ZERO)
        led = ledger.get(asset, ZERO)
        drift = v - led
        tol = tolerance_for(asset, tolerances)
        rows.append(
            ReconRow(
                asset=asset,
                venue_total=v,
                ledger_total=led,
                drift=drift,
                tolerance=tol,
                ok=abs(drift) <= tol,
            )
        )
    return ReconReport(
        account=account,
        status="ok" if all(r.ok for r in rows) else "drift",
        rows=rows,
        ledger_watermark=watermark,
        ts_event=ts,
    )


def short(report: ReconReport) -> ReconReport:
    """``report`` as a short report: only its rows beyond tolerance (the account's
    ``reconciliation.detailed_report: false``); its status is unchanged."""
    return msgspec.structs.replace(
        report, rows=[r for r in report.rows if not r.ok], detailed=False
    )
