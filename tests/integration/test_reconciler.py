"""The reconciler against the real execution service, on real NATS and PostgreSQL.

Venue balances come from execution over ``exec.query.balances``; the ledger
is summed in Postgres; reports land in ``recon_reports`` and on
``recon.report.<account>`` (RECON stream), drift also on ``recon.alert.<account>``.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import msgspec
import nats
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from tests.support.execution import execution_service, execution_settings, reconciler_settings
from tests.support.services import eventually, service
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.clock import LiveClock
from tradebus.common.codec import (
    decode_balances_reply,
    decode_recon_report,
    decode_recon_run_reply,
)
from tradebus.common.ids import AccountId
from tradebus.common.messages import BalancesQuery, ReconReport
from tradebus.common.metrics import new_registry
from tradebus.ledger.history import journal_balances
from tradebus.ledger.pool import create_pool
from tradebus.ledger.reconciliation import ReconciliationLedger
from tradebus.reconciler.bootstrap import run as run_reconciler
from tradebus.reconciler.core import reconcile, short
from tradebus.reconciler.service import Reconciler, ReconMetrics, ReconRun


async def last_data(js: JetStreamContext, subject: str) -> bytes:
    """The payload of the last message of ``RECON`` on ``subject``."""
    data = (await js.get_last_msg("RECON", subject)).data
    assert data is not None
    return data


async def published(js: JetStreamContext, subject: str) -> bool:
    """Whether ``RECON`` holds a message on ``subject``."""
    try:
        await js.get_last_msg("RECON", subject)
    except NotFoundError:
        return False
    return True


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
        # the run at start: both accounts ok, published on recon.report.<account> (the
        # run stores every report in one insert, then publishes each: wait for it)
        js = nc.jetstream()
        await eventually(
            lambda: published(js, "recon.report.alice-paper"), what="the start-up report"
        )
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


MANY = 120


def many_accounts() -> str:
    """``MANY`` paper accounts; every 10th keeps short reports, every 15th is not reconciled."""
    lines = ["accounts:"]
    for i in range(MANY):
        recon = ", reconciliation: {enabled: false}" if i % 15 == 14 else ""
        recon = recon or (", reconciliation: {detailed_report: false}" if i % 10 == 9 else "")
        lines.append(
            f'  - {{id: a{i:03}-paper, user: u{i:03}, balances: {{USDT: "{1000 + i}",'
            f' BTC: "0.{i + 1:03}"}}{recon}}}'
        )
    return "\n".join(lines) + "\n"


async def test_a_run_of_many_accounts_reports_as_each_account_reconciled_alone(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    """One ledger query and one insert for a whole run give the reports, stored rows and
    published messages that reconciling each account alone gives (the old path: its
    snapshot, then its own :func:`journal_balances` at the snapshot's watermark)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    execution = execution_settings(nats_url, database_url, tmp_path, many_accounts())
    settings = reconciler_settings(nats_url, database_url, {"BTC": D("0.0001"), "DEFAULT": D(0)})
    pool = await create_pool(database_url)
    reconciler = Reconciler(
        nc, ReconciliationLedger(pool), settings, LiveClock(), ReconMetrics(new_registry())
    )
    ids = [AccountId(f"a{i:03}-paper") for i in range(MANY)]
    off = [a for i, a in enumerate(ids) if i % 15 == 14]

    async def stored(after: int) -> list[tuple]:
        rows = await pool.fetch(
            "SELECT id, account_id, status, ledger_watermark, rows FROM recon_reports"
            " WHERE id > $1 ORDER BY id",
            after,
        )
        return [(r["id"], r["account_id"], r["status"], r["ledger_watermark"],
                 json.loads(r["rows"])) for r in rows]  # fmt: skip

    def timeless(report: ReconReport) -> ReconReport:
        return msgspec.structs.replace(report, ts_event=0)

    try:
        async with execution_service(nc, execution):
            # behind the venue's back: a hand edit and a deposit always count (drift); a fill
            # newer than the venue's watermark is in flight, left out (ok)
            behind = [
                *[(a, "BTC", D("0.0002"), "adjustment") for a in ids[3::7]],
                *[(a, "USDT", D("7"), "deposit") for a in ids[6::13]],
                *[(a, "USDT", D("-5"), "fill") for a in ids[5::11]],
            ]
            await pool.executemany(
                "INSERT INTO journal (account_id, asset, amount, kind, ref, ts)"
                " VALUES ($1, $2, $3, $4, 'test', 0)",
                behind,
            )
            run = await reconciler.run_once()
            assert run.off == off
            assert [r.account for r in run.reports] == [a for a in ids if a not in off]
            drifting = {r.account for r in run.reports if r.status == "drift"}
            assert drifting == {a for a in ids[3::7] + ids[6::13] if a not in off}
            in_run = await stored(0)
            assert [s[1] for s in in_run] == [r.account for r in run.reports]
            for (report_id, *_), report in zip(in_run, run.reports, strict=True):
                msg = await js.get_last_msg("RECON", f"recon.report.{report.account}")
                assert msg.headers and msg.headers["Nats-Msg-Id"] == f"recon:{report_id}"
                assert msg.data and decode_recon_report(msg.data) == report

            last = in_run[-1][0]
            for account in ids:
                alone = await reconciler.run_once(account)
                if account in off:
                    assert alone == ReconRun([], [account])
                    continue
                (report,) = alone.reports
                (full,) = [r for r in run.reports if r.account == account]
                assert timeless(report) == timeless(full)
                # the old path, from the one-account statement of a balance
                raw = await request(
                    nc, subjects.exec_query("balances"), BalancesQuery(account=account)
                )
                (snapshot,) = decode_balances_reply(raw).accounts  # type: ignore[union-attr]
                ledger = await journal_balances(pool, account, snapshot.ledger_watermark)
                old = reconcile(
                    account, snapshot.balances, ledger, settings.tolerances,
                    snapshot.ledger_watermark, 0,
                )  # fmt: skip
                old = short(old) if snapshot.reconciliation == "short" else old
                action = "alert" if old.status == "drift" else "none"
                assert timeless(report) == msgspec.structs.replace(old, action=action)
            assert [s[1:] for s in await stored(last)] == [s[1:] for s in in_run]
    finally:
        await pool.close()
        await nc.close()
