"""``make install`` and ``make demo`` need no Prometheus tools (issue 20, first-run item 1).

The tools come from Debian's packages (deploy/prometheus/install-prometheus-tools.sh), so a
target that installs them fails on any other system. ``make -n -W <script>`` prints what
make would run if the script had just changed: the script must run for the tests and
``make demo PROMETHEUS=1``, and never for ``make install`` or a plain ``make demo``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "deploy/prometheus/install-prometheus-tools.sh"


def dry_run(*args: str) -> str:
    make = shutil.which("make")
    assert make, "make is not installed"
    proc = subprocess.run(
        [make, "-n", "-W", SCRIPT, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize(
    ("args", "installs"),
    [
        (("install",), False),
        (("demo",), False),
        (("demo", "PROMETHEUS=1"), True),
        (("test",), True),
        (("test-all",), True),
        (("prometheus-tools",), True),
    ],
)
def test_only_the_tests_and_the_prometheus_demo_install_the_tools(
    args: tuple[str, ...], installs: bool
) -> None:
    assert (SCRIPT in dry_run(*args)) is installs, f"make {' '.join(args)}"


def test_the_demo_asks_for_prometheus_when_told() -> None:
    assert "--with-prometheus" in dry_run("demo", "PROMETHEUS=1")
    assert "--with-prometheus" not in dry_run("demo")
