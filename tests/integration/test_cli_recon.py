"""``tradebus recon run [--account]`` (issue 19): a reconciliation now, its report printed.

Real NATS and PostgreSQL, the execution service with two paper accounts and the
reconciler. Every account ok: exit 0 and a table per account. A ledger entry
the venue does not have: exit 1, the account's drift shown, in JSON too. No
reconciler: exit 1 with a sentence, never a traceback.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import asyncpg
import pytest

from tests.support.cli import tradebus
from tests.support.execution import (
    Bus,
    collecting,
    execution_service,
    execution_settings,
    reconciler_settings,
)
from tests.support.services import service
from tradebus.reconciler.bootstrap import run as run_reconciler

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000", BTC: "0.5"}}
  - {id: bob-paper, user: bob, balances: {USDT: "2500"}}
"""


async def test_recon_run_prints_the_report_and_exits_1_on_drift(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = ("--nats-url", nats_url)
    code, out, err = await tradebus(capsys, "recon", "run", *url)
    assert code == 1 and "the reconciler did not answer" in out + err and "Traceback" not in err

    execution = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    reconciler = reconciler_settings(nats_url, database_url, {"DEFAULT": D("0.00000001")})

    async def reported() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval("SELECT count(*) FROM recon_reports") == 2
        finally:
            await conn.close()

    async with (
        collecting(nats_url, Bus) as bus,
        execution_service(bus.nc, execution),
        service(run_reconciler, reconciler, reported),
    ):
        code, out, _ = await tradebus(capsys, "recon", "run", *url)
        assert code == 0, out
        assert out.startswith("2 account(s) reconciled, 0 drifting")
        assert "alice-paper: ok" in out and "bob-paper: ok" in out
        usdt = [line.split() for line in out.splitlines() if line.startswith("USDT")]
        assert usdt[0][:4] == ["USDT", "10000", "10000", "0"] and usdt[0][-1] == "ok"

        # the ledger says alice has 0.0002 BTC more than the venue holds
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "INSERT INTO journal (account_id, asset, amount, kind, ref, ts) VALUES"
                " ('alice-paper', 'BTC', 0.0002, 'adjustment', 'test', 0)"
            )
        finally:
            await conn.close()
        code, out, _ = await tradebus(capsys, "recon", "run", "--account", "alice-paper", *url)
        assert code == 1, out
        assert out.startswith("1 account(s) reconciled, 1 drifting")
        assert "alice-paper: drift" in out and "bob-paper" not in out
        (btc,) = [line.split() for line in out.splitlines() if line.startswith("BTC")]
        assert btc[1:4] == ["0.5002", "0.5", "-0.0002"] and btc[-1] == "DRIFT"

        code, out, _ = await tradebus(
            capsys, "recon", "run", "--account", "alice-paper", "--json", *url
        )
        report = json.loads(out)
        assert (code, report["drifting"], report["reports"][0]["status"]) == (1, 1, "drift")


SWITCHED = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000", BTC: "0.5"}}
  - id: bob-paper
    user: bob
    balances: {USDT: "2500", BTC: "0.1"}
    reconciliation: {detailed_report: false}
  - id: carol-paper
    user: carol
    balances: {USDT: "700"}
    reconciliation: {enabled: false}
"""


async def test_reconciliation_switched_off_and_short_reports_per_account(
    nats_url: str,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Accounts file ``reconciliation``: carol's is off (never reconciled, ``recon run``
    says so), bob's report is short (only drifting assets), alice's detailed (every asset)."""
    url = ("--nats-url", nats_url)
    execution = execution_settings(nats_url, database_url, tmp_path, SWITCHED)
    reconciler = reconciler_settings(nats_url, database_url, {"DEFAULT": D("0.00000001")})
    conn = await asyncpg.connect(database_url)

    async def stored() -> dict[str, list[str]]:
        """Assets of the last stored report of each account."""
        rows = await conn.fetch(
            "SELECT DISTINCT ON (account_id) account_id, rows FROM recon_reports"
            " ORDER BY account_id, id DESC"
        )
        return {r["account_id"]: [a["asset"] for a in json.loads(r["rows"])] for r in rows}

    async def reported() -> bool:  # the run at start: alice and bob, never carol
        return len(await stored()) == 2

    try:
        async with (
            collecting(nats_url, Bus) as bus,
            execution_service(bus.nc, execution),
            service(run_reconciler, reconciler, reported),
        ):
            assert await stored() == {"alice-paper": ["BTC", "USDT"], "bob-paper": []}

            code, out, _ = await tradebus(capsys, "recon", "run", "--account", "carol-paper", *url)
            assert (code, out.strip()) == (0, "carol-paper: reconciliation is off for this account")
            code, out, _ = await tradebus(
                capsys, "recon", "run", "--account", "carol-paper", "--json", *url
            )
            assert json.loads(out) == {
                "type": "ReconRunReply", "reports": [], "accounts": 0, "drifting": 0,
                "off": ["carol-paper"],
            }  # fmt: skip

            code, out, _ = await tradebus(capsys, "recon", "run", *url)
            assert code == 0, out
            assert out.startswith("2 account(s) reconciled, 0 drifting\n")
            assert "reconciliation is off for: carol-paper" in out
            assert "alice-paper: ok\n" in out
            assert "bob-paper: ok, short report: drifting assets only" in out
            assets = [line.split()[0] for line in out.splitlines() if line[:4] in ("USDT", "BTC ")]
            assert assets == ["BTC", "USDT"]  # alice's only: bob's short report has none

            # the ledger says bob has 0.0002 BTC more than the venue holds: only BTC shown
            await conn.execute(
                "INSERT INTO journal (account_id, asset, amount, kind, ref, ts) VALUES"
                " ('bob-paper', 'BTC', 0.0002, 'adjustment', 'test', 0)"
            )
            code, out, _ = await tradebus(capsys, "recon", "run", "--account", "bob-paper", *url)
            assert code == 1, out
            assert "bob-paper: drift (alert), short report: drifting assets only" in out
            rows = [line.split() for line in out.splitlines() if line[:4] in ("USDT", "BTC ")]
            # the tolerance 1E-8 shown as people write it
            assert rows == [["BTC", "0.1002", "0.1", "-0.0002", "0.00000001", "DRIFT"]]
            assert (await stored())["bob-paper"] == ["BTC"]
            assert "carol-paper" not in await stored()
    finally:
        await conn.close()
