"""Write the Grafana dashboards of deploy/grafana/dashboards/ (Grafana 11 JSON).

The JSON files are committed; ``tests/unit/test_dashboards.py`` fails when they differ
from what this script writes, so edit the panels in ``dashboards_lib/`` (the builder,
the panels several dashboards share, one module per dashboard) and run::

    .venv/bin/python deploy/grafana/generate.py

Every query uses the provisioned Prometheus datasource (uid ``prometheus``,
``provisioning/datasources/prometheus.yml``) and fixed ``[1m]`` windows, and returns a
series while the demo stack trades: counters and gauges that only exist after a
failure (rejects, halts, stale ticks, REST polls...) end in ``or on() vector(0)``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # loaded by path (tests/unit/test_dashboards.py), not run
    sys.path.insert(0, str(HERE))

from dashboards_lib.builder import Board  # noqa: E402
from dashboards_lib.execution import execution  # noqa: E402
from dashboards_lib.marketdata import marketdata  # noqa: E402
from dashboards_lib.overview import overview  # noqa: E402
from dashboards_lib.per_user import per_user  # noqa: E402

DASHBOARDS = HERE / "dashboards"

BOARDS = {
    "overview.json": overview,
    "user.json": per_user,
    "execution.json": execution,
    "marketdata.json": marketdata,
}
"""File name in ``dashboards/`` -> the function that builds that dashboard."""


def render(board: Board) -> str:
    """The JSON text of ``board`` as committed (indented, trailing newline)."""
    return json.dumps(board.json(), indent=2, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: render(build()) for name, build in BOARDS.items()}


def main() -> int:
    """Write every dashboard to ``dashboards/``."""
    for name, text in rendered().items():
        (DASHBOARDS / name).write_text(text)
        print(f"wrote {DASHBOARDS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
