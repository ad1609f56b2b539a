"""``tradebus demo``: the whole stack on one machine, without Docker.

1. Servers: nats-server and PostgreSQL from their wheels on free ports, data
   under ``var/`` (or the servers of ``NATS_URL`` / ``DATABASE_URL``); the local
   nats-server runs in operator mode as compose's does (``tradebus nats-init``:
   identities under ``var/nats/auth``, made once and kept; every service as
   its own user with its own ``.creds``; one NATS account per person of the
   accounts file, and each person's ``.creds`` written for the NATS CLI).
2. Migrations with ``tradebus-migrate``; then execution, reconciler and
   strategy, then the gateway, then marketdata, each as its own process with
   the entry point compose uses, each with a minimal environment: live
   accounts' keys given through variables (``api_key_env``, ``secret_env``)
   reach execution alone. The gateway serves the web API on 127.0.0.1
   (``--gateway-port``, 8080 if free), with an admin and a login per person of
   the accounts file (random passwords, printed and kept in
   ``var/gateway/logins``; :mod:`tradebus.cli.demo_gateway`). The notifier
   follows (the ``notifications.yaml`` beside the accounts file, if there is
   one; channels users save through the gateway; Alertmanager's receiver on a
   free port, printed).
3. A live status line; the end of the recorded data (``--data``), the
   duration, or Ctrl+C ends the run. With ``--stay`` (the default for a replay
   on a terminal) the end of the data does not: the stack settles, then stays
   up, bots, gateway and web page included, until Ctrl+C.
4. Shutdown in order: the feed stops, the bots cancel their orders, the
   intents drain, a final reconciliation runs, the services and servers stop.
5. A summary per user and bot, and the reconciliation of every account.

While it runs, ``<var>/demo/connection.json`` says where its NATS is and with
which operator credentials, so that ``tradebus bots list`` and the other
commands find it without flags (:mod:`tradebus.cli.connection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import msgspec
import nats.errors
from nats.aio.msg import Msg

from tradebus.backtest.chart import ChartFill, PriceSample, write_chart
from tradebus.cli.connection import DemoConnection, remove_connection, write_connection
from tradebus.cli.demo_gateway import (
    DEFAULT_GATEWAY_PORT,
    Login,
    ServiceKeys,
    built_page,
    create_logins,
    gateway_env,
    gateway_port,
    service_keys,
)
from tradebus.cli.localstack import LocalServerError, free_port
from tradebus.cli.processes import total
from tradebus.cli.prom import LocalAlertmanager, LocalPrometheus, find_tool
from tradebus.cli.stack import LocalStack, StackError
from tradebus.cli.summary import ledger_summary, render_bots, render_recon, render_statuses
from tradebus.cli.users import UsersError
from tradebus.common import subjects
from tradebus.common.codec import decode_bot_status_changed
from tradebus.common.config import ConfigError
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import BotStatus, ReconReport
from tradebus.natsauth.identities import people_of
from tradebus.natsauth.permissions import OPERATOR
from tradebus.strategies.botfile import load_specs
from tradebus.strategies.registry import build_bot

BINANCE_WS_URL = "wss://stream.binance.com:9443/stream"


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
    nats_dir: Path | None = None
    """The NATS identities of the local nats-server (default ``var/nats/auth``; unused
    with ``nats_url``)."""
    with_prometheus: bool = False
    """Also run a real Prometheus with the repo's rules, scraping every service, and an
    Alertmanager with the repo's routes that its alerts go to."""
    gateway_port: int = DEFAULT_GATEWAY_PORT
    """The gateway's port on 127.0.0.1 (another free one if it is taken)."""
    stay: bool = False
    """With ``data``: when the replay has ended and the stack settled, keep every service
    running (bots with their state, positions and fills; the gateway and its page) until
    Ctrl+C, instead of stopping at once."""


def say(text: str) -> None:
    """Print a line of the demo's own output."""
    print(text, flush=True)


def replay_files(data: Path, symbols: set[str]) -> list[Path]:
    """Binance raw-feed captures in ``data`` for ``symbols``.

    Raises
    ------
    StackError
        If the directory has none for those symbols.
    """
    files = [
        p
        for p in sorted(data.glob("binance-spot_*_rawfeed_*.txt*"))
        if p.name.split("_")[1] in symbols
    ]
    if not files:
        raise StackError(
            f"no Binance raw-feed recordings (binance-spot_<SYMBOL>_rawfeed_*.txt.gz) for "
            f"{', '.join(sorted(symbols))} in {data}"
        )
    return files


def key_variables(accounts: Path) -> list[str]:
    """Names of the variables the accounts file reads live keys from (``api_key_env``,
    ``secret_env``): the only ones of this environment that execution receives besides
    the allow-listed ones (:func:`tradebus.cli.processes.base_env`).

    Raises
    ------
    ConfigError
        If the accounts file is invalid (the message names every bad field).
    """
    from tradebus.engine.accounts import load_accounts  # ccxt: only when the demo runs

    specs = load_accounts(accounts)
    return sorted({name for s in specs for name in (s.api_key_env, s.secret_env) if name})


def check_online(url: str) -> None:
    """Fail at once, with the way out, when the live feed at ``url`` cannot be reached."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=3).close()
    except OSError as exc:
        raise StackError(
            f"cannot reach the live Binance feed ({parts.hostname}:{port}: {exc}).\n"
            "To replay recorded data instead, run:  make demo DATA=../shared/data"
        ) from None


def check_prometheus_tools() -> None:
    """Fail at once, with the way out, when ``--with-prometheus`` has no binaries to run.

    Raises
    ------
    StackError
        Naming the missing binary and how to get it.
    """
    for name in ("prometheus", "alertmanager"):
        try:
            find_tool(name)
        except LocalServerError as exc:
            raise StackError(f"--with-prometheus: {exc}") from None


class Demo:
    """One run: which services with which settings, status, end, ordered shutdown."""

    def __init__(self, opts: DemoOptions, stack: LocalStack) -> None:
        self.opts = opts
        self.stack = stack
        self.interrupted = asyncio.Event()
        self.started = time.monotonic()
        self.prometheus: LocalPrometheus | None = None
        self.alertmanager: LocalAlertmanager | None = None
        self.gateway_url = ""
        """``http://127.0.0.1:<port>`` once the gateway is up."""
        self.gateway_port = 0
        """The gateway's HTTP port, once started."""
        self.page: Path | None = None
        """The web page the gateway serves (None: not built)."""
        self.codes: dict[str, int | None] = {}
        """Exit status of each service stopped (:meth:`shutdown`)."""
        self.notifier_url = ""
        """The notifier's Alertmanager receiver (``.../v1/alertmanager``) once started."""

    async def start(self, symbols: list[str], keys: list[str] | None = None) -> None:
        """Servers, migrations, then execution, reconciler, strategy, marketdata.

        ``keys``: the variables execution alone receives (default: read from the accounts
        file, :func:`key_variables`; :func:`prepare` has read them already).

        Raises
        ------
        ConfigError
            Before anything starts, if ``keys`` is None and the accounts file is invalid.
        StackError
            If a server or a service does not start.
        """
        stack, opts = self.stack, self.opts
        if keys is None:
            keys = key_variables(opts.accounts)
        service_keys_ = service_keys(stack.root)
        await stack.start_servers()
        self.publish_connection()
        self.show_nats_cli()
        await stack.connect()
        await stack.migrate()
        db = {"TRADEBUS_DATABASE_URL": stack.database_url}
        stack.start_service(
            "execution",
            {
                **db,
                "TRADEBUS_ACCOUNTS_FILE": str(opts.accounts),
                "TRADEBUS_SEAL_KEY_FILE": str(service_keys_.seal_private),
            },
            pass_env=keys,
        )
        interval = {"TRADEBUS_INTERVAL_SECONDS": str(opts.recon_interval)}
        stack.start_service("reconciler", {**db, **interval})
        stack.start_service(
            "strategy", {"TRADEBUS_BOTS_FILE": str(opts.bots), "TRADEBUS_HEARTBEAT_SECONDS": "0.5"}
        )
        # the gateway and the notifier start beside them (their imports take seconds of CPU;
        # neither needs execution or the host to start), each announced once ready
        logins = await self.launch_gateway(service_keys_)
        self.launch_notifier(service_keys_)
        await stack.wait_ready("execution", "strategy")
        await self.announce_gateway(logins)
        await self.announce_notifier()
        self.publish_connection()
        feed = {
            "TRADEBUS_SYMBOLS": ",".join(symbols),
            "TRADEBUS_BINANCE_WS_URL": opts.binance_ws_url,
        }
        if opts.data is not None:
            files = replay_files(opts.data, set(symbols))
            feed["TRADEBUS_REPLAY_FILES"] = ",".join(str(p) for p in files)
            feed["TRADEBUS_REPLAY_SPEED"] = opts.speed
            say(f"replaying {len(files)} files from {opts.data} at speed {opts.speed}")
        stack.start_service("marketdata", feed)
        if opts.with_prometheus:
            await self.start_prometheus()

    async def start_prometheus(self) -> None:
        """Alertmanager (the routes of deploy/alertmanager, its receivers posting to the
        demo's notifier, which delivers to the operators' channels of the notifications
        file, if any), then Prometheus scraping every service, alerting it; say both URLs.

        Raises
        ------
        StackError
            If a binary is missing or does not start.
        """
        root = self.stack.root
        self.alertmanager = LocalAlertmanager(root / "alertmanager")
        self.prometheus = LocalPrometheus(root / "prometheus")
        try:
            am_url = await asyncio.to_thread(self.alertmanager.start, self.notifier_url or None)
            url = await asyncio.to_thread(
                self.prometheus.start,
                self.running_targets(),
                alertmanager=self.alertmanager.address,
            )
        except LocalServerError as exc:
            raise StackError(str(exc)) from None
        say(f"prometheus at {url} (alert rules of deploy/prometheus/rules)")
        say(
            f"alertmanager at {am_url} (routes of deploy/alertmanager; its alerts:"
            f" .tools/prometheus/bin/amtool --alertmanager.url={am_url} alert)"
        )

    def running_targets(self) -> dict[str, list[int]]:
        """``{service: [metrics port]}`` of the services running now."""
        return {
            name: [svc.metrics_port]
            for name, svc in self.stack.services.items()
            if svc.returncode() is None
        }

    def drop_finished_targets(self) -> None:
        """Stop scraping services that have exited (the replay's marketdata): a target no
        one serves reads ``up == 0`` and TradebusServiceDown would fire for as long as the
        stack stays up."""
        if self.prometheus is not None and set(self.running_targets()) != set(
            self.prometheus.targets
        ):
            self.prometheus.set_targets(self.running_targets())

    async def launch_gateway(self, keys: ServiceKeys) -> list[Login]:
        """Make the demo's logins and start the gateway (:meth:`announce_gateway` waits
        for it); the logins.

        Raises
        ------
        StackError
            If a login cannot be made.
        """
        stack = self.stack
        try:
            logins = await create_logins(
                stack.database_url, people_of(self.opts.accounts), stack.root / "gateway"
            )
        except UsersError as exc:
            raise StackError(f"gateway logins: {exc}") from None
        self.gateway_port = gateway_port(self.opts.gateway_port)
        self.page = built_page()
        stack.start_service(
            "gateway",
            gateway_env(stack.database_url, self.gateway_port, keys, stack.nats_auth, self.page),
        )
        return logins

    async def announce_gateway(self, logins: list[Login]) -> None:
        """Wait for the gateway; say its URL, docs page and ``logins``.

        Raises
        ------
        StackError
            If the gateway does not start.
        """
        stack = self.stack
        await stack.wait_ready("gateway")
        url = f"http://127.0.0.1:{self.gateway_port}"
        self.gateway_url = url
        say(
            f"gateway   {url}   API docs: {url}/api/docs   events: ws://127.0.0.1:{self.gateway_port}/api/v1/events"
        )
        shown = ", ".join(f"{x.user} / {x.password}" for x in logins)
        if self.page is not None:
            say(f"web page: {url}/   log in with: {shown}")
        else:
            say("          no web page: web/dist is not built (`make install` with Node.js)")
        say(f"          logins ({_shown(stack.root / 'gateway' / 'logins')}): {shown}")

    def publish_connection(self) -> None:
        """Write ``<var>/demo/connection.json`` so that ``tradebus bots list`` & co. find
        this demo's NATS (and its operator credentials) without flags
        (:mod:`tradebus.cli.connection`); :func:`run_demo` removes it at the end."""
        stack = self.stack
        write_connection(
            self.opts.var,
            DemoConnection(
                nats_url=stack.nats_url,
                nats_creds=str(Path(stack.nats_creds(OPERATOR)).resolve())
                if stack.nats_auth
                else "",
                database_url=stack.database_url if stack.pg_server is not None else "",
                gateway_url=self.gateway_url,
                pid=os.getpid(),
            ),
        )

    def launch_notifier(self, keys: ServiceKeys) -> None:
        """Start the notifier (README "Notifications"); :meth:`announce_notifier` waits."""
        stack = self.stack
        port = free_port()
        env = {
            "TRADEBUS_DATABASE_URL": stack.database_url,
            "TRADEBUS_SEAL_PRIVATE_KEY_FILE": str(keys.notify_private),
            "TRADEBUS_HTTP_PORT": str(port),
        }
        notifications = self.opts.accounts.parent / "notifications.yaml"
        if notifications.is_file():
            env["TRADEBUS_NOTIFICATIONS_FILE"] = str(notifications)
        stack.start_service("notifier", env)
        self.notifier_url = f"http://127.0.0.1:{port}/v1/alertmanager"

    async def announce_notifier(self) -> None:
        """Wait for the notifier; say where Alertmanager posts to.

        Raises
        ------
        StackError
            If it does not start (e.g. an invalid notifications file).
        """
        await self.stack.wait_ready("notifier")
        say(f"notifier  Alertmanager webhook: {self.notifier_url}")

    def show_nats_cli(self) -> None:
        """In operator mode: write each person's ``.creds`` and say how the NATS CLI
        uses them (their own intents and events only)."""
        auth = self.stack.nats_auth
        if auth is None or not auth.people:
            return
        paths = {user: self.stack.person_creds(user) for user in auth.people}
        folder = _shown(paths[auth.people[0]].parent)
        first = auth.people[0]
        say(f"NATS CLI  each person's credentials (7 days) in {folder}/<user>.creds, e.g.")
        say(
            f"            nats --server {self.stack.nats_url} --creds {_shown(paths[first])}"
            f" sub 'exec.evt.{first}.>'"
        )
        say(f"          the operator's: {_shown(Path(self.stack.nats_creds('operator')))}")

    # ------------------------------------------------------------------- status
    def status_line(self) -> str:
        """One line of live status from the bus and the services' metrics."""
        services = self.stack.services
        strategy = services["strategy"].metrics()
        execution = services["execution"].metrics()
        ok = [
            v for _, v in services["reconciler"].metrics().get("tradebus_reconciler_account_ok", [])
        ]
        accepted = total(execution, "tradebus_execution_orders_total", status="accepted")
        recon_text = f"{int(sum(ok))}/{len(ok)} ok" if ok else "pending"
        return (
            f"[{time.monotonic() - self.started:6.1f}s] ticks {sum(self.stack.ticks.values()):,}"
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
        for name, service in self.stack.services.items():
            code = service.returncode()
            if code is None or (name == "marketdata" and code == 0 and self.opts.data):
                continue
            raise StackError(f"{name} exited with status {code}:\n{service.log_tail()}")

    async def run_until_end(self) -> bool:
        """Show status until the data ends (and the stack settles), the time is up, or Ctrl+C.

        Returns True when the end was the end of the replayed data (not the time, not Ctrl+C).

        Raises
        ------
        StackError
            If a service dies.
        """
        replay_ended = False
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
            if self.opts.data is not None and self.stack.services["marketdata"].returncode() == 0:
                self.drop_finished_targets()
                await self.wait_settled()
                replay_ended = not self.interrupted.is_set()
                break
            await asyncio.sleep(0.2)
        self.show(await asyncio.to_thread(self.status_line), final=True)
        return replay_ended

    async def stay_up(self) -> None:
        """After the replay: keep every service running, say so, and wait for Ctrl+C.

        Raises
        ------
        StackError
            If a service dies meanwhile.
        """
        url = f"{self.gateway_url}/" if self.gateway_url else "(no gateway)"
        say(
            f"replay finished; the stack stays up for the web page and the API at {url}"
            " \N{EM DASH} Ctrl+C stops it"
        )
        while not self.interrupted.is_set():
            self.check_alive()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.interrupted.wait(), 1.0)

    async def wait_settled(self, timeout: float = 300.0) -> None:
        """After the replay: wait until every tick is processed and no intent is in flight."""
        published = sum(self.stack.ticks.values())
        stable = 0
        previous: tuple[float, ...] = ()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.interrupted.is_set():
            strategy = self.stack.services["strategy"].metrics()
            execution = self.stack.services["execution"].metrics()
            pending = await self.stack.intents_pending()
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

    # ----------------------------------------------------------------- shutdown
    async def stop_bots(self) -> dict[str, BotStatus]:
        """Stop the strategy host(s) and return every bot's status as of after the stop.

        The hosts stop their bots (their cancels go out per ``cancel_on_exit``) and, on
        the way out, publish each bot's final status (``stopped``) on ``bot.status.>``
        (:mod:`tradebus.strategy.status_events`); those replace the statuses gathered
        before the stop (``ctl.bots.list``), which remain for a bot whose final one did
        not arrive (a host killed, not stopped).
        """
        stack = self.stack
        assert stack.nc is not None
        statuses = await stack.bot_statuses()
        final: dict[str, BotStatus] = {}

        async def on_status(msg: Msg) -> None:
            with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                changed = decode_bot_status_changed(msg.data)
                final[changed.status.bot] = changed.status

        sub = await stack.nc.subscribe(subjects.BOT_STATUS_ALL, cb=on_status)
        await stack.nc.flush()
        say("stopping bots (cancel_on_exit) ...")
        self.codes["strategy"] = await stack.stop_service("strategy", 40)
        # the host published its last statuses before it exited: draining the subscription
        # (a round trip to the server, then every message handed to on_status) brings them in
        with contextlib.suppress(nats.errors.Error):
            await sub.drain()
        statuses.update(final)
        return statuses

    async def shutdown(
        self,
    ) -> tuple[dict[str, BotStatus], list[ReconReport], dict[str, int | None]]:
        """Stop in order; returns bot statuses, the final reconciliation and exit codes."""
        stack, services = self.stack, self.stack.services
        codes = self.codes
        if "gateway" in services:  # no one changes anything during the shutdown
            codes["gateway"] = await stack.stop_service("gateway")
        if "marketdata" in services:
            codes["marketdata"] = await stack.stop_service("marketdata")
        statuses: dict[str, BotStatus] = {}
        if "strategy" in services:
            statuses = await self.stop_bots()
        reports: list[ReconReport] = []
        if "execution" in services and services["execution"].returncode() is None:
            deadline = time.monotonic() + 30
            while await stack.intents_pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            if "reconciler" in services:
                reports = await stack.reconcile_now()
        for name in ("reconciler", "execution"):
            if name in services:
                codes[name] = await stack.stop_service(name)
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.alertmanager is not None:
            self.alertmanager.stop()
        return statuses, reports, codes


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _install_interrupts(demo: Demo) -> None:
    def on_signal() -> None:
        if demo.interrupted.is_set():
            say("\nsecond interrupt: killing everything")
            for service in demo.stack.services.values():
                service.signal(signal.SIGKILL)
            raise SystemExit(130)
        say("\ninterrupted: shutting down cleanly (Ctrl+C again to kill)")
        demo.interrupted.set()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, on_signal)
    loop.add_signal_handler(signal.SIGTERM, on_signal)


async def _summary(db_url: str, statuses: dict[str, BotStatus]) -> str:
    conn = await asyncpg.connect(db_url)
    try:
        return render_bots(await ledger_summary(conn, statuses))
    finally:
        await conn.close()


async def _chart(db_url: str, prices: dict[str, list[PriceSample]], path: Path) -> Path | None:
    """Draw the run's chart (:mod:`.chart`) from the ledger's fills and the sampled prices."""
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT o.source, f.symbol, f.side, f.price, f.qty, f.fee, f.ts_event"
            " FROM fills f JOIN orders o USING (client_order_id) ORDER BY f.ts_event"
        )
    finally:
        await conn.close()
    fills = [
        ChartFill(
            bot=r["source"],
            symbol=r["symbol"],
            side=r["side"],
            price=r["price"],
            qty=r["qty"],
            fee=r["fee"],
            ts_ns=r["ts_event"],
        )
        for r in rows
    ]
    return await asyncio.to_thread(write_chart, fills, prices, path)


class DemoPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What the checked inputs of a demo run hold (:func:`prepare`)."""

    bots: int
    """Bots of the bot file."""
    users: int
    """Users owning them."""
    symbols: list[str]
    """Every market the bots trade (the feed's symbols)."""
    key_variables: list[str]
    """Variables live keys are read from (:func:`key_variables`), for execution alone."""


def prepare(opts: DemoOptions) -> DemoPlan:
    """Check every input of the run before anything starts (no server, no ``var/``).

    The options' own shapes (``--speed``, ``--duration``, ``--recon-interval``,
    ``--gateway-port``) are checked by the command line parser; this checks what needs
    the files: the bot file loads and builds, the accounts file loads, and the replay
    directory holds recordings of the bots' symbols (or the live feed is reachable).

    Raises
    ------
    ConfigError
        ``--bots FILE: ...`` or ``--accounts FILE: ...`` naming every bad field.
    StackError
        ``--data DIR: ...`` without recordings for the bots' symbols; ``--speed`` or
        ``--duration`` out of range; offline without ``--data``; ``--with-prometheus``
        without the Prometheus tools.
    """
    if opts.duration is not None and not opts.duration > 0:
        raise StackError(f"--duration: must be > 0 seconds (got {opts.duration})")
    if opts.speed != "max":
        try:
            speed = float(opts.speed)
        except ValueError:
            speed = 0.0
        if not speed > 0:
            raise StackError(f"--speed: must be 'max' or a number > 0 (got {opts.speed!r})")
    catalog = MarketCatalog.load(default_markets_path())
    try:
        bots = [build_bot(spec, catalog) for spec in load_specs(opts.bots, catalog)]
    except ConfigError as exc:
        raise ConfigError(f"--bots {exc}") from None
    try:
        keys = key_variables(opts.accounts)
    except ConfigError as exc:
        raise ConfigError(f"--accounts {exc}") from None
    symbols = sorted({m.symbol for b in bots for m in b.ctx.all_markets()})
    if opts.with_prometheus:
        check_prometheus_tools()
    if opts.data is None:
        check_online(opts.binance_ws_url)
    else:
        try:
            replay_files(opts.data, set(symbols))
        except StackError as exc:
            raise StackError(f"--data: {exc}") from None
    return DemoPlan(
        bots=len(bots),
        users=len({b.ctx.user for b in bots}),
        symbols=symbols,
        key_variables=keys,
    )


async def run_demo(opts: DemoOptions) -> int:
    """Run the demo; returns the process exit status (0 ok, 1 failure, 3 drift or no report).

    Raises
    ------
    StackError, ConfigError
        Before anything starts (:func:`prepare`): a bad option, bot or accounts file,
        offline without ``--data``, or no recordings in it.
    """
    plan = prepare(opts)
    symbols = plan.symbols
    opts.var.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(opts.var / "logs", ignore_errors=True)
    stack = LocalStack(
        opts.var,
        opts.nats_url,
        opts.database_url,
        opts.reset_streams,
        say,
        nats_auth=True,  # operator mode, one NATS account per person of the file
        people=people_of(opts.accounts),
        nats_dir=opts.nats_dir,
    )
    demo = Demo(opts, stack)
    _install_interrupts(demo)
    say(f"tradebus demo: {plan.bots} bots, {plan.users} users, {', '.join(symbols)}")
    failed = False
    try:
        await demo.start(symbols, plan.key_variables)
        if await demo.run_until_end() and opts.stay:
            await demo.stay_up()
    except StackError as exc:
        say(f"error: {exc}")
        failed = True
    finally:
        remove_connection(opts.var)  # the CLI no longer finds this demo: it is stopping
    statuses, reports, codes = await demo.shutdown()
    table = await _summary(stack.database_url, statuses) if stack.services else ""
    chart = None
    if stack.services:
        chart = await _chart(stack.database_url, stack.prices, opts.var / "demo.png")
    await stack.close()
    say("\n== bots (ledger) ==\n" + (table or "(nothing ran)"))
    if statuses:
        say("\n== bot status ==\n" + render_statuses(list(statuses.values())))
    say("\n== reconciliation ==\n" + (render_recon(reports) if reports else "(no report)"))
    bad_exits = {n: c for n, c in codes.items() if c not in (0, None)}
    if bad_exits:
        say(f"services exited with errors: {bad_exits}")
    drift = [r.account for r in reports if r.status != "ok"]
    if drift:
        say(f"reconciliation DRIFT on {', '.join(drift)}")
    if chart is not None:
        say(f"chart of prices, fills and each bot's P&L: {chart}")
    say(f"logs in {opts.var / 'logs'}")
    if failed or bad_exits:
        return 1
    return 3 if drift or not reports else 0
