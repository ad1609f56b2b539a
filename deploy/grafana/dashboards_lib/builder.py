"""The dashboard builder: a :class:`Board` lays panels out on Grafana's 24-column grid.

Also the pieces every dashboard uses: the Prometheus datasource, value mappings,
threshold steps and query targets.
"""

from __future__ import annotations

from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39
WIDTH = 24
ZERO = " or on() vector(0)"
"""Appended to queries whose series only exist once something went wrong (or only with a
live feed: a replaying marketdata, ``tradebus demo --data``, has no stream health gauges)."""
CONNECTED = (
    'max by (venue) (tradebus_marketdata_connected) or on() max by (job) (up{job=~"marketdata.*"})'
)
"""Per live feed: 1 while its websocket is connected. A replay has no connection: then
whether its marketdata process is up."""

Json = dict[str, Any]

UP_DOWN = [
    {
        "type": "value",
        "options": {
            "0": {"text": "down", "color": "red", "index": 0},
            "1": {"text": "up", "color": "green", "index": 1},
        },
    }
]
OK_DRIFT = [
    {
        "type": "value",
        "options": {
            "0": {"text": "drift", "color": "red", "index": 0},
            "1": {"text": "ok", "color": "green", "index": 1},
        },
    }
]
YES_NO = [
    {
        "type": "value",
        "options": {
            "0": {"text": "no", "color": "green", "index": 0},
            "1": {"text": "yes", "color": "red", "index": 1},
        },
    }
]


def thresholds(*steps: tuple[float | None, str]) -> Json:
    """Absolute threshold steps: ``(from_value, color)`` pairs, the first from ``None``."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN = thresholds((None, "green"))
ZERO_GOOD = thresholds((None, "green"), (1, "red"))
ONE_GOOD = thresholds((None, "red"), (1, "green"))
SIGNED = thresholds((None, "red"), (0, "green"))
"""Red below zero, green from zero up: for P&L."""


def target(expr: str, legend: str = "", *, table: bool = False) -> Json:
    """One PromQL query of a panel; ``table`` makes it an instant query for a table."""
    out: Json = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
    if table:
        out |= {"format": "table", "instant": True, "range": False}
    return out


class Board:
    """One dashboard: rows of panels laid out left to right, wrapping at 24 columns."""

    def __init__(self, uid: str, title: str, description: str) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[Json] = []
        self.variables: list[Json] = []
        self._x = self._y = self._row_h = 0

    def _place(self, w: int, h: int) -> Json:
        if self._x + w > WIDTH:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        pos = {"h": h, "w": w, "x": self._x, "y": self._y}
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def row(self, title: str) -> None:
        """Start a new full-width row titled ``title`` below the panels so far."""
        if self._x:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": self._place(WIDTH, 1),
                "panels": [],
            }
        )
        self._x, self._y, self._row_h = 0, self._y + 1, 0

    def _panel(
        self,
        kind: str,
        title: str,
        description: str,
        targets: tuple[Json, ...],
        size: tuple[int, int],
        unit: str,
        options: Json,
        *,
        custom: Json | None = None,
        mappings: list[Json] | None = None,
        steps: Json = GREEN,
        decimals: int | None = None,
        links: list[Json] | None = None,
        transformations: list[Json] | None = None,
    ) -> None:
        defaults: Json = {"unit": unit, "thresholds": steps, "mappings": mappings or []}
        if custom is not None:
            defaults["custom"] = custom
        if decimals is not None:
            defaults["decimals"] = decimals
        if links:
            defaults["links"] = links
        panel: Json = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": self._place(*size),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options,
            "targets": [t | {"refId": chr(ord("A") + i)} for i, t in enumerate(targets)],
        }
        if transformations:
            panel["transformations"] = transformations
        self.panels.append(panel)

    def stat(
        self,
        title: str,
        description: str,
        *targets: Json,
        w: int = 4,
        h: int = 4,
        unit: str = "none",
        mappings: list[Json] | None = None,
        steps: Json = GREEN,
        decimals: int | None = None,
    ) -> None:
        """A single-value panel showing each query's last value."""
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
            "wideLayout": True,
            "showPercentChange": False,
        }
        self._panel(
            "stat",
            title,
            description,
            targets,
            (w, h),
            unit,
            options,
            mappings=mappings,
            steps=steps,
            decimals=decimals,
        )

    def timeseries(
        self,
        title: str,
        description: str,
        *targets: Json,
        w: int = 12,
        h: int = 8,
        unit: str = "none",
        links: list[Json] | None = None,
        stack: bool = False,
    ) -> None:
        """A line graph of the queries over time (stacked when ``stack``)."""
        custom = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        }
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
        self._panel(
            "timeseries",
            title,
            description,
            targets,
            (w, h),
            unit,
            options,
            custom=custom,
            links=links,
        )

    def table(
        self,
        title: str,
        description: str,
        *targets: Json,
        w: int = 24,
        h: int = 8,
        unit: str = "none",
        rename: dict[str, str],
    ) -> None:
        """An instant table: one row per label set, the queries' values side by side."""
        options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
        organize = {
            "excludeByName": {"Time": True, "__name__": True, "instance": True, "job": True},
            "renameByName": rename,
        }
        self._panel(
            "table",
            title,
            description,
            targets,
            (w, h),
            unit,
            options,
            custom={"align": "auto", "filterable": True},
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": organize},
            ],
        )

    def json(self) -> Json:
        """The dashboard as Grafana's JSON model."""
        return {
            "id": None,
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["tradebus"],
            "timezone": "browser",
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "editable": False,
            "graphTooltip": 1,
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "refresh": "10s",
            "time": {"from": "now-30m", "to": "now"},
            "timepicker": {},
            "links": [
                {
                    "type": "dashboards",
                    "title": "tradebus",
                    "tags": ["tradebus"],
                    "asDropdown": True,
                    "includeVars": False,
                    "keepTime": True,
                }
            ],
            "templating": {"list": self.variables},
            "annotations": {"list": []},
            "panels": self.panels,
        }


def quantiles(metric: str, where: str = "") -> list[Json]:
    """p50/p95/p99 of a histogram over the last minute."""
    return [
        target(
            f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{where}[1m])))",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]
