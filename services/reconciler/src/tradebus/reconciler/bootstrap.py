"""Composition root of the reconciler: ledger pool, NATS, the timer and ``ctl.recon.run``."""

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
from tradebus.common.messages import (
    RECON_REPLY_REPORTS,
    ErrorReply,
    Message,
    ReconReport,
    ReconRunReply,
)
from tradebus.common.metrics import new_registry, serve_metrics
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.store import Ledger, create_pool
from tradebus.reconciler.service import Reconciler, ReconMetrics, UnavailableError
from tradebus.reconciler.settings import ReconcilerSettings

log = logging.getLogger(__name__)

STARTUP_RETRY_SECONDS = 1.0


def run_reply(reports: list[ReconReport]) -> ReconRunReply:
    """The ``ctl.recon.run`` answer: every report of a small run, the drifting ones of a big
    one (:data:`RECON_REPLY_REPORTS`), so it fits in one NATS message."""
    drifting = [r for r in reports if r.status != "ok"]
    shown = reports if len(reports) <= RECON_REPLY_REPORTS else drifting[:RECON_REPLY_REPORTS]
    return ReconRunReply(reports=shown, accounts=len(reports), drifting=len(drifting))


async def run(settings: ReconcilerSettings, stop: asyncio.Event) -> int:
    """Reconcile at start (as soon as execution answers) and every interval until ``stop``."""
    registry = new_registry()
    metrics = ReconMetrics(registry)
    server = serve_metrics(registry, settings.metrics_port)
    pool = await create_pool(settings.database_url, max_size=2)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    nc = await connect(settings.nats_url, "reconciler")
    await ensure_streams(nc.jetstream())
    reconciler = Reconciler(nc, Ledger(pool), settings, LiveClock(), metrics)
    lock = asyncio.Lock()  # one run at a time, timer or request

    async def on_run(msg: Msg) -> None:
        try:
            req = decode_recon_run_request(msg.data or b'{"type":"ReconRunRequest"}')
            async with lock:
                reply: Message = run_reply(await reconciler.run_once(req.account))
        except msgspec.MsgspecError as exc:
            reply = ErrorReply(error="bad_request", message=str(exc))
        except UnavailableError as exc:
            reply = ErrorReply(error="unavailable", message=str(exc))
        await msg.respond(encode(reply))

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
                reports = await reconciler.run_once()
            drifting = [r.account for r in reports if r.status != "ok"]
            log.info("reconciled", extra={"accounts": len(reports), "drift": drifting})
            delay = settings.interval_seconds
        except UnavailableError as exc:
            log.warning("reconciliation postponed", extra={"error": str(exc)})
            delay = STARTUP_RETRY_SECONDS
    await sub.unsubscribe()
    await nc.drain()
    await pool.close()
    server.close()
    return 0
