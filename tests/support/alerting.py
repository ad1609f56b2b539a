"""A real Prometheus and a real Alertmanager on free ports, for tests of alert delivery.

* :class:`MetricsTarget`: a ``/metrics`` endpoint serving whatever exposition text the
  test sets (the scrape target it controls, standing in for a service).
* :func:`rules_copy`: real rules of ``deploy/prometheus/rules`` (same expr, labels and
  annotations) with a short ``for:``, so that they fire in seconds.
* :class:`Alerting`, and the fixture :func:`alerting` (registered in tests/conftest.py):
  Prometheus (:class:`tradebus.cli.prom.LocalPrometheus`) scraping the target every second
  and evaluating the rules, its alerts sent to Alertmanager
  (:class:`tradebus.cli.prom.LocalAlertmanager`: deploy/alertmanager/alertmanager.yml,
  the routes by severity, timings of a second), which posts to the ``webhook_url`` given:
  a :class:`tests.support.webhooks.WebhookReceiver`'s, or the notifier's
  ``/v1/alertmanager`` to chain through it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradebus.cli.prom import RULES_DIR, LocalAlertmanager, LocalPrometheus

FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
"""Alertmanager route timings of the tests: a group is sent a second after its first
alert, a change of it (resolved) a second later; no repeat within a test."""


class _Server:
    """A ThreadingHTTPServer on a free port of 127.0.0.1, served by a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()


class _MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        target: MetricsTarget = self.server.owner  # type: ignore[attr-defined]
        body = target.text.encode() if self.path.startswith("/metrics") else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsTarget(_Server):
    """``http://127.0.0.1:<port>/metrics`` serving :attr:`text` (Prometheus' text format)."""

    def __init__(self) -> None:
        self.text = ""
        super().__init__(_MetricsHandler)

    def set(self, text: str) -> None:
        """Serve ``text`` from the next scrape on."""
        self.text = text


def real_rule(name: str) -> dict[str, Any]:
    """The alerting rule ``name`` of deploy/prometheus/rules, as written there.

    Raises
    ------
    KeyError
        If there is no such alert.
    """
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == name:
                    return dict(rule)
    raise KeyError(f"no alert {name} in {RULES_DIR}")


def rules_copy(folder: Path, names: list[str], for_: str = "1s") -> Path:
    """A rules folder holding the real rules ``names`` with ``for: <for_>`` (same expr,
    labels and annotations); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rules = [{**real_rule(name), "for": for_} for name in names]
    text = yaml.safe_dump({"groups": [{"name": "copy", "rules": rules}]}, sort_keys=False)
    (folder / "rules.yml").write_text(text)
    return folder


class Alerting:
    """A metrics target and (after :meth:`start`) Prometheus and Alertmanager alerting a
    webhook, all under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.target = MetricsTarget()
        self.prometheus = LocalPrometheus(root / "prometheus", root / "rules")
        self.alertmanager = LocalAlertmanager(root / "alertmanager")

    def start(self, rules: list[str], webhook_url: str, job: str = "execution") -> None:
        """Alertmanager posting to ``webhook_url`` with
        :data:`FAST` timings, then Prometheus scraping :attr:`target` as ``job`` every
        second with the real ``rules`` (``for: 1s``), alerting that Alertmanager.

        Raises
        ------
        tradebus.cli.localstack.LocalServerError
            If a binary is missing (``make prometheus-tools``) or does not start.
        """
        rules_copy(self.root / "rules", rules)
        self.alertmanager.start(webhook_url, FAST)
        self.prometheus.start(
            {job: [self.target.port]}, scrape_seconds=1.0, alertmanager=self.alertmanager.address
        )

    def stop(self) -> None:
        """Stop everything it started."""
        self.prometheus.stop()
        self.alertmanager.stop()
        self.target.close()


@pytest.fixture
def alerting(tmp_path: Path) -> Iterator[Alerting]:
    """An :class:`Alerting` under ``tmp_path`` (call its ``start``), stopped after the test."""
    stack = Alerting(tmp_path / "alerting")
    try:
        yield stack
    finally:
        stack.stop()
