"""One reconciliation run: ask execution for venue balances, sum the ledger, report.

The reconciler holds no keys: venue balances come from execution over
``exec.query.balances``. Each account's ledger sum is taken up to the journal
watermark of the venue snapshot, so fills booked after the snapshot are not
mistaken for drift. Reports go to the ``recon_reports`` table and to
``recon.report.<account>``; drift also goes to ``recon.alert.<account>``, after
the account's drift policy acted on it (:mod:`.policies`: alert, adjust,
halt; the report's ``action`` says what was done).
"""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry, Counter, Gauge

from tradebus.common import subjects
from tradebus.common.bus import publish_event, request
from tradebus.common.clock import Clock
from tradebus.common.codec import decode_balances_reply
from tradebus.common.messages import BalancesQuery, ErrorReply, ReconReport
from tradebus.ledger.store import Ledger
from tradebus.reconciler.core import reconcile
from tradebus.reconciler.policies import DriftActions, policy_for
from tradebus.reconciler.settings import ReconcilerSettings

log = logging.getLogger(__name__)


class ReconMetrics:
    """``tradebus_reconciler_*`` metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "tradebus_reconciler_runs",
            "Reconciliations by result (ok, drift, error)",
            ["result"],
            registry=registry,
        )
        self.drift = Gauge(
            "tradebus_reconciler_drift",
            "Venue total minus ledger total, in the asset",
            ["account", "asset"],
            registry=registry,
        )
        self.account_ok = Gauge(
            "tradebus_reconciler_account_ok",
            "1 if the account reconciled within tolerance",
            ["account"],
            registry=registry,
        )
        self.last_run = Gauge(
            "tradebus_reconciler_last_run_timestamp_seconds",
            "Wall time of the last run",
            registry=registry,
        )


class UnavailableError(RuntimeError):
    """Execution did not answer the balances query."""


class Reconciler:
    """Runs reconciliations (see module docstring)."""

    def __init__(
        self,
        nc: NATS,
        ledger: Ledger,
        settings: ReconcilerSettings,
        clock: Clock,
        metrics: ReconMetrics,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._ledger = ledger
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        self._actions = DriftActions(nc, settings.request_timeout_seconds)

    async def run_once(self, account: str | None = None) -> list[ReconReport]:
        """Reconcile one or every account; returns the reports.

        Raises
        ------
        UnavailableError
            If execution does not answer or answers with an error.
        """
        try:
            raw = await request(
                self._nc,
                subjects.exec_query("balances"),
                BalancesQuery(account=account),
                timeout=self._settings.request_timeout_seconds,
            )
        except Exception as exc:  # no responders, timeout, connection down
            self._metrics.runs.labels(result="error").inc()
            raise UnavailableError(f"execution did not answer: {exc!r}") from exc
        reply = decode_balances_reply(raw)
        if isinstance(reply, ErrorReply):
            self._metrics.runs.labels(result="error").inc()
            raise UnavailableError(f"{reply.error}: {reply.message}")
        reports = []
        for snapshot in reply.accounts:
            ledger = await self._ledger.balances(snapshot.account, snapshot.ledger_watermark)
            report = reconcile(
                snapshot.account,
                snapshot.balances,
                ledger,
                self._settings.tolerances,
                snapshot.ledger_watermark,
                self._clock.now_ns(),
            )
            if report.status != "ok":
                policy = policy_for(report.account, self._settings.drift_policies)
                action = await self._actions.act(report, policy)
                report = msgspec.structs.replace(report, action=action)
            report_id = await self._ledger.insert_recon_report(report)
            await self._publish(report, report_id)
            reports.append(report)
        self._metrics.last_run.set(self._clock.now_ns() / 1e9)
        return reports

    async def _publish(self, report: ReconReport, report_id: int) -> None:
        m = self._metrics
        m.runs.labels(result=report.status).inc()
        m.account_ok.labels(account=report.account).set(1 if report.status == "ok" else 0)
        for row in report.rows:
            m.drift.labels(account=report.account, asset=row.asset).set(float(row.drift))
        msg_id = f"recon:{report_id}"
        await publish_event(self._js, subjects.recon_report(report.account), report, msg_id)
        if report.status != "ok":
            bad = [
                f"{r.asset} drift {r.drift} (tolerance {r.tolerance})"
                for r in report.rows
                if not r.ok
            ]
            log.warning(
                "reconciliation drift",
                extra={"account": report.account, "assets": bad, "action": report.action},
            )
            await publish_event(
                self._js, subjects.recon_alert(report.account), report, f"alert:{report_id}"
            )
