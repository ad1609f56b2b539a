"""The audit log end to end: state changes -> ``audit.<source>`` -> stream AUDIT -> the
gateway's :class:`AuditSink` -> ``audit_log`` (real NATS, real Postgres, real services).

The CLI runs as a person runs it (``tradebus.cli.main.main`` in a worker
thread, as in ``test_cli_control``); the strategy host, execution and the
reconciler run in-process (their real ``run``). Each test starts the sink
after the changes it checks, so the events also wait in the stream first.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import nats.js.errors
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from tests.support.bot_files import BOTS_V1, BOTS_V2
from tests.support.cli import tradebus as run_tradebus
from tests.support.execution import execution_service, execution_settings, reconciler_settings
from tests.support.services import eventually, service
from tradebus.cli.botctl import cli_actor
from tradebus.cli.localstack import LocalPostgres, create_database, with_database
from tradebus.common import subjects
from tradebus.common.bus import ensure_streams, request
from tradebus.common.clock import LiveClock, ManualClock
from tradebus.common.codec import decode_adjust_reply, decode_audit_event, decode_bots_reply
from tradebus.common.ids import UserId
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import (
    AdjustReply,
    AuditEvent,
    BotsReply,
    PaperAdjust,
    ReconRunRequest,
)
from tradebus.control.audit import AuditTrail, as_json
from tradebus.control.botstore import apply_specs
from tradebus.gateway.audit_sink import DURABLE, AuditSink
from tradebus.ledger.audit import AuditLog, AuditRow
from tradebus.ledger.migrate import apply_migrations
from tradebus.ledger.pool import create_pool
from tradebus.ledger.reports.scope import (
    ALL_USERS,
    InvalidCursor,
    ReportArgumentError,
    encode_cursor,
)
from tradebus.reconciler.bootstrap import run as run_reconciler
from tradebus.strategies.botfile import load_specs
from tradebus.strategy.apply import apply_bot_file
from tradebus.strategy.bootstrap import run as run_strategy
from tradebus.strategy.settings import StrategySettings

ACCOUNTS = """
accounts:
  - {id: alice-paper, user: alice, balances: {USDT: "10000", BTC: "0.5"}}
  - {id: bob-paper, user: bob, balances: {USDT: "10000"}}
"""


# --------------------------------------------------------------------------- helpers
async def tradebus(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run ``tradebus ARGV``; its exit status and stdout + stderr."""
    code, out, err = await run_tradebus(capsys, *argv)
    return code, out + err


async def migrated_pool(database_url: str) -> asyncpg.Pool:
    """A ledger pool on ``database_url`` with every migration applied."""
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn)
    return pool


@asynccontextmanager
async def sink_running(js: JetStreamContext, pool: asyncpg.Pool) -> AsyncIterator[AuditSink]:
    """An :class:`AuditSink` running on ``pool`` until the block ends (quick retries)."""
    sink = AuditSink(
        js, AuditLog(pool), fetch_seconds=0.2, retry_seconds=0.1, max_retry_seconds=0.5
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    try:
        yield sink
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def audit_rows(pool: asyncpg.Pool) -> list[AuditRow]:
    """Every row of ``audit_log``, oldest first (through the reader under test)."""
    rows, cursor = await AuditLog(pool).page(user=ALL_USERS, limit=1000)
    assert cursor is None
    return rows[::-1]


def only(rows: list[AuditRow], action: str, target: str | None = None) -> AuditRow:
    """The one row of ``action`` (on ``target``)."""
    found = [r for r in rows if r.action == action and target in (None, r.target)]
    assert len(found) == 1, (action, target, rows)
    return found[0]


async def consumer_drained(js: JetStreamContext) -> bool:
    """True once the sink's consumer exists and has nothing left to deliver or to be acked."""
    try:
        info = await js.consumer_info(subjects.STREAM_AUDIT, DURABLE)
    except nats.js.errors.NotFoundError:  # the sink has not made it yet
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


def event(n: int, **fields: Any) -> AuditEvent:
    """A made-up event number ``n`` (id ``e<n>``, time ``n`` s)."""
    values: dict[str, Any] = {
        "event_id": f"e{n}",
        "ts_event": n * 1_000_000_000,
        "actor": "alice",
        "source": "gateway",
        "action": "bot.pause",
        "target": "bot:alice-btc",
        "user": "alice",
    }
    values.update(fields)
    return AuditEvent(**values)


# ----------------------------------------------------------------------------- tests
async def test_cli_apply_and_a_paused_bot_are_audited_once(
    nats_url: str,
    nc: NATS,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)  # as every service does at start
    pool = await migrated_pool(database_url)
    url = ("--nats-url", nats_url)
    v1, v2 = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    v1.write_text(BOTS_V1)
    v2.write_text(BOTS_V2)
    catalog = MarketCatalog.load(default_markets_path())
    specs_v1 = {str(s.id): s for s in load_specs(v1, catalog)}
    specs_v2 = {str(s.id): s for s in load_specs(v2, catalog)}
    me = cli_actor()

    # a dry run changes nothing and records nothing; the real one records each bot added
    code, out = await tradebus(capsys, "bots", "apply", "-f", str(v1), "--dry-run", *url)
    assert code == 0 and "3 added" in out, out
    assert (await js.stream_info(subjects.STREAM_AUDIT)).state.messages == 0
    code, out = await tradebus(capsys, "bots", "apply", "-f", str(v1), *url)
    assert code == 0 and "3 added" in out, out

    settings = StrategySettings(
        nats_url=nats_url,
        metrics_port=0,
        stop_timeout_seconds=0.2,
        heartbeat_seconds=0.2,
        lease_seconds=2.0,
        replica_id="audit-host",
    )

    runs: dict[str, int] = {}

    async def all_running() -> bool:
        try:
            raw = await nc.request(subjects.ctl("bots", "list"), b"{}", timeout=0.5)
        except Exception:
            return False
        reply = decode_bots_reply(raw.data)
        if not isinstance(reply, BotsReply):
            return False
        runs.update({s.bot: s.run for s in reply.bots})
        return len(reply.bots) == 3

    async with service(run_strategy, settings, all_running):
        code, out = await tradebus(capsys, "bots", "pause", "alice-btc", *url)
        assert code == 0 and "paused" in out, out
        # a refused command (no such bot) changes nothing and is not recorded
        code, out = await tradebus(capsys, "bots", "pause", "nobody-btc", *url)
        assert code == 1, out
    code, out = await tradebus(capsys, "bots", "apply", "-f", str(v2), *url)
    assert code == 0 and "1 added, 1 changed, 1 removed" in out, out

    async with sink_running(js, pool) as sink:
        await eventually(lambda: sink.written == 7, what="7 rows", detail=lambda: str(sink.written))
        rows = await audit_rows(pool)
        assert sorted((r.action, r.target) for r in rows) == [
            ("bot.create", "bot:alice-btc"),
            ("bot.create", "bot:bob-vol"),
            ("bot.create", "bot:carol-btc"),
            ("bot.create", "bot:dave-vol"),
            ("bot.delete", "bot:carol-btc"),
            ("bot.pause", "bot:alice-btc"),
            ("bot.update", "bot:bob-vol"),
        ]
        pause = only(rows, "bot.pause")
        assert (pause.actor, pause.source, pause.user) == (me, "strategy", "alice")
        # a fresh start's run is its state record's KV revision: 1, 2 or 3 by start order
        run = runs["alice-btc"]
        assert pause.before == {"state": "running", "run": run}
        assert pause.after == {"state": "paused", "run": run}
        assert pause.details["host"] == "audit-host"
        update = only(rows, "bot.update")
        assert (update.actor, update.source, update.user) == (me, "cli", "bob")
        assert update.before == as_json(specs_v1["bob-vol"])
        assert update.after == as_json(specs_v2["bob-vol"])
        assert update.after["params"]["trade_interval_seconds"] == "9"  # type: ignore[index]
        created = only(rows, "bot.create", "bot:dave-vol")
        assert (created.before, created.after) == (None, as_json(specs_v2["dave-vol"]))
        deleted = only(rows, "bot.delete")
        assert (deleted.user, deleted.before, deleted.after) == (
            "carol",
            as_json(specs_v1["carol-btc"]),
            None,
        )
        assert all(r.ts > 0 and r.event_id for r in rows)

        # the same event again: JetStream drops a republish in its window (same message
        # id); one that gets past it (no id) is stored once all the same
        raw = await js.get_last_msg(subjects.STREAM_AUDIT, subjects.audit("strategy"))
        assert raw.data is not None
        again = decode_audit_event(raw.data)
        await AuditTrail(js, "strategy", LiveClock()).publish(again)
        await js.publish(subjects.audit("strategy"), raw.data)
        await eventually(lambda: sink.duplicates == 1, what="the duplicate seen")
        await eventually(lambda: consumer_drained(js), what="everything acked")
        assert (sink.written, sink.duplicates) == (7, 1)
        count = await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE event_id = $1", again.event_id
        )
        assert count == 1
    await pool.close()


async def test_the_compose_one_shot_audits_what_it_applies(
    nats_url: str, nc: NATS, tmp_path: Path
) -> None:
    """``tradebus-bots-apply`` (compose's ``bots-apply``, the strategy hosts' NATS user) may
    run first on a fresh bus: it makes the streams and records on ``audit.strategy``."""
    path = tmp_path / "bots.yaml"
    path.write_text(BOTS_V1)
    dry = await apply_bot_file(nats_url, str(path), dry_run=True)
    assert len(dry.added) == 3
    js = nc.jetstream()
    with pytest.raises(nats.js.errors.NotFoundError):  # a dry run made nothing
        await js.stream_info(subjects.STREAM_AUDIT)
    result = await apply_bot_file(nats_url, str(path), actor="bots-apply:ops")
    assert sorted(result.added) == ["alice-btc", "bob-vol", "carol-btc"]
    info = await js.stream_info(subjects.STREAM_AUDIT)
    assert info.state.messages == 3
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await js.get_msg(subjects.STREAM_AUDIT, seq)
        assert raw.subject == subjects.audit("strategy") and raw.data is not None
        events.append(decode_audit_event(raw.data))
    assert sorted((e.action, e.target, e.user, e.actor) for e in events) == [
        ("bot.create", "bot:alice-btc", "alice", "bots-apply:ops"),
        ("bot.create", "bot:bob-vol", "bob", "bots-apply:ops"),
        ("bot.create", "bot:carol-btc", "carol", "bots-apply:ops"),
    ]


async def test_kill_switch_and_paper_adjust_are_audited(
    nats_url: str,
    nc: NATS,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    js = nc.jetstream()
    settings = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    url = ("--nats-url", nats_url)
    async with execution_service(nc, settings):
        code, out = await tradebus(
            capsys, "killswitch", "engage", "--account", "bob-paper", "--reason", "drill", *url
        )
        assert code == 0 and "bob-paper: ENGAGED: drill" in out, out
        code, out = await tradebus(capsys, "killswitch", "release", "--account", "bob-paper", *url)
        assert code == 0, out
        code, out = await tradebus(capsys, "killswitch", "status", *url)  # a read: not recorded
        assert code == 0, out
        # a bare request names no actor: recorded as "nats"
        await nc.request(subjects.CTL_KILLSWITCH, b'{"action":"engage"}', timeout=10)
        adjust = PaperAdjust(account="alice-paper", asset="USDT", delta=D("-10"), actor="alice")
        reply = decode_adjust_reply(await request(nc, subjects.CTL_PAPER_ADJUST, adjust))
        assert isinstance(reply, AdjustReply), reply
        bad = PaperAdjust(account="nobody", asset="USDT", delta=D(1), actor="alice")
        await request(nc, subjects.CTL_PAPER_ADJUST, bad)  # refused: not recorded

    pool = await migrated_pool(database_url)
    async with sink_running(js, pool) as sink:
        await eventually(lambda: sink.written == 4, what="4 rows", detail=lambda: str(sink.written))
        await asyncio.sleep(0.5)  # nothing more comes
        rows = await audit_rows(pool)
    assert [r.action for r in rows] == [
        "killswitch.engage",
        "killswitch.release",
        "killswitch.engage",
        "paper.adjust",
    ]
    engage, release, global_engage, paper = rows
    me = cli_actor()
    assert (engage.actor, engage.source, engage.target, engage.user) == (
        me,
        "execution",
        "account:bob-paper",
        "bob",
    )
    assert (engage.before, engage.after) == ({"reason": None}, {"reason": "drill", "canceled": 0})
    assert (release.actor, release.before, release.after) == (
        me,
        {"reason": "drill"},
        {"reason": None},
    )
    assert (global_engage.actor, global_engage.target, global_engage.user) == (
        "nats",
        "global",
        None,
    )
    assert global_engage.after == {"reason": "engaged by an operator", "canceled": 0}
    assert (paper.actor, paper.target, paper.user) == ("alice", "account:alice-paper", "alice")
    assert paper.before == {"asset": "USDT", "total": "10000"}
    assert paper.after == {"asset": "USDT", "total": "9990"}
    assert paper.details == {"delta": "-10"}
    await pool.close()


async def test_recon_run_and_its_drift_policies_are_audited(
    nats_url: str, nc: NATS, database_url: str, tmp_path: Path
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    execution = execution_settings(nats_url, database_url, tmp_path, ACCOUNTS)
    reconciler = msgspec.structs.replace(
        reconciler_settings(nats_url, database_url, {"DEFAULT": D("0.0001")}),
        drift_policies={"alice-paper": "adjust", "bob-paper": "halt"},
    )
    host = StrategySettings(
        nats_url=nats_url,
        metrics_port=0,
        stop_timeout_seconds=0.2,
        heartbeat_seconds=0.2,
        lease_seconds=2.0,
        replica_id="audit-host",
    )
    bots = tmp_path / "bots.yaml"
    bots.write_text(BOTS_V1)
    catalog = MarketCatalog.load(default_markets_path())
    await apply_specs(js, [s for s in load_specs(bots, catalog) if s.id == "bob-vol"])
    pool = await migrated_pool(database_url)

    async def reports_in_db() -> bool:  # the first run is over (both accounts)
        return await pool.fetchval("SELECT count(*) FROM recon_reports") == 2

    async def bob_running() -> bool:
        try:
            raw = await nc.request(subjects.ctl("bots", "list"), b"{}", timeout=0.5)
        except Exception:
            return False
        reply = decode_bots_reply(raw.data)
        return isinstance(reply, BotsReply) and [b.state for b in reply.bots] == ["running"]

    async with (
        execution_service(nc, execution),
        service(run_strategy, host, bob_running),
        service(run_reconciler, reconciler, reports_in_db),
    ):
        # the timer's first run (all ok) acts on no one's behalf: not recorded
        await pool.execute(
            "INSERT INTO journal (account_id, asset, amount, kind, ref, ts) VALUES"
            " ('alice-paper', 'BTC', -0.0002, 'adjustment', 'test', 0),"
            " ('bob-paper', 'USDT', 5, 'adjustment', 'test', 0)"
        )
        ask = ReconRunRequest(actor="cli:ops")
        await request(nc, subjects.ctl("recon", "run"), ask, timeout=15)
        assert not await bob_running()  # halted

    async with sink_running(js, pool) as sink:
        await eventually(lambda: sink.written == 5, what="5 rows", detail=lambda: str(sink.written))
        await asyncio.sleep(0.5)
        assert sink.written == 5
        rows = await audit_rows(pool)
    by_action = {r.action: r for r in rows}
    assert sorted(by_action) == [
        "bot.pause",
        "drift.adjust",
        "drift.halt",
        "ledger.adjust",
        "recon.run",
    ]
    run = by_action["recon.run"]
    assert (run.actor, run.source, run.target, run.user) == (
        "cli:ops",
        "reconciler",
        "accounts",
        None,
    )
    assert run.after == {"accounts": 2, "drifting": 2}
    adjust = by_action["drift.adjust"]
    assert (adjust.actor, adjust.source, adjust.target, adjust.user) == (
        "reconciler",
        "reconciler",
        "account:alice-paper",
        "alice",
    )
    assert (adjust.before, adjust.after) == ({"drift": {"BTC": "0.0002"}}, {"action": "adjusted"})
    ledger = by_action["ledger.adjust"]
    assert (ledger.actor, ledger.source, ledger.target, ledger.user) == (
        "reconciler",
        "execution",
        "account:alice-paper",
        "alice",
    )
    assert ledger.after == {"entries": [{"asset": "BTC", "amount": "0.0002", "price": None}]}
    assert str(ledger.details["ref"]).startswith("recon:alice-paper:")
    halt = by_action["drift.halt"]
    assert (halt.actor, halt.target, halt.user) == ("reconciler", "account:bob-paper", "bob")
    assert (halt.before, halt.after) == ({"drift": {"USDT": "-5"}}, {"action": "halted:1 bots"})
    pause = by_action["bot.pause"]
    assert (pause.actor, pause.source, pause.target, pause.user) == (
        "reconciler",
        "strategy",
        "bot:bob-vol",
        "bob",
    )
    assert (pause.before, pause.after) == (
        {"state": "running", "run": 1},
        {"state": "paused", "run": 1},
    )
    await pool.close()


async def test_malformed_messages_never_stop_the_sink(nc: NATS, database_url: str) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    pool = await migrated_pool(database_url)
    await js.publish("audit.x", b"not json at all")
    await js.publish("audit.cli", b'{"type":"AuditEvent","event_id":"no-fields"}')
    # an event of another source on audit.cli: the subject vouches for the source
    await js.publish(subjects.audit("cli"), msgspec.json.encode(event(1, source="strategy")))
    # values Postgres cannot hold, in the same batch as good events
    await js.publish(subjects.audit("gateway"), msgspec.json.encode(event(2, actor="a\x00b")))
    nul_details = event(3, details={"note": "a\x00b"})
    await js.publish(subjects.audit("gateway"), msgspec.json.encode(nul_details))
    await js.publish(subjects.audit("gateway"), msgspec.json.encode(event(4)))
    async with sink_running(js, pool) as sink:
        await eventually(lambda: consumer_drained(js), what="every message settled")
        await js.publish(subjects.audit("gateway"), msgspec.json.encode(event(5)))
        await eventually(lambda: sink.written == 2, what="the good events written")
        assert sink.rejected == 5
        assert [r.event_id for r in await audit_rows(pool)] == ["e4", "e5"]
    await pool.close()


@pytest.fixture
def postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL of the test's own, so it can be stopped and started again."""
    root = Path(tempfile.mkdtemp(prefix="tradebus-pg-audit-"))
    server = LocalPostgres(root, fast=True)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(180)
async def test_the_sink_waits_out_a_postgres_outage_and_loses_nothing(
    nc: NATS, postgres: LocalPostgres
) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    await create_database(postgres.url(), "tradebus")
    pool = await migrated_pool(with_database(postgres.url(), "tradebus"))
    trail = AuditTrail(js, "gateway", ManualClock(1))
    async with sink_running(js, pool) as sink:
        for i in range(5):
            await trail.record("alice", "bot.pause", f"bot:b{i}", user=UserId("alice"))
        await eventually(lambda: sink.written == 5, what="written before the outage")

        await asyncio.to_thread(postgres.stop)
        for i in range(5, 10):
            await trail.record("alice", "bot.pause", f"bot:b{i}", user=UserId("alice"))
        await eventually(lambda: not sink.healthy, what="the sink sees the outage")
        await asyncio.sleep(1.0)
        assert sink.written == 5
        info = await js.consumer_info(subjects.STREAM_AUDIT, DURABLE)
        assert info.num_ack_pending + info.num_pending == 5  # waiting, not dropped

        await asyncio.to_thread(postgres.start, port=postgres.port)
        await eventually(lambda: sink.written == 10, timeout=60, what="caught up")
        await eventually(lambda: consumer_drained(js), what="everything acked")
        assert sink.healthy and sink.rejected == 0
        rows = await audit_rows(pool)
    assert sorted(r.target for r in rows) == sorted(f"bot:b{i}" for i in range(10))
    assert len({r.event_id for r in rows}) == 10
    await pool.close()


async def test_page_filters_pages_exactly_and_scopes_to_the_user(database_url: str) -> None:
    pool = await migrated_pool(database_url)
    log = AuditLog(pool)
    users = ["alice", "bob", None]
    actions = ["bot.pause", "bot.resume", "killswitch.engage", "account.create"]
    events = [
        event(
            n,
            ts_event=(n // 2) * 1_000_000_000,  # pairs share a time: the id breaks the tie
            user=users[n % 3],
            action=actions[n % 4],
            target=f"bot:b{n % 5}" if n % 2 else f"account:a{n % 5}",
            actor="admin" if n % 7 == 0 else "alice",
            before={"n": n},
        )
        for n in range(40)
    ]
    assert await log.write(events[:30]) == 30
    # a batch with a stored event and one twice: each is stored once
    assert await log.write([events[0], *events[30:], events[39]]) == 10
    assert await log.write([]) == 0

    async def walk(limit: int, **filters: Any) -> list[int]:
        seen: list[int] = []
        cursor = None
        while True:
            rows, cursor = await log.page(cursor=cursor, limit=limit, **filters)
            assert len(rows) <= limit
            seen += [r.before["n"] for r in rows]  # type: ignore[index]
            if cursor is None:
                return seen
            assert len(rows) == limit

    def number(e: AuditEvent) -> int:
        assert e.before is not None
        return int(e.before["n"])

    def expected(keep: Any) -> list[int]:
        """Numbers of the events ``keep`` selects, newest first (time, then write order)."""
        kept = sorted((e for e in events if keep(e)), key=lambda e: (e.ts_event, number(e)))
        return [number(e) for e in reversed(kept)]

    everything = expected(lambda e: True)
    for limit in (1, 3, 7, 40, 1000):
        assert await walk(limit, user=ALL_USERS) == everything
    assert await walk(4, user=UserId("alice")) == expected(lambda e: e.user == "alice")
    assert await walk(4, user=UserId("bob")) == expected(lambda e: e.user == "bob")
    assert await walk(4, user=UserId("carol")) == []
    # a user never sees another user's rows, nor the system's, whatever they ask
    alice_rows, _ = await log.page(user=UserId("alice"), limit=1000)
    assert {r.user for r in alice_rows} == {"alice"}
    since, until = 5 * 1_000_000_000, 12 * 1_000_000_000
    assert await walk(2, user=ALL_USERS, since_ns=since, until_ns=until) == expected(
        lambda e: since <= e.ts_event < until
    )
    assert await walk(3, user=ALL_USERS, action="bot.") == expected(
        lambda e: e.action.startswith("bot.")
    )
    assert await walk(3, user=UserId("bob"), action="bot.pause") == expected(
        lambda e: e.user == "bob" and e.action == "bot.pause"
    )
    assert await walk(2, user=ALL_USERS, target="bot:b3", actor="alice") == expected(
        lambda e: e.target == "bot:b3" and e.actor == "alice"
    )
    # a target is a prefix (every bot; one account), never a pattern
    assert await walk(3, user=ALL_USERS, target="bot:") == expected(
        lambda e: e.target.startswith("bot:")
    )
    assert await walk(3, user=ALL_USERS, target="account:a2") == expected(
        lambda e: e.target == "account:a2"
    )
    assert await walk(3, user=ALL_USERS, target="%") == []
    assert await walk(5, user=ALL_USERS, action="bot._") == []  # no LIKE wildcards

    # every field comes back as written
    (row,), _ = await log.page(user=ALL_USERS, target="bot:b4", action="account.", limit=1)
    source = next(e for e in events if e.event_id == row.event_id)
    assert (row.ts, row.actor, row.source, row.action, row.target, row.user) == (
        source.ts_event,
        source.actor,
        source.source,
        source.action,
        source.target,
        source.user,
    )
    assert (row.before, row.after, row.details) == (source.before, None, {})

    # bad arguments name themselves
    _, cursor = await log.page(user=ALL_USERS, limit=2)
    assert cursor is not None
    of_orders = encode_cursor("orders", True, (1, 2))
    for garbled in ("!!!", cursor[:-3], cursor + "AAAA", "eyJ4IjoxfQ", "", of_orders):
        with pytest.raises(InvalidCursor) as caught:
            await log.page(user=ALL_USERS, cursor=garbled)
        assert caught.value.field == "cursor"
    with pytest.raises(ReportArgumentError) as bad:
        await log.page(user=None, limit=5)  # type: ignore[arg-type]
    assert bad.value.field == "user"
    for kwargs, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"since_ns": 5, "until_ns": 4}, "since_ns"),
        ({"action": ""}, "action"),
        ({"target": "a\x00"}, "target"),
    ):
        with pytest.raises(ReportArgumentError) as bad:
            await log.page(user=ALL_USERS, **kwargs)
        assert bad.value.field == field, kwargs
    stored = json.loads(await pool.fetchval("SELECT before::text FROM audit_log WHERE id = 1"))
    assert stored == {"n": 0}
    await pool.close()
