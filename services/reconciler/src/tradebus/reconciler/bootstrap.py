"""Composition root of the reconciler: ledger pool, NATS, the timer and ``ctl.recon.run``.

A run asked for over ``ctl.recon.run`` is recorded in the audit log
(``audit.reconciler``) once it is done: action ``recon.run``, actor the
request's ``actor``, target ``account:<id>`` (user its owner) or
``accounts`` (every account), ``after`` the accounts reconciled and drifting.
Timer runs act on no one's behalf and are not recorded; what a drift policy
does is (:mod:`.policies`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from nats.aio.msg import Msg

from tradebus.common import subjects
from tradebus.common.bus import connect, ensure_streams
from tradebus.common.clock import LiveClock
from tradebus.common.codec import decode_recon_run_request, encode
from tradebus.common.config import redact_url
from tradebus.common.messages import (
    RECON_REPLY_REPORTS,
    ErrorReply,
    Message,
    ReconRunReply,
)
from tradebus.common.metrics import new_registry, serve_metrics
from tradebus.common.runtime import unless_stopped
from tradebus.control.audit import AuditTrail
from tradebus.ledger.audit import account_owner
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.pool import create_pool
from tradebus.ledger.reconciliation import ReconciliationLedger
from tradebus.reconciler.service import Reconciler, ReconMetrics, ReconRun, UnavailableError
from tradebus.reconciler.settings import ReconcilerSettings

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
"""First delay before a failed run is tried again; it doubles up to :data:`RETRY_MAX_SECONDS`."""
RETRY_MAX_SECONDS = 5.0
"""Longest delay between failed runs (a run at start waits for execution to come up)."""


def run_reply(run: ReconRun) -> ReconRunReply:
    """The ``ctl.recon.run`` answer: every report of a small run, the drifting ones of a big
    one (:data:`RECON_REPLY_REPORTS`), so it fits in one NATS message; and the accounts
    whose reconciliation is off."""
    reports = run.reports
    drifting = [r for r in reports if r.status != "ok"]
    shown = reports if len(reports) <= RECON_REPLY_REPORTS else drifting[:RECON_REPLY_REPORTS]
    return ReconRunReply(reports=shown, accounts=len(reports), drifting=len(drifting), off=run.off)


def retry_delay(failed_runs: int, interval: float) -> float:
    """Seconds before the next run after ``failed_runs`` failed runs in a row (0: the
    interval): :data:`RETRY_SECONDS`, doubling up to :data:`RETRY_MAX_SECONDS`, never
    more than ``interval``."""
    if failed_runs == 0:
        return interval
    backoff = RETRY_SECONDS * 2 ** min(failed_runs - 1, 16)
    return min(interval, RETRY_MAX_SECONDS, backoff)


async def run(settings: ReconcilerSettings, stop: asyncio.Event) -> int:
    """Reconcile at start (as soon as execution answers) and every interval until ``stop``.

    A run that fails because Postgres or execution cannot be reached is tried
    again (:func:`retry_delay`) and ``ctl.recon.run`` is answered with an
    ``ErrorReply`` meanwhile: an outage never ends the process.

    Raises
    ------
    OSError, asyncpg.PostgresError
        If the ledger cannot be reached at start (migrations).
    nats.errors.NoServersError
        If NATS cannot be reached at start.
    """
    registry = new_registry()
    metrics = ReconMetrics(registry)
    server = serve_metrics(registry, settings.metrics_port, settings.metrics_host)
    # no connection floor: asyncpg would keep restoring it during an outage, logging a
    # traceback each time; a run connects when it needs to
    pool = await create_pool(settings.database_url, min_size=0, max_size=2)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    nc = await unless_stopped(  # SIGTERM works while NATS is unreachable (connect retries)
        connect(
            settings.nats_url,
            "reconciler",
            creds=settings.nats_creds,
            stream_replicas=settings.stream_replicas,
        ),
        stop,
        f"NATS at {redact_url(settings.nats_url)}",
    )
    js = nc.jetstream()
    await ensure_streams(js)
    clock = LiveClock()
    audit = AuditTrail(js, "reconciler", clock)

    async def owner(account: str) -> str | None:
        return await account_owner(pool, account)

    reconciler = Reconciler(
        nc, ReconciliationLedger(pool), settings, clock, metrics, audit=audit, owner=owner
    )
    lock = asyncio.Lock()  # one run at a time, timer or request

    async def on_run(msg: Msg) -> None:
        try:
            req = decode_recon_run_request(msg.data or b'{"type":"ReconRunRequest"}')
            async with lock:
                run = run_reply(await reconciler.run_once(req.account))
            reply: Message = run
            await record_run(req.actor, req.account, run)
        except msgspec.MsgspecError as exc:
            reply = ErrorReply(error="bad_request", message=str(exc))
        except UnavailableError as exc:
            reply = ErrorReply(error="unavailable", message=str(exc))
        except Exception as exc:  # a bug: answer anyway, so the caller does not wait
            log.exception("reconciliation request failed")
            reply = ErrorReply(error="internal", message=repr(exc))
        await msg.respond(encode(reply))

    async def record_run(actor: str, account: str | None, run: ReconRunReply) -> None:
        user = None
        if account is not None:
            with contextlib.suppress(Exception):  # the event goes out without its user
                user = await owner(account)
        await audit.record(
            actor,
            "recon.run",
            "accounts" if account is None else f"account:{account}",
            user=user,
            after={"accounts": run.accounts, "drifting": run.drifting},
        )

    sub = await nc.subscribe(subjects.ctl("recon", "run"), cb=on_run)
    log.info("reconciler ready", extra={"interval_seconds": settings.interval_seconds})
    delay = 0.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            break
        try:
            async with lock:
                reports = (await reconciler.run_once()).reports
            drifting = [r.account for r in reports if r.status != "ok"]
            log.info("reconciled", extra={"accounts": len(reports), "drift": drifting})
        except UnavailableError:
            pass  # counted and logged by the reconciler (one warning per outage)
        delay = retry_delay(reconciler.failed_runs, settings.interval_seconds)
    await sub.unsubscribe()
    await nc.drain()
    await pool.close()
    server.close()
    return 0
