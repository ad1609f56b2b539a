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
from tradebus.common.messages import AccountBalances, BalancesQuery, ErrorReply, ReconReport
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
        """Reconcile one or every account of the ledger; returns the reports.

        Execution is asked for each account's balances in its own request,
        so a run of any number of accounts fits NATS' message size, and an
        account whose venue cannot answer now (a live venue down) is skipped
        and counted as an error while the others are reconciled.

        Raises
        ------
        UnavailableError
            If execution answers for none of the accounts (or the ledger has none yet).
        """
        accounts = [account] if account is not None else await self._ledger.account_ids()
        if not accounts:
            raise UnavailableError("no accounts in the ledger yet")
        reports = []
        for account_id in accounts:
            try:
                snapshot = await self._snapshot(account_id)
            except UnavailableError as exc:
                if account is not None or len(accounts) == 1:
                    raise
                log.warning(
                    "account not reconciled", extra={"account": account_id, "error": str(exc)}
                )
                continue
            reports.append(await self._reconcile(snapshot))
        if not reports:
            raise UnavailableError("execution answered for none of the accounts")
        self._metrics.last_run.set(self._clock.now_ns() / 1e9)
        return reports

    async def _snapshot(self, account: str) -> AccountBalances:
        """Execution's venue balances of ``account`` with their ledger watermark."""
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
        (snapshot,) = reply.accounts
        return snapshot

    async def _reconcile(self, snapshot: AccountBalances) -> ReconReport:
        """Compare, apply the drift policy, store and publish one account's report."""
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
        return report

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
