"""Service processes of the local stack: start with their real entry points, watch, stop.

``tradebus demo`` launches the services (execution, reconciler, strategy, gateway,
marketdata) with the same console scripts
compose runs (``tradebus-marketdata`` ...), each in its own session (so the
terminal's Ctrl+C reaches only the orchestrator, which stops them in order),
with stdout and stderr in ``<logs>/<service>.log``, and reads their state from
their Prometheus endpoints.

A service process gets a minimal environment: the allow-listed variables of
this one (:func:`base_env`: where programs, the locale, the time zone and
Python are; nothing that holds a credential), its own ``TRADEBUS_*``
settings, and only the variables named for it (``pass_env``: execution's API
keys given through ``api_key_env``/``secret_env``). So a key given to the
demo through the environment is in execution's environment alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]
"""Metric samples by sample name (``tradebus_x_total``): ``[(labels, value), ...]``."""


def scrape(port: int, timeout: float = 2.0) -> Samples:
    """Fetch and parse ``http://127.0.0.1:<port>/metrics``; empty if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            text = r.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    out: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((sample.labels, sample.value))
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for sample_labels, value in samples.get(name, [])
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


BASE_ENV = frozenset(
    {
        *("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "VIRTUAL_ENV"),
        *("SSL_CERT_FILE", "SSL_CERT_DIR", "LD_LIBRARY_PATH"),
    }
)
"""Variables every service process inherits (besides :data:`BASE_ENV_PREFIXES`): what a
Python program needs to run and to verify TLS, never a credential. Proxy variables
are left out on purpose (their URLs may carry a password)."""
BASE_ENV_PREFIXES = ("LC_", "PYTHON")
"""Prefixes of inherited variables: the locale categories, the interpreter's own."""


def base_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of ``environ`` (default ``os.environ``) that every service
    process inherits: :data:`BASE_ENV` and :data:`BASE_ENV_PREFIXES`."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k in BASE_ENV or k.startswith(BASE_ENV_PREFIXES)}


def entry_point(name: str) -> str:
    """Path of console script ``name`` in this interpreter's environment."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class ServiceProcess:
    """One service of the local stack.

    Parameters
    ----------
    name
        Instance name (``marketdata``, ``strategy-2``): its log is ``<name>.log``.
    env
        Its ``TRADEBUS_*`` settings.
    log_dir
        Where ``<name>.log`` goes.
    metrics_port
        Its ``TRADEBUS_METRICS_PORT`` (added to ``env``).
    service
        Which service it runs (console script ``tradebus-<service>``); default ``name``.
    pass_env
        Names of variables of this process's environment that it receives too (besides
        :func:`base_env`): execution's key variables. A name that is not set is left out.
    """

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_dir: Path,
        metrics_port: int,
        service: str | None = None,
        pass_env: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.service = service or name
        self.metrics_port = metrics_port
        self.env = {**env, "TRADEBUS_METRICS_PORT": str(metrics_port)}
        self.pass_env = tuple(pass_env)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def process_env(self) -> dict[str, str]:
        """The whole environment it starts with: :func:`base_env`, the ``pass_env``
        variables that are set, its settings."""
        passed = {k: os.environ[k] for k in self.pass_env if k in os.environ}
        return {**base_env(), **passed, **self.env}

    def start(self) -> None:
        """Launch the process (its own session, output to its log file)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [entry_point(f"tradebus-{self.service}")],
                env=self.process_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return None if self.proc is None else self.proc.pid

    def returncode(self) -> int | None:
        """Exit status if it has exited, else None."""
        return None if self.proc is None else self.proc.poll()

    def metrics(self) -> Samples:
        """Its current metrics (empty if not reachable)."""
        return scrape(self.metrics_port)

    def is_ready(self) -> bool:
        """True once it reports ``tradebus_<service>_ready 1``."""
        return total(self.metrics(), f"tradebus_{self.service}_ready") >= 1

    def peak_rss_kib(self) -> int | None:
        """Peak resident set size (``VmHWM``) in KiB while it runs; None if unknown."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except (OSError, TypeError):
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of its log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` if it is running."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for it to exit; its status or None."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait, then SIGKILL if needed; returns the exit status."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.proc.kill()
            code = self.wait(5)
        return code
