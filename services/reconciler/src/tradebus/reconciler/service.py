"""One reconciliation run: ask execution for venue balances, sum the ledger, report.

The reconciler holds no keys: venue balances come from execution over
``exec.query.balances``. Each account's ledger sum is taken up to the journal
watermark of the venue snapshot, so fills booked after the snapshot are not
mistaken for drift; the ledger sums of every account of a run come from one
query (each account up to its own snapshot's watermark), and the run's
reports are stored in one insert. Reports go to the ``recon_reports`` table and to
``recon.report.<account>``; drift also goes to ``recon.alert.<account>``, after
the account's drift policy acted on it (:mod:`.policies`: alert, adjust,
halt; the report's ``action`` says what was done).

A run that cannot be done (the ledger or execution unreachable) raises
:class:`UnavailableError` and is counted as an error; a failed run of every
account also sets ``tradebus_reconciler_healthy`` to 0 and logs one warning
per outage (the failed runs that follow are logged at debug), until a run
succeeds again. The ledger pool reconnects by itself once Postgres is back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import NamedTuple

import asyncpg
import msgspec
from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry, Counter, Gauge

from tradebus.common import subjects
from tradebus.common.bus import publish_event, request
from tradebus.common.clock import Clock
from tradebus.common.codec import decode_balances_reply
from tradebus.common.ids import AccountId
from tradebus.common.messages import (
    AccountBalances,
    BalancesQuery,
    ErrorReply,
    ReconReport,
)
from tradebus.control.audit import AuditTrail
from tradebus.ledger.reconciliation import ReconciliationLedger
from tradebus.reconciler.core import reconcile, short
from tradebus.reconciler.policies import DriftActions, OwnerLookup, policy_for
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
        self.healthy = Gauge(
            "tradebus_reconciler_healthy",
            "1 while runs succeed; 0 after a run failed (ledger or execution unreachable)",
            registry=registry,
        )
        self.healthy.set(1)


class ReconRun(NamedTuple):
    """What one run did: the ``reports`` of the accounts reconciled, and the accounts
    left ``off`` because their reconciliation is off (accounts file)."""

    reports: list[ReconReport]
    off: list[AccountId]


class UnavailableError(RuntimeError):
    """A run cannot be done now: execution did not answer the balances query."""


class LedgerUnavailableError(UnavailableError):
    """The ledger (Postgres) cannot be reached now."""


LEDGER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset, timeouts
    asyncpg.PostgresConnectionError,  # the connection was lost (08xxx)
    asyncpg.InterfaceError,  # a connection closed under the pool
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up (57xxx)
)
"""Errors of a ledger call that mean "Postgres is not reachable now", not a bug."""


@asynccontextmanager
async def ledger_call() -> AsyncIterator[None]:
    """Turn :data:`LEDGER_ERRORS` raised inside into :class:`LedgerUnavailableError`."""
    try:
        yield
    except LEDGER_ERRORS as exc:
        raise LedgerUnavailableError(f"ledger unavailable: {exc!r}") from exc


class Reconciler:
    """Runs reconciliations (see module docstring).

    ``audit`` and ``owner`` go to the drift policies (:class:`DriftActions`):
    what they do is recorded in the audit log.
    """

    def __init__(
        self,
        nc: NATS,
        ledger: ReconciliationLedger,
        settings: ReconcilerSettings,
        clock: Clock,
        metrics: ReconMetrics,
        audit: AuditTrail | None = None,
        owner: OwnerLookup | None = None,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._ledger = ledger
        self._settings = settings
        self._clock = clock
        self._metrics = metrics
        audit = audit or AuditTrail(self._js, "reconciler", clock)
        self._actions = DriftActions(nc, settings.request_timeout_seconds, audit, owner)
        self._failure: type[UnavailableError] | None = None
        self.failed_runs = 0
        """Full runs failed in a row (0 after one succeeds)."""

    async def run_once(self, account: AccountId | None = None) -> ReconRun:
        """Reconcile one or every account of the ledger; returns the reports, and the
        accounts whose reconciliation is off (execution says so, without asking their
        venue: they get no report, no metric and no drift policy).

        Execution is asked for each account's balances in its own request,
        so a run of any number of accounts fits NATS' message size, and an
        account whose venue cannot answer now (a live venue down) is skipped
        and counted as an error while the others are reconciled. A run of
        every account (``account`` None) also sets the health gauge and logs
        the start and the end of an outage (see the module docstring).

        Raises
        ------
        LedgerUnavailableError
            If Postgres cannot be reached (the run is counted as an error).
        UnavailableError
            If execution answers for none of the accounts (or the ledger has none yet).
        """
        try:
            run = await self._run(account)
        except UnavailableError as exc:
            if isinstance(exc, LedgerUnavailableError):
                self._metrics.runs.labels(result="error").inc()
            if account is None:
                self._run_failed(exc)
            raise
        if account is None:
            self._run_succeeded()
        return run

    def _run_failed(self, exc: UnavailableError) -> None:
        """Unhealthy; a warning when an outage starts (or its cause changes), else debug."""
        self._metrics.healthy.set(0)
        self.failed_runs += 1
        if type(exc) is not self._failure:
            log.warning("reconciliation not possible now; retrying", extra={"error": str(exc)})
        else:
            log.debug("reconciliation still not possible", extra={"error": str(exc)})
        self._failure = type(exc)

    def _run_succeeded(self) -> None:
        """Healthy again; says so after an outage."""
        self._metrics.healthy.set(1)
        if self.failed_runs:
            log.info("reconciliation resumed", extra={"failed_runs": self.failed_runs})
        self.failed_runs = 0
        self._failure = None

    async def _run(self, account: AccountId | None) -> ReconRun:
        """:meth:`run_once` without the health bookkeeping."""
        if account is not None:
            accounts = [account]
        else:
            async with ledger_call():
                accounts = await self._ledger.account_ids()
        if not accounts:
            raise UnavailableError("no accounts in the ledger yet")
        alone = account is not None or len(accounts) == 1
        off: list[AccountId] = []
        snapshots = [
            snapshot
            for account_id in accounts
            if (snapshot := await self._usable_snapshot(account_id, alone, off)) is not None
        ]
        reports = await self._reconcile(snapshots, off, confirm=not alone)
        if not reports and not off:
            raise UnavailableError("execution answered for none of the accounts")
        self._metrics.last_run.set(self._clock.now_ns() / 1e9)
        return ReconRun(reports, off)

    async def _usable_snapshot(
        self, account: AccountId, alone: bool, off: list[AccountId]
    ) -> AccountBalances | None:
        """:meth:`_snapshot` of ``account``, or None if it is not to be reconciled now:
        execution could not answer for it (logged; raised instead if the run is of
        this account ``alone``), or its reconciliation is off (added to ``off``)."""
        try:
            snapshot = await self._snapshot(account)
        except UnavailableError as exc:
            if alone:
                raise
            log.warning("account not reconciled", extra={"account": account, "error": str(exc)})
            return None
        if snapshot.reconciliation == "off":
            log.info("reconciliation is off for this account", extra={"account": account})
            off.append(account)
            return None
        return snapshot

    async def _snapshot(self, account: AccountId) -> AccountBalances:
        """Execution's venue balances of ``account`` with their ledger watermark."""
        try:
            raw = await request(
                self._nc,
                subjects.exec_query("balances"),
                BalancesQuery(account=account, reconcile=True),
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

    async def _reconcile(
        self, snapshots: list[AccountBalances], off: list[AccountId], confirm: bool
    ) -> list[ReconReport]:
        """Compare, apply the drift policies, store and publish the reports of
        ``snapshots``: one ledger query for all of them (each up to its own
        watermark), one insert of every report, each published (:meth:`_publish`).

        With ``confirm`` (a run of several accounts), an account found drifting is
        reconciled again alone before its report is kept or its policy acts: a fresh
        snapshot and its own ledger sum right after it (accounts that cannot be
        reconciled now are left out or added to ``off`` as in :meth:`_usable_snapshot`).
        The batch's ledger sums are taken after every snapshot of the run, so an
        entry execution books meanwhile that always counts (a deposit, a funding
        payment, an adjustment) would look like drift; confirming keeps the gap
        between a drift report's snapshot and its ledger sum one request long, as
        when each account was summed right after its own snapshot.
        """
        if not snapshots:
            return []
        async with ledger_call():
            ledgers = await self._ledger.balances_many(
                [(s.account, s.ledger_watermark) for s in snapshots]
            )
        reports = []
        for snapshot, ledger in zip(snapshots, ledgers, strict=True):
            report = self._compare(snapshot, ledger)
            if confirm and report.status != "ok":
                again = await self._usable_snapshot(snapshot.account, False, off)
                if again is None:
                    continue
                snapshot = again
                async with ledger_call():
                    ledger = await self._ledger.balances(
                        snapshot.account, snapshot.ledger_watermark
                    )
                report = self._compare(snapshot, ledger)
            reports.append(await self._act(snapshot, report))
        async with ledger_call():
            report_ids = await self._ledger.insert_recon_reports(reports)
        for report, report_id in zip(reports, report_ids, strict=True):
            await self._publish(report, report_id)
        return reports

    def _compare(self, snapshot: AccountBalances, ledger: dict[str, Decimal]) -> ReconReport:
        """The full report of ``snapshot`` against the account's ``ledger`` balances
        (taken at the snapshot's watermark): :func:`~tradebus.reconciler.core.reconcile`."""
        return reconcile(
            snapshot.account,
            snapshot.balances,
            ledger,
            self._settings.tolerances,
            snapshot.ledger_watermark,
            self._clock.now_ns(),
        )

    async def _act(self, snapshot: AccountBalances, report: ReconReport) -> ReconReport:
        """The report to keep of a full ``report``: measured, shortened if the account
        asks so, logged, and acted on by the account's drift policy if it drifts."""
        self._measure(report)
        if snapshot.reconciliation == "short":
            report = short(report)
        if report.detailed:
            log.info(
                "reconciliation report",
                extra={
                    "account": report.account,
                    "status": report.status,
                    "assets": [
                        f"{r.asset} venue {r.venue_total} ledger {r.ledger_total}"
                        f" drift {r.drift} (tolerance {r.tolerance})"
                        for r in report.rows
                    ],
                },
            )
        if report.status != "ok":
            policy = policy_for(report.account, self._settings.drift_policies)
            action = await self._actions.act(report, policy)
            report = msgspec.structs.replace(report, action=action)
        return report

    def _measure(self, report: ReconReport) -> None:
        """The metrics of a full report (every asset, whatever the report keeps)."""
        m = self._metrics
        m.runs.labels(result=report.status).inc()
        m.account_ok.labels(account=report.account).set(1 if report.status == "ok" else 0)
        for row in report.rows:
            m.drift.labels(account=report.account, asset=row.asset).set(float(row.drift))

    async def _publish(self, report: ReconReport, report_id: int) -> None:
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
