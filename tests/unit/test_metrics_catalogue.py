"""docs/metrics.md is the catalogue of every metric: the code and the page must agree.

Each service's metric classes are instantiated on a fresh registry (no
service runs), every metric is touched once so that its exposed sample names
appear, and the result is compared with the tables of ``docs/metrics.md``:
names, types and label sets, plus the naming and label rules. Metrics read at
scrape time by a custom collector (:data:`COLLECTORS`) are collected once from
an instance that has one sample to show.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from tradebus.common.ids import AccountId
from tradebus.common.metrics import new_registry
from tradebus.execution.metrics import ExecutionMetrics, VenueClockCollector
from tradebus.gateway.metrics import GatewayMetrics
from tradebus.marketdata.feed import FeedMetrics
from tradebus.marketdata.health import HealthMetrics
from tradebus.marketdata.rest import RestMetrics
from tradebus.notifier.service import NotifierMetrics
from tradebus.reconciler.service import ReconMetrics
from tradebus.strategy.host_metrics import HostMetrics, TickCounts

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
METRIC_CLASSES = {
    "marketdata": (FeedMetrics, HealthMetrics, RestMetrics),
    "strategy": (HostMetrics,),
    "execution": (ExecutionMetrics,),
    "reconciler": (ReconMetrics,),
    "gateway": (GatewayMetrics,),
    "notifier": (NotifierMetrics,),
}


class _MeasuredVenue:
    """A venue whose clock offset was measured (what :class:`VenueClockCollector` reads)."""

    name = "backpack"
    clock_offset_ms = 120


COLLECTORS = {"execution": (VenueClockCollector({AccountId("a"): _MeasuredVenue()}),)}  # type: ignore[dict-item]
NAME = re.compile(r"^tradebus_(marketdata|strategy|execution|reconciler|gateway|notifier)_[a-z_]+$")
ID_LABELS = {"order_id", "intent_id", "client_order_id", "trade_id", "venue_order_id", "id"}
BOUNDED_LABELS = {
    *("venue", "symbol", "account", "user", "bot", "reason", "status", "host"),
    *("kind", "type", "state", "mode", "result", "strategy", "scope", "asset", "consumer"),
    *("route", "method"),
}
ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| (?P<type>\w+) \| [^|]+ \| (?P<labels>[^|]+) \|")


def held_collectors(holder: object) -> list[TickCounts]:
    """The custom collectors a metrics class instance holds (read at scrape time), each
    given one sample to show."""
    found = [v for v in vars(holder).values() if isinstance(v, TickCounts)]
    for collector in found:
        collector.counts[("x", "x")] = 1
    return found


def metric_objects(holder: object) -> list[MetricWrapperBase]:
    """The metrics held by a metrics class instance, also in nested tradebus holders."""
    found = []
    for value in vars(holder).values():
        if isinstance(value, MetricWrapperBase):
            found.append(value)
        elif type(value).__module__.startswith("tradebus."):
            found.extend(metric_objects(value))
    return found


def code_metrics() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """``{declared name: (service, type, labels)}`` of every tradebus metric."""
    out: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for service, classes in METRIC_CLASSES.items():
        for cls in classes:
            holder = cls(CollectorRegistry())
            for metric in metric_objects(holder):
                assert metric._name not in out, f"{metric._name} declared twice"
                assert metric._type is not None, metric._name
                out[metric._name] = (service, metric._type, tuple(metric._labelnames))
            for held in held_collectors(holder):
                for counted in held.collect():
                    assert counted.name not in out, f"{counted.name} declared twice"
                    out[counted.name] = (service, counted.type, tuple(counted.samples[0].labels))
    for service, collectors in COLLECTORS.items():
        for collector in collectors:
            for family in collector.collect():
                assert family.name not in out, f"{family.name} declared twice"
                out[family.name] = (service, family.type, tuple(family.samples[0].labels))
    return out


def exposed_names() -> dict[str, set[str]]:
    """``{family name: sample names}`` as scraped, every metric touched once."""
    registry = new_registry()
    for classes in METRIC_CLASSES.values():
        for cls in classes:
            holder = cls(registry)
            held_collectors(holder)
            for metric in metric_objects(holder):
                child = (
                    metric.labels(*["x"] * len(metric._labelnames))
                    if metric._labelnames
                    else metric
                )
                {"counter": lambda c: c.inc(), "gauge": lambda c: c.set(1)}.get(
                    metric._type or "", lambda c: c.observe(0.01)
                )(child)
    for collectors in COLLECTORS.values():
        for collector in collectors:
            registry.register(collector)
    return {f.name: {s.name for s in f.samples} for f in registry.collect()}


def documented() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """``{exposed name: (section, type, labels)}`` of every row of the doc's tables."""
    out: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    section = ""
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].split()[0]
            continue
        match = ROW.match(line)
        if match is None:
            continue
        labels = tuple(re.findall(r"`([a-z_]+)`", match["labels"]))
        assert match["name"] not in out, f"{match['name']} documented twice"
        out[match["name"]] = (section, match["type"], labels)
    return out


def exposed_name(name: str, kind: str) -> str:
    """The name a catalogue row uses: counters with ``_total``, others as declared."""
    return f"{name}_total" if kind == "counter" else name


def test_every_metric_is_documented_with_its_type_and_labels() -> None:
    docs = documented()
    for name, (service, kind, labels) in code_metrics().items():
        shown = exposed_name(name, kind)
        assert shown in docs, f"{shown} is not in docs/metrics.md"
        assert docs[shown] == (service, kind, labels), f"{shown}: doc {docs[shown]}"


def test_every_documented_metric_exists() -> None:
    code = {exposed_name(n, kind) for n, (_, kind, _) in code_metrics().items()}
    exposed = exposed_names()
    process = {n for n in exposed if n.startswith("process_")}
    process_shown = {f"{n}_total" if f"{n}_total" in exposed[n] else n for n in process}
    for name, (section, _, _) in documented().items():
        if section == "process":
            assert name in process_shown, f"{name} is documented but not collected"
        else:
            assert name in code, f"{name} is documented but no service declares it"


def test_names_and_units_follow_the_rules() -> None:
    exposed = exposed_names()
    for name, (service, kind, _) in code_metrics().items():
        assert NAME.match(name), name
        assert name.startswith(f"tradebus_{service}_"), f"{name} declared by {service}"
        assert not name.endswith("_total"), f"{name}: the client adds _total"
        if kind == "counter":
            assert f"{name}_total" in exposed[name], name
        if kind == "histogram":
            assert name.endswith("_seconds"), f"{name}: latencies are in seconds"
            assert {f"{name}_bucket", f"{name}_sum", f"{name}_count"} <= exposed[name]
        if "timestamp" in name or "age" in name.split("_"):
            assert name.endswith("_seconds"), f"{name}: times are in seconds"
        if name.endswith("_seconds"):
            assert not name.endswith("_milliseconds_seconds"), name


@pytest.mark.parametrize("service", sorted(METRIC_CLASSES))
def test_labels_are_bounded_and_never_ids(service: str) -> None:
    for name, (owner, _, labels) in code_metrics().items():
        if owner != service:
            continue
        assert not set(labels) & ID_LABELS, f"{name} has an id label: {labels}"
        assert not any(label.endswith("_id") for label in labels), f"{name}: {labels}"
        assert set(labels) <= BOUNDED_LABELS, f"{name}: unexpected labels {labels}"


def test_the_metrics_dashboards_and_alerts_rely_on() -> None:
    """Names and labels others build on: renaming one breaks dashboards and alert rules."""
    code = code_metrics()
    bot = ("bot", "user", "account", "symbol")
    expected = {
        "tradebus_strategy_bot_realized_pnl": ("strategy", "gauge", bot),
        "tradebus_strategy_bot_unrealized_pnl": ("strategy", "gauge", bot),
        "tradebus_strategy_bot_position": ("strategy", "gauge", bot),
        "tradebus_strategy_bots": ("strategy", "gauge", ("state",)),
        "tradebus_strategy_tick_to_intent_seconds": ("strategy", "histogram", ()),
        "tradebus_execution_orders": ("execution", "counter", ("status", "user")),
        "tradebus_execution_rejects": ("execution", "counter", ("reason", "user")),
        "tradebus_execution_fills_recorded": ("execution", "counter", ("venue", "user")),
    }
    for lag in ("pending", "ack_pending", "redelivered"):
        name = f"tradebus_execution_consumer_{lag}_messages"
        expected[name] = ("execution", "gauge", ("consumer",))
    for name, want in expected.items():
        assert code.get(name) == want, name
