"""Alertmanager's config (deploy/alertmanager/alertmanager.yml) against amtool.

``amtool check-config`` validates it with the Alertmanager version compose runs
(Debian's ``prometheus-alertmanager`` package, extracted into .tools/prometheus by
``make test``: deploy/prometheus/install-prometheus-tools.sh; or ``$TRADEBUS_AMTOOL``),
and ``amtool config routes test`` shows where an alert of each severity the rules use
goes: its own receiver, posting to the notifier with resolved alerts too, sooner and
more often the more severe. Without amtool these tests fail: they are never skipped.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradebus.cli.localstack import LocalServerError
from tradebus.cli.prom import ALERTMANAGER_CONFIG, local_alertmanager_config
from tradebus.cli.prom import find_tool as find_prometheus_tool

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules"
NOTIFIER_URL = "http://notifier:9095/v1/alertmanager"
"""The notifier's Alertmanager endpoint in compose (its TRADEBUS_HTTP_PORT)."""
SECONDS = {"s": 1, "m": 60, "h": 3600}


@functools.cache
def amtool() -> str:
    try:
        return str(find_prometheus_tool("amtool"))
    except LocalServerError as exc:
        pytest.fail(str(exc), pytrace=False)


def run_amtool(*args: str) -> str:
    proc = subprocess.run(
        [amtool(), *args], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, f"amtool {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def config() -> dict[str, Any]:
    return dict(yaml.safe_load(ALERTMANAGER_CONFIG.read_text()))


def severities() -> set[str]:
    """The ``severity`` labels of every alert rule."""
    return {
        rule["labels"]["severity"]
        for path in RULES.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def seconds(duration: str) -> int:
    return int(duration[:-1]) * SECONDS[duration[-1]]


def route_for(severity: str) -> dict[str, Any]:
    """The timings that apply to an alert of ``severity`` (its route over the root's)."""
    root = config()["route"]
    routes = [r for r in root["routes"] if f'severity="{severity}"' in r.get("matchers", [])]
    assert len(routes) == 1, f"no single route matches severity={severity}"
    return {**root, **routes[0]}


def test_amtool_check_config() -> None:
    output = run_amtool("check-config", str(ALERTMANAGER_CONFIG))
    assert "SUCCESS" in output, output


def test_the_local_config_is_valid_too(tmp_path: Path) -> None:
    """What ``tradebus demo`` and the tests run: receivers to a local URL, or none."""
    for url in ("http://127.0.0.1:8/hook", None):
        path = tmp_path / "alertmanager.yml"
        path.write_text(local_alertmanager_config(url, {"group_wait": "1s"}))
        assert "SUCCESS" in run_amtool("check-config", str(path))
    with pytest.raises(ValueError, match="group_weight"):
        local_alertmanager_config(None, {"group_weight": "1s"})


@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
def test_each_severity_has_its_receiver(severity: str) -> None:
    receiver = run_amtool(
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        "alertname=TradebusTest",
        f"severity={severity}",
    ).strip()
    assert receiver == f"operators-{severity}"


def test_every_rule_severity_is_routed() -> None:
    routed = {m.split('"')[1] for r in config()["route"]["routes"] for m in r["matchers"]}
    assert severities() <= routed, f"severities without a route: {severities() - routed}"


def test_every_receiver_posts_to_the_notifier_with_resolved_alerts() -> None:
    receivers = config()["receivers"]
    assert receivers
    for receiver in receivers:
        hooks = receiver.get("webhook_configs") or []
        assert [h["url"] for h in hooks] == [NOTIFIER_URL], receiver["name"]
        assert all(h.get("send_resolved") is True for h in hooks), receiver["name"]


def test_critical_is_sent_sooner_and_repeated_more_often() -> None:
    critical, warning, info = (route_for(s) for s in ("critical", "warning", "info"))
    for timing in ("group_wait", "repeat_interval"):
        values = [seconds(r[timing]) for r in (critical, warning, info)]
        assert values == sorted(values) and values[0] < values[1], (timing, values)
    assert seconds(critical["group_wait"]) <= 30, "critical: within seconds"
