"""Postgres goes away under the reconciler: it says so once, answers with an error, recovers.

A PostgreSQL of the test's own (so it can be stopped and started again on the
same port), the execution service in-process with a paper account, and the
reconciler as a real process (``tradebus-reconciler``, as ``tradebus demo``
starts it) running every second. While the database is down the reconciler
keeps running: its failed runs are counted (``tradebus_reconciler_runs_total
{result="error"}``), ``tradebus_reconciler_healthy`` is 0, its log has one
warning and no traceback, and ``ctl.recon.run`` is answered with an
``ErrorReply``. Once the database is back, the next scheduled run reconciles
again (the ledger pool reconnects) and the gauge returns to 1.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from tests.support.execution import execution_service, execution_settings
from tests.support.services import eventually
from tradebus.cli.localstack import LocalPostgres, create_database, free_port, with_database
from tradebus.cli.processes import ServiceProcess, total
from tradebus.common import subjects
from tradebus.common.codec import decode_recon_run_reply
from tradebus.common.messages import ErrorReply, ReconRunReply

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "1000", BTC: "0.5"}}
"""
RUNS = "tradebus_reconciler_runs_total"
HEALTHY = "tradebus_reconciler_healthy"


@pytest.fixture
def postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL of this test alone (the session's one is never stopped)."""
    root = Path(tempfile.mkdtemp(prefix="tradebus-pg-recon-"))
    server = LocalPostgres(root, fast=True)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def log_records(path: Path, start: int) -> list[dict]:
    """The JSON log records of ``path`` from byte ``start`` on; a line that is not JSON
    (an uncaught traceback on stderr) becomes ``{"raw": line}``."""
    records = []
    with open(path, "rb") as log:
        log.seek(start)
        for line in log.read().decode(errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                records.append({"raw": line})
    return records


async def ask_run(nc: nats.NATS) -> ErrorReply | ReconRunReply:
    """``ctl.recon.run`` for every account, as ``tradebus recon run`` asks it."""
    msg = await nc.request(subjects.ctl("recon", "run"), b'{"type":"ReconRunRequest"}', 10)
    return decode_recon_run_reply(msg.data)


@pytest.mark.timeout(120)
async def test_reconciler_survives_a_postgres_outage(
    nats_url: str, postgres: LocalPostgres, tmp_path: Path
) -> None:
    await create_database(postgres.url(), "tradebus")
    database_url = with_database(postgres.url(), "tradebus")
    execution = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    reconciler = ServiceProcess(
        "reconciler",
        {
            "TRADEBUS_NATS_URL": nats_url,
            "TRADEBUS_DATABASE_URL": database_url,
            "TRADEBUS_INTERVAL_SECONDS": "1",
            "TRADEBUS_REQUEST_TIMEOUT_SECONDS": "2",
        },
        tmp_path / "logs",
        free_port(),
    )

    def runs(result: str) -> float:
        return total(reconciler.metrics(), RUNS, result=result)

    def alive() -> str:
        code = reconciler.returncode()
        return "" if code is None else f"reconciler exited with {code}:\n{reconciler.log_tail(30)}"

    nc = await nats.connect(nats_url)
    try:
        async with execution_service(nc, execution):
            reconciler.start()
            try:
                await eventually(lambda: alive() != "" or runs("ok") >= 2, 30, "two ok runs", alive)
                assert not alive(), alive()
                assert total(reconciler.metrics(), HEALTHY) == 1

                outage_starts = reconciler.log_path.stat().st_size
                postgres.stop()
                errors_before = runs("error")
                await eventually(
                    lambda: alive() != "" or runs("error") >= errors_before + 3,
                    20,
                    "three failed runs",
                    alive,
                )
                assert not alive(), alive()  # the outage did not kill it
                assert total(reconciler.metrics(), HEALTHY) == 0

                reply = await ask_run(nc)
                assert isinstance(reply, ErrorReply), reply
                assert reply.error == "unavailable" and "ledger" in reply.message, reply
                assert not alive(), alive()

                outage = log_records(reconciler.log_path, outage_starts)
                ours = [r for r in outage if str(r.get("logger", "")).startswith("tradebus.")]
                warnings = [r for r in ours if r.get("level") in ("warning", "error", "critical")]
                assert len(warnings) == 1, warnings  # one warning for the whole outage
                assert "ledger" in warnings[0]["msg"] + str(warnings[0].get("error")), warnings
                tracebacks = [r for r in outage if "exc" in r or "Traceback" in r.get("raw", "")]
                assert not tracebacks, tracebacks

                postgres.start(port=postgres.port)
                ok_before = runs("ok")
                # the run counts its report before storing and publishing it, and is
                # healthy once done: a scrape in between sees the count but not yet the gauge
                await eventually(
                    lambda: (
                        alive() != ""
                        or (runs("ok") > ok_before and total(reconciler.metrics(), HEALTHY) == 1)
                    ),
                    30,
                    "an ok run, healthy again",
                    alive,
                )
                assert not alive(), alive()
                reply = await ask_run(nc)
                assert isinstance(reply, ReconRunReply), reply
                assert [(r.account, r.status) for r in reply.reports] == [("alice-paper", "ok")]
                after = log_records(reconciler.log_path, outage_starts)
                assert any("resumed" in r.get("msg", "") for r in after), after[-5:]
            finally:
                code = await asyncio.to_thread(reconciler.stop, 10)
        assert code == 0, reconciler.log_tail(30)
    finally:
        await nc.close()
