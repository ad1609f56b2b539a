"""The Prometheus alert rules (deploy/prometheus/rules) against promtool.

``promtool check config`` on deploy/prometheus/prometheus.yml, ``promtool check rules``
on every rules file, and ``promtool test rules`` on deploy/prometheus/tests: the unit
tests that show each alert firing (and not firing) on made-up series. Every alert must
have both kinds of test there, a ``for:``, a ``severity`` and annotations for the
operator, and may only query metrics the services declare.

promtool comes from ``make test`` (Debian's prometheus package extracted into
.tools/prometheus, see deploy/prometheus/install-prometheus-tools.sh), or ``$PROMTOOL``.
Without it these tests fail: they are never skipped.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
TESTS = PROMETHEUS / "tests"
CONTAINER_DIR = "/etc/prometheus"  # where docker-compose.yml mounts deploy/prometheus
SEVERITIES = {"critical", "warning"}
METRIC = re.compile(r"\b(tradebus_\w+)")


@functools.cache
def promtool() -> str:
    """The promtool binary: ``$PROMTOOL``, else .tools/prometheus/bin/promtool."""
    path = Path(os.environ.get("PROMTOOL") or ROOT / ".tools" / "prometheus" / "bin" / "promtool")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"promtool not found at {path}: run `make prometheus-tools` (it extracts Debian's"
            " prometheus package into .tools/prometheus), or set PROMTOOL=/path/to/promtool",
            pytrace=False,
        )
    return str(path)


def run_promtool(*args: str) -> str:
    proc = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def rule_files() -> list[Path]:
    """The repository's files matched by prometheus.yml's ``rule_files``."""
    config = yaml.safe_load(CONFIG.read_text())
    files: list[Path] = []
    for pattern in config.get("rule_files") or []:
        assert pattern.startswith(CONTAINER_DIR + "/"), f"rule_files {pattern}: not under /etc"
        matched = sorted(PROMETHEUS.glob(pattern.removeprefix(CONTAINER_DIR + "/")))
        assert matched, f"rule_files {pattern} matches no file in deploy/prometheus"
        files += matched
    assert files, "prometheus.yml loads no rule file"
    return files


def unit_test_files() -> list[Path]:
    files = sorted(TESTS.glob("*.yml"))
    assert files, f"no promtool unit tests in {TESTS.relative_to(ROOT)}"
    return files


def alerting_rules() -> list[dict[str, Any]]:
    rules = [
        rule
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert rules, "no alerting rule"
    return rules


def test_promtool_check_config(tmp_path: Path) -> None:
    """prometheus.yml as the container loads it, its rule_files pointed at the repository."""
    config = yaml.safe_load(CONFIG.read_text())
    config["rule_files"] = [
        str(PROMETHEUS / p.removeprefix(CONTAINER_DIR + "/")) for p in config.get("rule_files", [])
    ]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False))
    output = run_promtool("check", "config", str(copy))
    assert "SUCCESS" in output, output


def test_promtool_check_rules() -> None:
    output = run_promtool("check", "rules", *map(str, rule_files()))
    assert "SUCCESS" in output, output


def test_promtool_test_rules() -> None:
    output = run_promtool("test", "rules", *map(str, unit_test_files()))
    assert "FAILED" not in output, output


def test_every_alert_is_tested_firing_and_silent() -> None:
    """Each alert has a unit test where it fires and one where it does not."""
    firing: set[str] = set()
    silent: set[str] = set()
    for path in unit_test_files():
        data = yaml.safe_load(path.read_text())
        for group in data.get("tests") or []:
            for case in group.get("alert_rule_test") or []:
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = [rule["alert"] for rule in alerting_rules()]
    assert len(names) == len(set(names)), f"duplicate alert names in {names}"
    assert not set(names) - firing, f"alerts with no firing test: {sorted(set(names) - firing)}"
    assert not set(names) - silent, f"alerts with no silent test: {sorted(set(names) - silent)}"
    unknown = (firing | silent) - set(names)
    assert not unknown, f"tests of alerts that do not exist: {sorted(unknown)}"


def test_every_alert_tells_the_operator_what_to_do() -> None:
    for rule in alerting_rules():
        name = rule["alert"]
        assert name.startswith("Tradebus"), f"{name}: alert names start with Tradebus"
        assert rule.get("for"), f"{name}: no for: (fires on a single bad evaluation)"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), f"{name}: no summary"
        assert len(annotations.get("description", "")) > 80, f"{name}: description too short"


@functools.cache
def declared_metrics() -> set[str]:
    """Exposed names of the services' metrics (counters also with ``_total``)."""
    sources = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/*/src/**/*.py")]
    names = {m for p in sources for m in re.findall(r"[\"'](tradebus_\w+)[\"']", p.read_text())}
    return names | {f"{n}_total" for n in names}


def test_alerts_query_declared_metrics() -> None:
    for rule in alerting_rules():
        used = set(METRIC.findall(rule["expr"]))
        missing = sorted(used - declared_metrics())
        assert not missing, f"{rule['alert']} queries metrics no service declares: {missing}"
