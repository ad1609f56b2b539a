"""The reconciler against the real execution service, on real NATS and PostgreSQL.

Venue balances come from execution over ``exec.query.balances``; the ledger
is summed in Postgres; reports land in ``recon_reports`` and on
``recon.report.<account>`` (RECON stream), drift also on ``recon.alert.<account>``.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import asyncpg
import nats
from nats.js.client import JetStreamContext

from tests.support.execution import execution_service, execution_settings, reconciler_settings
from tests.support.services import service
from tradebus.common import subjects
from tradebus.common.codec import decode_recon_report, decode_recon_run_reply
from tradebus.reconciler.bootstrap import run as run_reconciler


async def last_data(js: JetStreamContext, subject: str) -> bytes:
    """The payload of the last message of ``RECON`` on ``subject``."""
    data = (await js.get_last_msg("RECON", subject)).data
    assert data is not None
    return data


ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "1000", BTC: "0.5"}}
  - {id: bob-paper, user: bob, balances: {USDT: "250"}}
"""


async def test_reports_ok_then_drift_when_the_ledger_moves_behind_the_venue(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    nc = await nats.connect(nats_url)
    execution = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    reconciler = reconciler_settings(
        nats_url, database_url, {"BTC": D("0.0001"), "DEFAULT": D("0.01")}
    )

    async def reports_in_db() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            return bool(await conn.fetchval("SELECT count(*) FROM recon_reports"))
        finally:
            await conn.close()

    async with (
        execution_service(nc, execution),
        service(run_reconciler, reconciler, reports_in_db),
    ):
        # the run at start: both accounts ok, published on recon.report.<account>
        js = nc.jetstream()
        start = decode_recon_report(await last_data(js, "recon.report.alice-paper"))
        assert start.status == "ok"
        assert [(r.asset, r.venue_total, r.ledger_total) for r in start.rows] == [
            ("BTC", D("0.5"), D("0.5")),
            ("USDT", D(1000), D(1000)),
        ]
        # an entry booked behind the venue's back (a lost fill, a hand edit) is drift
        conn = await asyncpg.connect(database_url)
        await conn.execute(
            "INSERT INTO journal (account_id, asset, amount, kind, ref, ts)"
            " VALUES ('alice-paper', 'BTC', -0.0002, 'adjustment', 'test', 0)"
        )
        reply = decode_recon_run_reply(
            (await nc.request(subjects.ctl("recon", "run"), b"{}", timeout=10)).data
        )
        reports = {r.account: r for r in reply.reports}  # type: ignore[union-attr]
        assert reports["bob-paper"].status == "ok"
        alice = reports["alice-paper"]
        assert alice.status == "drift"
        btc = next(r for r in alice.rows if r.asset == "BTC")
        assert (btc.drift, btc.tolerance, btc.ok) == (D("0.0002"), D("0.0001"), False)
        alert = decode_recon_report(await last_data(js, "recon.alert.alice-paper"))
        assert alert.status == "drift"
        stored = await conn.fetch("SELECT account_id, status FROM recon_reports ORDER BY id")
        await conn.close()
        assert [tuple(r) for r in stored][-2:] == [
            ("alice-paper", "drift"),
            ("bob-paper", "ok"),
        ]
    await nc.close()
