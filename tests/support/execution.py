"""The execution service (and the reconciler) in integration tests.

Their settings on the test's NATS and database, the execution service run
until its intent consumer exists, :class:`Bus`: a connection that collects
every order event execution publishes, an account's journal totals and a
reconciliation run on request (:func:`reconcile_now`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import asyncpg
import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from tests.support import ticks
from tests.support.services import consumer_exists, service
from tradebus.common import subjects
from tradebus.common.bus import ensure_streams, request
from tradebus.common.codec import (
    decode_audit_event,
    decode_balances_reply,
    decode_event,
    decode_recon_run_reply,
)
from tradebus.common.ids import AccountId
from tradebus.common.messages import (
    AssetBalance,
    AuditEvent,
    BalancesQuery,
    BalancesReply,
    OrderEvent,
    ReconReport,
    ReconRunReply,
)
from tradebus.execution.bootstrap import run as run_execution
from tradebus.execution.settings import ExecutionSettings
from tradebus.reconciler.bootstrap import run as run_reconciler
from tradebus.reconciler.settings import ReconcilerSettings


def execution_settings(
    nats_url: str, database_url: str, tmp_path: Path, accounts: str
) -> ExecutionSettings:
    """Execution on the test's NATS and database; ``accounts`` (the accounts YAML) is
    written to ``tmp_path/accounts.yaml`` as its accounts file."""
    path = tmp_path / "accounts.yaml"
    path.write_text(accounts)
    return ExecutionSettings(
        nats_url=nats_url,
        database_url=database_url,
        accounts_file=str(path),
        metrics_port=0,
    )


async def execution_ready(nc: NATS) -> bool:
    """True once execution's intake is up: every user's consumer exists, and the consumer
    of the dead-letter advisories, made after them."""
    return await consumer_exists(nc, subjects.STREAM_DEADLETTER, "execution-deadletters")


def execution_service(
    nc: NATS, settings: ExecutionSettings
) -> AbstractAsyncContextManager[asyncio.Task[int]]:
    """The execution service running ``settings``, ready once its intake is up."""
    return service(run_execution, settings, lambda: execution_ready(nc))


def reconciler_settings(
    nats_url: str, database_url: str, tolerances: dict[str, Decimal]
) -> ReconcilerSettings:
    """The reconciler on the test's NATS and database, run only on request."""
    return ReconcilerSettings(
        nats_url=nats_url,
        database_url=database_url,
        interval_seconds=3600,
        metrics_port=0,
        tolerances=tolerances,
    )


E = TypeVar("E", bound=OrderEvent)


class Bus:
    """A test's NATS connection and every order event it has seen."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.events: list[OrderEvent] = []
        self.tape = ticks.TradeTape(nc)

    async def pub(self, subject: str, payload: str | bytes, msg_id: str | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        await self.js.publish(subject, data, headers={"Nats-Msg-Id": msg_id} if msg_id else None)

    async def tick(self, price: str, ts: int | None = None) -> None:
        """A BTCUSDT trade at ``price`` (a seller's) received at ``ts`` (ns; default: a
        second of market time after the last one)."""
        await self.tape(price, ts)

    def of(self, kind: type[E], intent_id: str | None = None) -> list[E]:
        return [e for e in self.events if isinstance(e, kind) and intent_id in (None, e.intent_id)]

    async def balance(self, asset: str, account: str | None = None) -> AssetBalance:
        """The venue's balance of ``asset`` in ``account`` (default: the only account
        execution has)."""
        query = BalancesQuery(account=AccountId(account) if account else None)
        raw = await request(self.nc, subjects.exec_query("balances"), query)
        reply = decode_balances_reply(raw)
        assert isinstance(reply, BalancesReply), reply
        (balances,) = reply.accounts
        (b,) = [b for b in balances.balances if b.asset == asset]
        return b


B = TypeVar("B", bound=Bus)


@asynccontextmanager
async def collecting(nats_url: str, bus: type[B]) -> AsyncIterator[B]:
    """A ``bus`` on a new connection, collecting every order event; closed on exit.

    Events are read from the ``EXEC`` stream (what strategy hosts read), not
    from core NATS: a republished event (same message id) is stored once, and
    seen once here.
    """
    nc = await nats.connect(nats_url)
    b = bus(nc)

    async def collect(msg: Msg) -> None:
        b.events.append(decode_event(msg.data))

    try:
        await ensure_streams(nc.jetstream())
        await nc.jetstream().subscribe(
            subjects.EXEC_EVT_ALL,
            cb=collect,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
        )
        yield b
    finally:
        await nc.close()


async def journal_totals(database_url: str, account: str) -> dict[str, Decimal]:
    """``account``'s journal summed per asset, zero sums left out."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT asset, sum(amount) AS total FROM journal WHERE account_id = $1 GROUP BY asset",
            account,
        )
    finally:
        await conn.close()
    return {r["asset"]: Decimal(r["total"]) for r in rows if r["total"]}


async def reconcile_now(
    nats_url: str, database_url: str, nc: NATS, timeout: float = 30.0
) -> dict[str, ReconReport]:
    """Run the reconciler (tolerance 1e-8 for every asset) until its run at start is
    stored, ask it for a run of every account (``ctl.recon.run``) and return the
    reports by account."""
    settings = reconciler_settings(nats_url, database_url, {"DEFAULT": Decimal("0.00000001")})

    async def reported() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            return bool(await conn.fetchval("SELECT count(*) FROM recon_reports"))
        finally:
            await conn.close()

    async with service(run_reconciler, settings, reported, timeout=60):
        raw = await nc.request(subjects.ctl("recon", "run"), b"{}", timeout=timeout)
        reply = decode_recon_run_reply(raw.data)
        assert isinstance(reply, ReconRunReply), reply
        return {r.account: r for r in reply.reports}


async def audit_events(bus: Bus) -> list[AuditEvent]:
    """Every audit event in the ``AUDIT`` stream so far, in order."""
    info = await bus.js.stream_info(subjects.STREAM_AUDIT)
    if not info.state.messages:
        return []
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(subjects.STREAM_AUDIT, seq)
        events.append(decode_audit_event(msg.data or b""))
    return events
