"""A real Prometheus and Alertmanager for the local stack: the repo's alert rules and routes.

``tradebus demo --with-prometheus`` starts both next to the local stack, so
the dashboards' queries and the alert rules of ``deploy/`` can be tried (and
are tested) against live metrics without Docker. The Prometheus configuration
is the compose one (``deploy/prometheus/prometheus.yml``: same job names, same
rule files) with the service addresses replaced by the local metrics ports,
and its alerts go to the local Alertmanager. The Alertmanager configuration is
``deploy/alertmanager/alertmanager.yml`` (the same routes by severity) with
its receivers' webhook URLs replaced by a local one (or dropped), and, for
tests, shorter group timings.

The binaries are ``$TRADEBUS_PROMETHEUS`` / ``$TRADEBUS_ALERTMANAGER`` (and so on,
see :func:`find_tool`), else ``.tools/prometheus/bin/<name>`` of the repository
(``make prometheus-tools``, run by ``make demo PROMETHEUS=1`` and ``make test``:
Debian's packages, deploy/prometheus/install-prometheus-tools.sh), else ``<name>``
on ``PATH``. Both listen on free ports of 127.0.0.1 only (Alertmanager's cluster
port is turned off), never on 9090/9093/9094.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from tradebus.cli.localstack import LocalServerError, _stop_process, free_port

REPO = Path(__file__).resolve().parents[4]
"""The repository root (the cli package lives in ``<repo>/cli/src/tradebus/cli``)."""
TOOLS_BIN = REPO / ".tools" / "prometheus" / "bin"
"""Where ``make prometheus-tools`` puts prometheus, promtool, alertmanager and amtool."""
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
TIMINGS = ("group_wait", "group_interval", "repeat_interval")
"""Alertmanager's route timings (Prometheus durations such as ``1s``, ``5m``)."""


def find_tool(name: str) -> Path:
    """The binary ``name`` (``prometheus``, ``promtool``, ``alertmanager``, ``amtool``).

    Looked up as ``$TRADEBUS_<NAME>``, then ``.tools/prometheus/bin/<name>``, then
    ``PATH``.

    Raises
    ------
    LocalServerError
        If there is none (with what to do).
    """
    variable = f"TRADEBUS_{name.upper()}"
    candidates = [
        os.environ.get(variable, ""),
        str(TOOLS_BIN / name),
        shutil.which(name) or "",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise LocalServerError(
        f"no {name} binary: run `make prometheus-tools` (on Debian it puts one in"
        f" .tools/prometheus/bin) or set {variable}"
    )


def find_prometheus() -> Path:
    """The prometheus binary to run (:func:`find_tool`).

    Raises
    ------
    LocalServerError
        If there is none (with what to do).
    """
    return find_tool("prometheus")


def local_config(
    targets: dict[str, list[int]],
    scrape_seconds: float,
    rules: list[Path],
    alertmanager: str | None = None,
) -> str:
    """The Prometheus config (YAML is a superset of JSON) scraping ``{job: [ports]}`` on
    127.0.0.1 every ``scrape_seconds`` (rules evaluated as often), with ``rules`` loaded
    and, given ``alertmanager`` (``host:port``), its alerts sent there."""
    interval = f"{max(1, round(scrape_seconds))}s"
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rules],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}],
            }
            for job, ports in sorted(targets.items())
        ],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return json.dumps(config, indent=2)


def local_alertmanager_config(
    webhook_url: str | None,
    timings: Mapping[str, str] | None = None,
    source: Path = ALERTMANAGER_CONFIG,
) -> str:
    """The Alertmanager config of ``source`` (the compose one) for a local run.

    Parameters
    ----------
    webhook_url
        Every receiver's webhook URL (``http://127.0.0.1:<port>/v1/alertmanager``: the
        notifier, or a test's receiver); ``None``: receivers without a webhook (alerts
        are only shown in Alertmanager's UI and API).
    timings
        ``group_wait``, ``group_interval``, ``repeat_interval`` (e.g. ``{"group_wait":
        "1s"}``) set on the root route and on every route under it, for tests.

    Raises
    ------
    ValueError
        If a timing name is not one of :data:`TIMINGS`.
    """
    config = yaml.safe_load(source.read_text())
    for receiver in config.get("receivers") or []:
        hooks = receiver.pop("webhook_configs", None) or []
        if webhook_url is not None and hooks:
            receiver["webhook_configs"] = [{**hook, "url": webhook_url} for hook in hooks]
    unknown = sorted(set(timings or {}) - set(TIMINGS))
    if unknown:
        raise ValueError(f"timings: unknown {', '.join(unknown)} (known: {', '.join(TIMINGS)})")
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        route.update(timings or {})
        routes.extend(route.get("routes") or [])
    return yaml.safe_dump(config, sort_keys=False)


def _get_json(url: str) -> Any:
    """The decoded JSON body of ``GET url`` (an HTTP error's body too)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return msgspec.json.decode(response.read())
    except urllib.error.HTTPError as exc:
        return msgspec.json.decode(exc.read())


def _launch(name: str, args: list[str], log: Path, url: str) -> subprocess.Popen[bytes]:
    """Start ``args`` with output to ``log``; return once ``url/-/ready`` answers 200.

    Raises
    ------
    LocalServerError
        If it exits or is not ready within 30 s (it is then stopped).
    """
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            last = (log.read_text(errors="replace").strip().splitlines() or [""])[-1]
            raise LocalServerError(f"{name} exited with {proc.returncode}: {last} (log: {log})")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    _stop_process(proc, signal.SIGTERM, 10)
    raise LocalServerError(f"{name} was not ready within 30 s; see {log}")


class LocalPrometheus:
    """One Prometheus process with its data under ``root``.

    Parameters
    ----------
    root
        Its config, TSDB and log go here.
    rules_dir
        Where the alert rule files are (``*.yml``); default the repository's
        ``deploy/prometheus/rules``.
    """

    def __init__(self, root: Path, rules_dir: Path | None = None) -> None:
        self.root = root
        self.rules_dir = rules_dir or RULES_DIR
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.scrape_seconds = 1.0
        self.alertmanager: str | None = None
        self.targets: dict[str, list[int]] = {}

    @property
    def config_file(self) -> Path:
        """Its configuration file (written by :meth:`start` and :meth:`set_targets`)."""
        return self.root / "prometheus.yml"

    def _write_config(self) -> None:
        rules = sorted(self.rules_dir.glob("*.yml"))
        config = local_config(self.targets, self.scrape_seconds, rules, self.alertmanager)
        self.config_file.write_text(config)

    def start(
        self,
        targets: dict[str, list[int]],
        scrape_seconds: float = 1.0,
        alertmanager: str | None = None,
    ) -> str:
        """Start scraping ``{job: [metrics ports]}`` every ``scrape_seconds``, its alerts
        sent to ``alertmanager`` (``host:port``, or none); return its URL once it is ready.

        Raises
        ------
        LocalServerError
            If there is no binary, or it exits or is not ready within 30 s.
        """
        binary = find_prometheus()
        self.root.mkdir(parents=True, exist_ok=True)
        self.targets = {job: list(ports) for job, ports in targets.items()}
        self.scrape_seconds = scrape_seconds
        self.alertmanager = alertmanager
        self._write_config()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        args = [
            str(binary),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        self.proc = _launch("prometheus", args, self.root / "prometheus.log", self.url)
        return self.url

    def set_targets(self, targets: dict[str, list[int]]) -> None:
        """Scrape ``{job: [metrics ports]}`` from now on (config rewritten, then reloaded
        with SIGHUP). A job left out is kept with no target: Prometheus then ends the
        series of its old targets, ``up`` included, with staleness markers about two
        scrape intervals later, instead of reading ``up == 0`` forever. (A job removed
        from the config keeps its last ``up`` for 5 minutes: Prometheus writes no
        staleness markers when a whole scrape pool goes away.)"""
        self.targets = {job: [] for job in self.targets} | {
            job: list(ports) for job, ports in targets.items()
        }
        self._write_config()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` of ``expr`` now: the ``data`` object.

        Raises
        ------
        ValueError
            With Prometheus' error (a bad expression).
        """
        body = _get_json(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        return dict(body["data"])

    def active_targets(self) -> list[dict[str, Any]]:
        """``/api/v1/targets``' active targets (``labels.job``, ``health``, ...)."""
        return list(_get_json(f"{self.url}/api/v1/targets?state=active")["data"]["activeTargets"])

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM, 10)
            self.proc = None


class LocalAlertmanager:
    """One Alertmanager process (no cluster) with its config and data under ``root``.

    Parameters
    ----------
    root
        Its config (``alertmanager.yml``), data (silences, notification log) and log.
    source
        The config it is made from (default ``deploy/alertmanager/alertmanager.yml``;
        :func:`local_alertmanager_config`).
    """

    def __init__(self, root: Path, source: Path = ALERTMANAGER_CONFIG) -> None:
        self.root = root
        self.source = source
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.address = ""
        """``127.0.0.1:<port>``, what Prometheus' ``alerting:`` section names."""

    def start(
        self, webhook_url: str | None = None, timings: Mapping[str, str] | None = None
    ) -> str:
        """Start it with every receiver posting to ``webhook_url`` (or none) and the
        route ``timings`` given; return its URL once it is ready.

        Raises
        ------
        LocalServerError
            If there is no binary, or it exits or is not ready within 30 s.
        ValueError
            If a timing name is unknown.
        """
        binary = find_tool("alertmanager")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "alertmanager.yml"
        config.write_text(local_alertmanager_config(webhook_url, timings, self.source))
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        self.url = f"http://{self.address}"
        args = [
            str(binary),
            f"--config.file={config}",
            f"--storage.path={self.root / 'data'}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",  # no gossip port (it would take 0.0.0.0:9094)
        ]
        self.proc = _launch("alertmanager", args, self.root / "alertmanager.log", self.url)
        return self.url

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts it holds now (``/api/v2/alerts``: ``labels``, ``status``, ...)."""
        return list(_get_json(f"{self.url}/api/v2/alerts"))

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM, 10)
            self.proc = None
