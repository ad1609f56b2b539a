"""Every dashboard panel and every alert rule, evaluated by a real Prometheus on the trading stack.

``tradebus demo --with-prometheus`` replays the recorded data through the
whole local stack and runs a real Prometheus (``make test`` puts the
binary in ``.tools``) with the repository's alert rules, scraping every
service each second and alerting a real Alertmanager (checked wired).
While the bots trade, every PromQL expression of every panel of every
dashboard in ``deploy/grafana/dashboards`` (the per-user one for each user)
and of every alert rule in ``deploy/prometheus/rules`` goes through
Prometheus' HTTP API. A query error fails the test, and so does a
panel query that returns no series: a dashboard whose queries return
nothing is worse than none. Alert expressions may be empty (nothing is
wrong); they must parse and evaluate. So may the panels of the exporters only
compose runs (NATS and PostgreSQL, ``deploy/grafana/dashboards_lib/exporters.py``):
the demo has none, so those queries must evaluate but have no data here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_dashboards import exporter_metrics, metric_names
from tradebus.cli.prom import LocalPrometheus

REPO = Path(__file__).resolve().parents[2]
TRADEBUS = str(REPO / ".venv" / "bin" / "tradebus")
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
RULES = REPO / "deploy" / "prometheus" / "rules"
URL_LINE = re.compile(rb"prometheus at (http://127\.0\.0\.1:\d+)")
AM_LINE = re.compile(rb"alertmanager at (http://127\.0\.0\.1:\d+)")


def panel_queries() -> Iterator[tuple[str, str, str]]:
    """``(dashboard, panel title, expr)`` of every target of every dashboard."""
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        panels = list(board.get("panels", []))
        while panels:
            panel = panels.pop(0)
            panels.extend(panel.get("panels", []))  # collapsed rows
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield board["title"], panel.get("title", ""), target["expr"]


def alert_queries() -> Iterator[tuple[str, str]]:
    """``(alert, expr)`` of every rule."""
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text()).get("groups") or []:
            for rule in group.get("rules", []):
                yield rule.get("alert") or rule.get("record"), rule["expr"]


def compose_only(expr: str) -> bool:
    """True if ``expr`` reads only metrics of the exporters compose runs (not the demo)."""
    exported = {m for names in exporter_metrics().values() for m in names}
    used = metric_names(expr)
    return bool(used) and used <= exported


def has_series(data: dict[str, Any]) -> bool:
    """True if a query result holds at least one series or a scalar."""
    return data["resultType"] == "scalar" or bool(data["result"])


@pytest.mark.slow  # make test-all (~60 s); make test checks every rule with promtool
@pytest.mark.timeout(420)
async def test_every_panel_and_alert_query_works_on_the_trading_stack(
    nats_url: str, database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    proc = await asyncio.create_subprocess_exec(
        TRADEBUS,
        "demo",
        "--data",
        str(data_dir),
        "--speed",
        "15",
        "--duration",
        "120",
        "--with-prometheus",
        "--var",
        str(tmp_path / "var"),
        cwd=REPO,
        env={**clean, "NATS_URL": nats_url, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output: list[bytes] = []
    prometheus = LocalPrometheus(tmp_path / "unused")
    alertmanager = ""
    while not (prometheus.url and alertmanager):
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line, b"".join(output).decode()
        output.append(line)
        if m := URL_LINE.search(line):
            prometheus.url = m.group(1).decode()
        if m := AM_LINE.search(line):
            alertmanager = m.group(1).decode()
    # the demo's Prometheus sends its alerts to the demo's Alertmanager (found within seconds)
    wired = [f"{alertmanager}/api/v2/alerts"]
    active: list[str] = []
    for _ in range(100):
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/alertmanagers", timeout=10) as r:
            active = [a["url"] for a in json.loads(r.read())["data"]["activeAlertmanagers"]]
        if active:
            break
        await asyncio.sleep(0.2)
    assert active == wired, active
    with urllib.request.urlopen(f"{alertmanager}/api/v2/status", timeout=10) as r:
        routes = json.loads(r.read())["config"]["original"]
    assert "operators-critical" in routes, "the demo's Alertmanager: deploy/alertmanager's routes"

    async def drain() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            output.append(line)

    reader = asyncio.create_task(drain())

    async def value(expr: str) -> float:
        data = await asyncio.to_thread(prometheus.query, expr)
        return float(data["result"][0]["value"][1]) if data["result"] else 0.0

    # trading: fills booked, bots running, and a few scrapes of it
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        fills = await value("sum(tradebus_execution_fills_recorded_total)")
        bots = await value('sum(tradebus_strategy_bots{state="running"})')
        if fills >= 5 and bots >= 5:
            break
        await asyncio.sleep(1)
    else:
        pytest.fail("the stack did not trade: " + b"".join(output).decode()[-3000:])
    await asyncio.sleep(8)  # rate()/increase() windows with several samples of the trading

    users = sorted(
        {
            s["metric"]["user"]
            for s in (await asyncio.to_thread(prometheus.query, "tradebus_strategy_bot_position"))[
                "result"
            ]
        }
    )
    assert len(users) >= 3, users
    errors: list[str] = []
    empty: list[str] = []
    checked = 0
    for board, title, expr in panel_queries():
        for user in users if "$user" in expr else [None]:
            query = expr.replace("$user", user) if user else expr
            try:
                data = await asyncio.to_thread(prometheus.query, query)
            except ValueError as exc:
                errors.append(f"{board} / {title}: {exc}")
                continue
            checked += 1
            if not has_series(data) and not compose_only(query):
                empty.append(f"{board} / {title} [{user or ''}]: {query}")
    alerts = 0
    for name, expr in alert_queries():
        try:
            await asyncio.to_thread(prometheus.query, expr)
            alerts += 1
        except ValueError as exc:
            errors.append(f"alert {name}: {exc}")
    code = await asyncio.wait_for(proc.wait(), 300)
    await reader
    text = b"".join(output).decode()
    assert not errors, "\n".join(errors)
    assert not empty, "panel queries without data while trading:\n" + "\n".join(empty)
    assert checked >= 60 and alerts >= 15, (checked, alerts)
    assert code == 0, text[-3000:]
