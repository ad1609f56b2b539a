"""A real Prometheus for the local stack: the repo's alert rules, scraping the local services.

``tradebus demo --with-prometheus`` starts one next to the local stack, so
the dashboards' queries and the alert rules of ``deploy/`` can be tried (and
are tested) against live metrics without Docker. The configuration is the
compose one (``deploy/prometheus/prometheus.yml``: same job names, same rule
files) with the service addresses replaced by the local metrics ports.

The binary is ``$TRADEBUS_PROMETHEUS``, else ``.tools/prometheus/bin/prometheus``
of the repository (installed by ``make install``), else ``prometheus`` on
``PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

from tradebus.cli.localstack import LocalServerError, _stop_process, free_port

REPO = Path(__file__).resolve().parents[4]
"""The repository root (the cli package lives in ``<repo>/cli/src/tradebus/cli``)."""


def find_prometheus() -> Path:
    """The prometheus binary to run.

    Raises
    ------
    LocalServerError
        If there is none (with what to do).
    """
    candidates = [
        os.environ.get("TRADEBUS_PROMETHEUS", ""),
        str(REPO / ".tools" / "prometheus" / "bin" / "prometheus"),
        shutil.which("prometheus") or "",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise LocalServerError(
        "no prometheus binary: run `make install` (it puts one in .tools/prometheus/bin)"
        " or set TRADEBUS_PROMETHEUS"
    )


def local_config(targets: dict[str, list[int]], scrape_seconds: float, rules: list[Path]) -> str:
    """The Prometheus config (YAML is a superset of JSON) scraping ``{job: [ports]}`` on
    127.0.0.1 every ``scrape_seconds``, with ``rules`` loaded."""
    interval = f"{max(1, round(scrape_seconds))}s"
    config = {
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
    return json.dumps(config, indent=2)


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
        self.rules_dir = rules_dir or REPO / "deploy" / "prometheus" / "rules"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, targets: dict[str, list[int]], scrape_seconds: float = 1.0) -> str:
        """Start scraping ``{job: [metrics ports]}``; return its URL once it is ready.

        Raises
        ------
        LocalServerError
            If there is no binary, or it exits or is not ready within 30 s.
        """
        binary = find_prometheus()
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "prometheus.yml"
        rules = sorted(self.rules_dir.glob("*.yml"))
        config.write_text(local_config(targets, scrape_seconds, rules))
        port = free_port()
        log = self.root / "prometheus.log"
        args = [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LocalServerError(f"prometheus exited with {self.proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self.url
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise LocalServerError(f"prometheus was not ready within 30 s; see {log}")

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` of ``expr`` now: the ``data`` object.

        Raises
        ------
        ValueError
            With Prometheus' error (a bad expression).
        """
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = msgspec.json.decode(response.read())
        except urllib.error.HTTPError as exc:
            body = msgspec.json.decode(exc.read())
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM, 10)
            self.proc = None
