"""Benchmark: the reconciler's per-account work over 10,000 ledger accounts.

**In process** (always): a local PostgreSQL (default durability), migrated with
``tradebus.ledger.migrate.apply_migrations``; ``accounts`` accounts are
bulk-loaded with ``COPY`` (rows of ``accounts``; in ``journal`` per account a
USDT and a BTC deposit plus ``FILLS`` buys of 0.01 BTC, each booked as a BTC
``fill``, a USDT ``fill`` and a USDT ``fee``: 2 + 3·FILLS rows). The venue side
is synthetic: per account the balances the ledger should hold (so every report
is ``ok``), as execution's ``exec.query.balances`` would answer. Then what
:meth:`Reconciler.run_once` does with the snapshots of a run: one
``ReconciliationLedger.balances_many`` of every ``(account, watermark)``, a
``reconcile(...)`` per account, and one ``ReconciliationLedger.insert_recon_reports``
of every report. Row: **accounts reconciled per second** (accounts / wall
seconds of those three), with their split per account: the ledger sum, the
comparison and the report insert.

**End to end** (``--e2e N``): nats-server + PostgreSQL, the real
``tradebus-execution`` with an accounts file of N paper accounts (execution
creates them in the ledger itself, deposits only). First one
``exec.query.balances`` for all accounts is timed alone (s). If it answers,
the real ``tradebus-reconciler`` is started and, after its start-up run, one
``ctl.recon.run`` over all N accounts is timed from the request to the end of
the run (the reconciler's last-run gauge, wall clock; accounts/s). This
includes the balances query and publishing each report on
``recon.report.<account>``. Both the balances of all accounts and the
``ctl.recon.run`` reply (every report) travel in one NATS message each: above
a few thousand accounts they exceed nats-server's 1 MiB ``max_payload``, the
sender logs ``MaxPayloadError``, no reply comes, and the rows say so.

Run: ``python -m bench.reconbench [--accounts 10000] [--e2e 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats.errors

from tradebus.cli.localstack import LocalPostgres, create_database
from tradebus.cli.processes import total
from tradebus.cli.stack import LocalStack
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_recon_run_reply
from tradebus.common.ids import AccountId
from tradebus.common.messages import AssetBalance, BalancesQuery, ReconRunRequest
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.pool import create_pool
from tradebus.ledger.reconciliation import ReconciliationLedger
from tradebus.ledger.store import Ledger
from tradebus.reconciler.core import reconcile

FILLS = 3
QUERY = subjects.exec_query("balances")
QUERY_TIMEOUT = 60.0
RUNS = "tradebus_reconciler_runs_total"
LAST_RUN = "tradebus_reconciler_last_run_timestamp_seconds"
PRICE = Decimal("60000")
QTY = Decimal("0.01")
FEE = Decimal("0.6")
DEPOSIT = {"USDT": Decimal("100000"), "BTC": Decimal("1")}
BACKLOG_BYTES = 1024 * 1024
"""End to end: execution's ``intent_backlog_bytes`` (its per-user stream's max bytes)."""


def row(name: str, value: object, unit: str, detail: str) -> dict:
    """One result row."""
    return {"row": name, "value": value, "unit": unit, "detail": detail}


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def expected() -> dict[str, Decimal]:
    """What every account's ledger sums to."""
    return {
        "BTC": DEPOSIT["BTC"] + FILLS * QTY,
        "USDT": DEPOSIT["USDT"] - FILLS * (QTY * PRICE + FEE),
    }


async def load(conn: asyncpg.Connection, n: int) -> float:
    """COPY ``n`` accounts and their journal rows in; returns seconds."""
    t = time.perf_counter()
    ts = time.time_ns()
    await conn.copy_records_to_table(
        "accounts", records=[(f"r{i}-paper", f"r{i}", "paper", ts) for i in range(n)],
        columns=["id", "user_id", "venue", "created_ns"],
    )  # fmt: skip
    rows = []
    for i in range(n):
        acc = f"r{i}-paper"
        rows += [(acc, a, str(v), "deposit", "bench", ts) for a, v in DEPOSIT.items()]
        for k in range(FILLS):
            ref = f"fill:{i}:{k}"
            rows += [
                (acc, "BTC", str(QTY), "fill", ref, ts),
                (acc, "USDT", str(-QTY * PRICE), "fill", ref, ts),
                (acc, "USDT", str(-FEE), "fee", ref, ts),
            ]
    await conn.copy_records_to_table(
        "journal", records=rows, columns=["account_id", "asset", "amount", "kind", "ref", "ts"]
    )
    await conn.execute("ANALYZE accounts; ANALYZE journal")
    return time.perf_counter() - t


async def in_process(n: int) -> list[dict]:
    """The per-account loop of ``run_once`` against a bulk-loaded ledger (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="reconbench-") as tmp:
        pg = LocalPostgres(Path(tmp) / "pg")
        admin = await asyncio.to_thread(pg.start)
        try:
            await create_database(admin, "recon")
            url = pg.url("recon")
            conn = await asyncpg.connect(url)
            await apply_migrations(conn)
            load_s = await load(conn, n)
            await conn.close()
            rows = n * (2 + 3 * FILLS)
            say(f"reconbench: {n:,} accounts, {rows:,} journal rows in {load_s:.1f} s")
            pool = await create_pool(url, max_size=2)
            ledger = ReconciliationLedger(pool)
            watermark = await Ledger(pool).last_journal_id()  # execution's, in production
            venue = [AssetBalance(asset=a, total=v, free=v, locked=Decimal(0))
                     for a, v in expected().items()]  # fmt: skip
            tolerances = {"DEFAULT": Decimal("0.00000001")}
            ids = [AccountId(f"r{i}-paper") for i in range(n)]
            start = time.perf_counter()
            sums = await ledger.balances_many([(a, watermark) for a in ids])
            b = time.perf_counter()
            reports = [
                reconcile(a, venue, balances, tolerances, watermark, time.time_ns())
                for a, balances in zip(ids, sums, strict=True)
            ]
            c = time.perf_counter()
            await ledger.insert_recon_reports(reports)
            d = time.perf_counter()
            t_sum, t_cmp, t_ins = b - start, c - b, d - c
            bad = sum(r.status != "ok" for r in reports)
            wall = time.perf_counter() - start
            await pool.close()
        finally:
            pg.stop()
    us = lambda s: f"{s / n * 1e6:.0f} µs"  # noqa: E731
    return [{
        "row": "reconciler, in process (ledger + compare + report)", "value": round(n / wall),
        "unit": "accounts/s",
        "detail": f"{n:,} accounts in {wall:.2f} s; per account: ledger sum {us(t_sum)},"
        f" compare {us(t_cmp)}, report insert {us(t_ins)}; {bad} not ok; synthetic venue side",
    }]  # fmt: skip


async def end_to_end(n: int) -> list[dict]:
    """Execution with ``n`` paper accounts + the reconciler process; one timed ``ctl.recon.run``."""
    with tempfile.TemporaryDirectory(prefix="reconbench-e2e-") as tmp:
        root = Path(tmp)
        stack = LocalStack(root, say=say)
        try:
            await stack.start_servers()
            await stack.connect(count_ticks=False)
            await stack.migrate()
            accounts = root / "accounts.yaml"
            accounts.write_text("accounts:\n" + "".join(
                f'  - {{id: r{i}-paper, user: r{i}, balances: {{USDT: "100000", BTC: "1"}}}}\n'
                for i in range(n)))  # fmt: skip
            t = time.monotonic()
            stack.start_service("execution", {
                "TRADEBUS_DATABASE_URL": stack.database_url,
                "TRADEBUS_ACCOUNTS_FILE": str(accounts),
                # one INTENTS_<user> stream per account's user: JetStream reserves each
                # stream's max bytes, and N x the default 64 MiB exceeds the disk
                "TRADEBUS_INTENT_BACKLOG_BYTES": str(BACKLOG_BYTES),
            })  # fmt: skip
            await stack.wait_ready("execution", timeout=1800)
            exec_start = time.monotonic() - t
            say(f"reconbench: execution ready with {n:,} accounts after {exec_start:.1f} s")
            assert stack.nc is not None
            t = time.perf_counter()
            try:
                raw = await request(stack.nc, QUERY, BalancesQuery(), timeout=QUERY_TIMEOUT)
            except nats.errors.TimeoutError:
                big = "MaxPayloadError" in stack.services["execution"].log_tail(50)
                why = "reply over NATS max_payload (1 MiB)" if big else "timeout"
                return [
                    row(
                        "exec.query.balances, all accounts",
                        None,
                        "s",
                        f"{n:,} accounts: no reply in {QUERY_TIMEOUT:.0f} s ({why}); so no"
                        f" full ctl.recon.run; execution start-up {exec_start:.0f} s",
                    )
                ]
            query_s = time.perf_counter() - t
            rows = [
                row(
                    "exec.query.balances, all accounts",
                    round(query_s, 3),
                    "s",
                    f"{n:,} accounts, {len(raw):,} bytes in one reply",
                )
            ]
            recon = stack.start_service("reconciler", {
                "TRADEBUS_DATABASE_URL": stack.database_url,
                "TRADEBUS_INTERVAL_SECONDS": "86400",
                "TRADEBUS_REQUEST_TIMEOUT_SECONDS": "600",
            })  # fmt: skip
            deadline = time.monotonic() + 1800
            while not total(m := await asyncio.to_thread(recon.metrics), LAST_RUN) or (
                total(m, RUNS) < n
            ):  # the start-up run, to its end (its reports are counted before they are stored)
                stack.check_running("reconciler", "execution")
                if time.monotonic() > deadline:
                    raise RuntimeError("reconciler's start-up run did not finish")
                await asyncio.sleep(0.5)
            before = total(await asyncio.to_thread(recon.metrics), RUNS)
            t = time.time()
            ask = asyncio.create_task(
                request(stack.nc, subjects.ctl("recon", "run"), ReconRunRequest(), 1800)
            )
            # no /metrics scrapes while it runs: one of N accounts' series costs the
            # reconciler's CPU (~0.1 s at 10,000 accounts)
            while not (await asyncio.wait({ask}, timeout=0.5))[0]:
                stack.check_running("reconciler", "execution")
            try:
                reply = decode_recon_run_reply(ask.result())
                got = f"reply with {len(getattr(reply, 'reports', [])):,} reports"
            except nats.errors.TimeoutError:
                big = "MaxPayloadError" in recon.log_tail(20)
                got = "no reply" + (": over NATS max_payload (1 MiB)" if big else "")
            m = await asyncio.to_thread(recon.metrics)
            wall = total(m, LAST_RUN) - t  # the run ends when it sets its last-run gauge
            done = total(m, RUNS) - before
            return [
                row(
                    "reconciler, end to end (ctl.recon.run)",
                    round(done / wall),
                    "accounts/s",
                    f"{done:,.0f} accounts reconciled in {wall:.1f} s (request to the run's"
                    f" last-run gauge); {got}; execution start-up {exec_start:.0f} s",
                ),
                *rows,
            ]
        finally:
            await stack.close()


async def run(accounts: int = 10_000, e2e: int = 0) -> list[dict]:
    """The in-process row over ``accounts``, then the end-to-end rows over ``e2e`` accounts."""
    rows = await in_process(accounts)
    if e2e:
        rows += await end_to_end(e2e)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=10_000)
    p.add_argument("--e2e", type=int, default=0, metavar="N",
                   help="also run execution + reconciler processes with N accounts")  # fmt: skip
    a = p.parse_args()
    for row in asyncio.run(run(a.accounts, a.e2e)):
        print(f"{row['row']:<52} {row['value']!s:>8} {row['unit']:<10} {row['detail']}")


if __name__ == "__main__":
    main()
