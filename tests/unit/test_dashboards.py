"""Static checks of the Grafana dashboards in deploy/grafana/dashboards/ (no Grafana needed).

The dashboards are written by ``deploy/grafana/generate.py`` and committed; these tests
fail when the committed JSON is stale, when a dashboard does not parse or shares its uid
or title, when a panel or variable uses another datasource than the provisioned
Prometheus one, when a query names a metric no service or library defines (a typo, or a
metric since renamed; the compose exporters' metrics are listed in
``dashboards_lib/exporters.py``), when it uses Grafana-only interval variables, and when the
per-user dashboard shows something not filtered by ``user="$user"``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
FILES = sorted(DASHBOARDS.glob("*.json"))
SUFFIX = re.compile(r"_(total|bucket|sum|count|created)$")
PROCESS = {
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
}
"""What prometheus_client's ProcessCollector exports (``tradebus.common.metrics``)."""
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atop", "inf", "nan",
}  # fmt: skip
"""Identifiers of PromQL that are not metric names (functions are followed by ``(``)."""


@functools.cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in FILES}


@functools.cache
def declared_metrics() -> frozenset[str]:
    """Every ``tradebus_*`` name quoted in services/*/src and libs/*/src."""
    sources = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/*/src/**/*.py")]
    names = {m for p in sources for m in re.findall(r"[\"'](tradebus_\w+)[\"']", p.read_text())}
    return frozenset(names)


@functools.cache
def exporter_metrics() -> dict[str, frozenset[str]]:
    """Compose exporter -> the metrics of it the dashboards may query (their catalogue,
    ``deploy/grafana/dashboards_lib/exporters.py``)."""
    path = GRAFANA / "dashboards_lib" / "exporters.py"
    spec = importlib.util.spec_from_file_location("grafana_exporters", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.EXPORTER_METRICS)


def datasource_uid() -> str:
    path = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
    sources = yaml.safe_load(path.read_text())["datasources"]
    return next(ds["uid"] for ds in sources if ds["type"] == "prometheus")


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included; rows themselves excluded."""
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out += panel.get("panels", [])
        else:
            out.append(panel)
    return out


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values, e.g. "$user"
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range windows
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        name, call = match[1], match[2]
        if not call and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


def is_known(name: str) -> bool:
    if name.startswith("tradebus_"):
        return bool({name, SUFFIX.sub("", name)} & declared_metrics())
    exported = {m for names in exporter_metrics().values() for m in names}
    return name == "up" or name in PROCESS or name in exported


def test_committed_json_is_what_the_generator_writes() -> None:
    expected = generator().rendered()
    assert sorted(expected) == [p.name for p in FILES], "run deploy/grafana/generate.py"
    for name, text in expected.items():
        stale = (DASHBOARDS / name).read_text() != text
        assert not stale, f"{name} is stale: run .venv/bin/python deploy/grafana/generate.py"


def test_the_four_dashboards_exist() -> None:
    uids = {d["uid"] for d in dashboards().values()}
    wanted = {"tradebus-overview", "tradebus-user", "tradebus-execution", "tradebus-marketdata"}
    assert wanted <= uids, f"missing dashboards {sorted(wanted - uids)}"


def test_uids_and_titles_are_unique() -> None:
    for key in ("uid", "title"):
        values = [d.get(key) for d in dashboards().values()]
        assert all(values), f"every dashboard needs a {key}"
        assert len(set(values)) == len(values), f"duplicate {key}s: {sorted(values, key=str)}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dashboard_shape(path: Path) -> None:
    dashboard = dashboards()[path.name]
    assert 36 <= dashboard["schemaVersion"] <= 41, "Grafana 11 dashboard JSON"
    assert dashboard.get("id") is None, "provisioned dashboards must not carry a database id"
    assert panels(dashboard), "no panels"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, f"{panel['title']}: off the grid"
        mine = {(pos["x"] + i, pos["y"] + j) for i in range(pos["w"]) for j in range(pos["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
    for panel in panels(dashboard):
        assert panel["type"] in {"timeseries", "stat", "table"}, panel["type"]
        assert panel.get("targets"), f"{panel['title']}: no query"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), f"{panel['title']}: duplicate refIds"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_everything_uses_the_provisioned_datasource(path: Path) -> None:
    uid = datasource_uid()
    dashboard = dashboards()[path.name]
    for panel in panels(dashboard):
        for item in [panel, *panel["targets"]]:
            ds = item.get("datasource") or {}
            assert ds == {"type": "prometheus", "uid": uid}, f"{panel['title']}: datasource {ds}"
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == uid, f"${variable['name']}: datasource"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_queries_select_only_exported_metrics(path: Path) -> None:
    dashboard = dashboards()[path.name]
    queries = exprs(dashboard) + [
        str(v.get("definition") or v.get("query"))
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    for expr in queries:
        for name in re.findall(r"label_values\((\w+)", expr) or metric_names(expr):
            assert is_known(name), f"{path.name}: no service exports {name} ({expr})"
        assert "$__" not in expr, f"{path.name}: use fixed [1m] windows, not $__ variables"
        assert expr.count("(") == expr.count(")"), f"{path.name}: unbalanced {expr}"


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (user) (rate(tradebus_x_total{user="$user", a=~"b.*"}[1m]))'
        " / on() group_left up or on() vector(0) + time() - process_open_fds offset 5m"
    )
    assert metric_names(expr) == {"tradebus_x_total", "up", "process_open_fds"}


def test_per_user_dashboard_filters_by_user() -> None:
    dashboard = dashboards()["user.json"]
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "user"]
    wanted = "label_values(tradebus_strategy_bot_position, user)"
    assert variable["type"] == "query" and variable["query"] == wanted
    assert not variable.get("multi") and not variable.get("includeAll"), "one user at a time"
    for expr in exprs(dashboard):
        selectors = re.findall(r"\b(tradebus_\w+)(\{[^}]*\})?", expr)
        assert selectors, f"not a tradebus query: {expr}"
        for name, matchers in selectors:
            assert 'user="$user"' in matchers, f"{name} is not filtered by user: {expr}"


def test_each_exporter_has_a_panel_and_the_catalogue_is_used() -> None:
    """One panel at least per compose exporter, and no catalogued name left unqueried
    (the catalogue lists what the dashboards use, nothing more)."""
    queried = {m for d in dashboards().values() for e in exprs(d) for m in metric_names(e)}
    for exporter, names in exporter_metrics().items():
        assert names & queried, f"no panel shows {exporter}'s metrics"
        assert names <= queried, f"{exporter}: {sorted(names - queried)} catalogued, unused"
