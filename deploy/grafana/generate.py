"""Write the Grafana dashboards of deploy/grafana/dashboards/ (Grafana 11 JSON).

The JSON files are committed; ``tests/unit/test_dashboards.py`` fails when they differ
from what this script writes, so edit the panels here and run::

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
from typing import Any

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
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
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN = thresholds((None, "green"))
ZERO_GOOD = thresholds((None, "green"), (1, "red"))
ONE_GOOD = thresholds((None, "red"), (1, "green"))


def target(expr: str, legend: str = "", *, table: bool = False) -> Json:
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
        targets: list[Json],
        *,
        w: int,
        h: int,
        unit: str,
        options: Json,
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
            "gridPos": self._place(w, h),
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
            list(targets),
            w=w,
            h=h,
            unit=unit,
            options=options,
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
            list(targets),
            w=w,
            h=h,
            unit=unit,
            options=options,
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
            list(targets),
            w=w,
            h=h,
            unit=unit,
            options=options,
            custom={"align": "auto", "filterable": True},
            transformations=[
                {"id": "merge", "options": {}},
                {"id": "organize", "options": organize},
            ],
        )

    def json(self) -> Json:
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


PER_USER_LINK = [
    {
        "title": "Open ${__field.labels.user}'s dashboard",
        "url": "/d/tradebus-user/tradebus-per-user"
        "?var-user=${__field.labels.user}&${__url_time_range}",
    }
]


def overview() -> Board:
    b = Board(
        "tradebus-overview",
        "tradebus overview",
        "The whole platform at a glance: feeds, bots, orders, rejects, drift, P&L.",
    )
    b.row("Feeds")
    b.stat(
        "Feeds connected",
        "Per venue: up while the live feed's websocket is connected (a replay shows whether"
        " its marketdata process is up).",
        target(CONNECTED, "{{venue}}{{job}}"),
        w=6,
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )
    b.stat(
        "Stale symbols",
        "Symbols whose stream is stale (REST polling stands in). Should be 0.",
        target("sum(tradebus_marketdata_stale)" + ZERO),
        steps=ZERO_GOOD,
    )
    b.stat(
        "Oldest stream message",
        "Age of the oldest last stream message over every venue and symbol (0 in a replay).",
        target("max(tradebus_marketdata_last_message_age_seconds)" + ZERO),
        unit="s",
        steps=thresholds((None, "green"), (10, "orange"), (30, "red")),
        decimals=1,
    )
    b.timeseries(
        "Ticks published / s",
        "Ticks marketdata publishes on md.*, by venue.",
        target("sum by (venue) (rate(tradebus_marketdata_ticks_published_total[1m]))", "{{venue}}"),
        w=10,
        h=4,
        unit="ops",
    )
    b.row("Bots")
    b.stat(
        "Bots running",
        "Bots in state running over every strategy replica.",
        target('sum(tradebus_strategy_bots{state="running"})'),
    )
    b.stat(
        "Bots failed",
        "Bots whose core raised and stopped. Should be 0.",
        target('sum(tradebus_strategy_bots{state="failed"})'),
        steps=ZERO_GOOD,
    )
    b.stat(
        "Leases held",
        "Bot leases held by the strategy replicas (one per running bot).",
        target("sum(tradebus_strategy_leases_held)"),
    )
    b.stat(
        "Strategy replicas up",
        "Strategy replicas Prometheus scrapes successfully.",
        target('sum(up{job="strategy"})'),
        steps=ONE_GOOD,
    )
    b.timeseries(
        "Intents published / s",
        "Intents the bots published and JetStream acknowledged, by type.",
        target("sum by (type) (rate(tradebus_strategy_intents_published_total[1m]))", "{{type}}"),
        w=8,
        h=4,
        unit="ops",
    )
    b.row("Orders")
    b.stat(
        "Open orders",
        "Orders open at the venues.",
        target("sum(tradebus_execution_open_orders)"),
        w=6,
    )
    b.stat(
        "Execution healthy",
        "1 while the ledger and the bus take writes; 0 while intents and fills wait.",
        target("min(tradebus_execution_healthy)"),
        w=6,
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )
    b.stat(
        "Accounts halted",
        "Accounts whose venue refuses their keys or permissions. Should be 0.",
        target("count(tradebus_execution_account_halted == 1)" + ZERO),
        w=6,
        steps=ZERO_GOOD,
    )
    b.stat(
        "Kill switch engaged",
        "Whether any kill switch (global or an account's) is engaged.",
        target("max(tradebus_execution_killswitch_engaged)" + ZERO),
        w=6,
        mappings=YES_NO,
        steps=ZERO_GOOD,
    )
    b.timeseries(
        "Order updates / s",
        "Order state changes in execution, by new status.",
        target("sum by (status) (rate(tradebus_execution_orders_total[1m]))", "{{status}}"),
        w=12,
        unit="ops",
    )
    b.timeseries(
        "Rejects / s",
        "Refused intents and venue rejections, by reason (0 when nothing was rejected).",
        target("sum by (reason) (rate(tradebus_execution_rejects_total[1m]))" + ZERO, "{{reason}}"),
        w=12,
        unit="ops",
    )
    b.row("Reconciliation")
    b.stat(
        "Accounts reconciled",
        "Per account: ok when venue and ledger totals agree within tolerance.",
        target("tradebus_reconciler_account_ok", "{{account}}"),
        w=12,
        mappings=OK_DRIFT,
        steps=ONE_GOOD,
    )
    b.stat(
        "Since last reconciliation",
        "Time since the reconciler's last run.",
        target("time() - max(tradebus_reconciler_last_run_timestamp_seconds)"),
        unit="s",
        steps=thresholds((None, "green"), (300, "red")),
        decimals=0,
    )
    b.timeseries(
        "Drift",
        "Venue total minus ledger total per account and asset (in the asset). Should hug 0.",
        target("tradebus_reconciler_drift", "{{account}} {{asset}}"),
        w=8,
        h=4,
    )
    b.row("P&L")
    b.timeseries(
        "Realized P&L by user",
        "Realized P&L of every user's bots, summed (quote currency; click a line for the user).",
        target("sum by (user) (tradebus_strategy_bot_realized_pnl)", "{{user}}"),
        w=9,
        links=PER_USER_LINK,
    )
    b.timeseries(
        "Unrealized P&L by user",
        "Mark-to-market P&L of the users' open positions (quote currency).",
        target("sum by (user) (tradebus_strategy_bot_unrealized_pnl)", "{{user}}"),
        w=9,
        links=PER_USER_LINK,
    )
    b.stat(
        "Total P&L",
        "Realized plus unrealized P&L over every bot (quote currency).",
        target(
            "sum(tradebus_strategy_bot_realized_pnl) + sum(tradebus_strategy_bot_unrealized_pnl)"
        ),
        w=6,
        h=8,
        decimals=2,
        steps=thresholds((None, "red"), (0, "green")),
    )
    b.row("Services")
    b.stat(
        "Targets up",
        "1 per scrape target Prometheus reaches (every service, every strategy replica).",
        target("up", "{{job}} {{instance}}"),
        w=24,
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )
    return b


def per_user() -> Board:
    b = Board(
        "tradebus-user",
        "tradebus per user",
        "One user's bots, positions, orders and P&L (pick the user at the top).",
    )
    where = 'user="$user"'
    b.variables.append(
        {
            "name": "user",
            "label": "User",
            "type": "query",
            "datasource": DATASOURCE,
            "query": "label_values(tradebus_strategy_bot_position, user)",
            "definition": "label_values(tradebus_strategy_bot_position, user)",
            "refresh": 2,
            "sort": 1,
            "multi": False,
            "includeAll": False,
            "current": {},
            "options": [],
            "hide": 0,
        }
    )
    b.row("Bots")
    b.stat(
        "Bots",
        "The user's bots that report a position (running on some strategy replica).",
        target(f"count(tradebus_strategy_bot_position{{{where}}})"),
        w=6,
    )
    b.stat(
        "Realized P&L",
        "Sum of the user's bots' realized P&L (quote currency).",
        target(f"sum(tradebus_strategy_bot_realized_pnl{{{where}}})"),
        w=6,
        decimals=2,
        steps=thresholds((None, "red"), (0, "green")),
    )
    b.stat(
        "Unrealized P&L",
        "Sum of the user's bots' unrealized P&L (quote currency).",
        target(f"sum(tradebus_strategy_bot_unrealized_pnl{{{where}}})"),
        w=6,
        decimals=2,
        steps=thresholds((None, "red"), (0, "green")),
    )
    b.stat(
        "Orders accepted (1h)",
        "Orders the venues accepted for the user over the last hour.",
        target(
            f'sum(increase(tradebus_execution_orders_total{{{where}, status="accepted"}}[1h]))'
            + ZERO
        ),
        w=6,
        decimals=0,
    )
    b.table(
        "Bots of $user",
        "One row per bot: account, symbol, position, realized and unrealized P&L now.",
        target(
            f"sum by (bot, account, symbol) (tradebus_strategy_bot_position{{{where}}})", table=True
        ),
        target(
            f"sum by (bot, account, symbol) (tradebus_strategy_bot_realized_pnl{{{where}}})",
            table=True,
        ),
        target(
            f"sum by (bot, account, symbol) (tradebus_strategy_bot_unrealized_pnl{{{where}}})",
            table=True,
        ),
        rename={
            "bot": "Bot",
            "account": "Account",
            "symbol": "Symbol",
            "Value #A": "Position",
            "Value #B": "Realized P&L",
            "Value #C": "Unrealized P&L",
        },
    )
    b.timeseries(
        "Realized P&L by bot",
        "Each bot's realized P&L over time (quote currency).",
        target(f"sum by (bot) (tradebus_strategy_bot_realized_pnl{{{where}}})", "{{bot}}"),
        w=8,
    )
    b.timeseries(
        "Unrealized P&L by bot",
        "Each bot's mark-to-market P&L over time (quote currency).",
        target(f"sum by (bot) (tradebus_strategy_bot_unrealized_pnl{{{where}}})", "{{bot}}"),
        w=8,
    )
    b.timeseries(
        "Position by bot",
        "Each bot's position in the base asset (negative: short).",
        target(
            f"sum by (bot, symbol) (tradebus_strategy_bot_position{{{where}}})",
            "{{bot}} {{symbol}}",
        ),
        w=8,
    )
    b.row("Orders")
    b.timeseries(
        "Order updates / s",
        "The user's order state changes, by new status.",
        target(
            f"sum by (status) (rate(tradebus_execution_orders_total{{{where}}}[1m]))" + ZERO,
            "{{status}}",
        ),
        w=8,
        unit="ops",
    )
    b.timeseries(
        "Fills / s",
        "Fills booked in the ledger for the user, by venue.",
        target(
            f"sum by (venue) (rate(tradebus_execution_fills_recorded_total{{{where}}}[1m]))" + ZERO,
            "{{venue}}",
        ),
        w=8,
        unit="ops",
    )
    b.timeseries(
        "Rejects / s",
        "The user's refused intents and venue rejections, by reason (0 when none).",
        target(
            f"sum by (reason) (rate(tradebus_execution_rejects_total{{{where}}}[1m]))" + ZERO,
            "{{reason}}",
        ),
        w=8,
        unit="ops",
    )
    return b


def execution() -> Board:
    b = Board(
        "tradebus-execution",
        "tradebus execution",
        "The execution service: health, throughput, latencies, its JetStream consumer.",
    )
    b.row("Health")
    b.stat(
        "Execution up",
        "Whether Prometheus reaches the execution service.",
        target('sum(up{job="execution"})'),
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )
    b.stat(
        "Healthy",
        "1 while the ledger and the bus take writes; 0 while intents and fills wait.",
        target("min(tradebus_execution_healthy)"),
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )
    b.stat(
        "Kill switch engaged",
        "Whether any kill switch (global or an account's) is engaged.",
        target("max(tradebus_execution_killswitch_engaged)" + ZERO),
        mappings=YES_NO,
        steps=ZERO_GOOD,
    )
    b.stat(
        "Accounts halted",
        "Accounts whose venue refuses their keys or permissions.",
        target("count(tradebus_execution_account_halted == 1)" + ZERO),
        steps=ZERO_GOOD,
    )
    b.stat(
        "Open orders",
        "Orders open at the venues.",
        target("sum(tradebus_execution_open_orders)"),
    )
    b.stat(
        "Rejects (1h)",
        "Refused intents and venue rejections over the last hour.",
        target("sum(increase(tradebus_execution_rejects_total[1h]))" + ZERO),
        decimals=0,
        steps=ZERO_GOOD,
    )
    b.row("Throughput")
    b.timeseries(
        "Intents received / s",
        "Intents execution decoded, by type.",
        target("sum by (type) (rate(tradebus_execution_intents_received_total[1m]))", "{{type}}"),
        w=6,
        unit="ops",
    )
    b.timeseries(
        "Order updates / s",
        "Order state changes, by new status (accepted, filled, canceled, rejected...).",
        target("sum by (status) (rate(tradebus_execution_orders_total[1m]))", "{{status}}"),
        w=6,
        unit="ops",
    )
    b.timeseries(
        "Fills recorded / s",
        "Fills booked in the ledger, by venue.",
        target("sum by (venue) (rate(tradebus_execution_fills_recorded_total[1m]))", "{{venue}}"),
        w=6,
        unit="ops",
    )
    b.timeseries(
        "Rejects / s",
        "Refused intents and venue rejections, by reason (0 when none).",
        target("sum by (reason) (rate(tradebus_execution_rejects_total[1m]))" + ZERO, "{{reason}}"),
        w=6,
        unit="ops",
    )
    b.row("Latency")
    b.timeseries(
        "Intent -> venue ack",
        "From an intent's creation in strategy to the venue's acceptance.",
        *quantiles("tradebus_execution_intent_to_ack_seconds"),
        w=8,
        unit="s",
    )
    b.timeseries(
        "Intent processing",
        "Time to process one intent in execution (ledger + venue + event).",
        *quantiles("tradebus_execution_intent_processing_seconds"),
        w=8,
        unit="s",
    )
    b.timeseries(
        "Fill -> ledger",
        "From a venue fill to its ledger commit.",
        *quantiles("tradebus_execution_fill_to_ledger_seconds"),
        w=8,
        unit="s",
    )
    b.row("Intent consumer")
    b.timeseries(
        "Pending messages",
        "Intents in INTENTS not yet delivered to execution's durable consumer."
        " Growing: execution lags behind the bots.",
        target("sum by (consumer) (tradebus_execution_consumer_pending_messages)", "{{consumer}}"),
        w=8,
    )
    b.timeseries(
        "Ack pending",
        "Intents delivered to execution and not acknowledged yet.",
        target(
            "sum by (consumer) (tradebus_execution_consumer_ack_pending_messages)",
            "{{consumer}}",
        ),
        w=8,
    )
    b.timeseries(
        "Redelivered",
        "Intents delivered more than once and not acknowledged yet (execution restarted"
        " or was too slow to ack). Should be 0.",
        target(
            "sum by (consumer) (tradebus_execution_consumer_redelivered_messages)",
            "{{consumer}}",
        ),
        w=8,
    )
    b.row("Process")
    b.timeseries(
        "CPU",
        "CPU time of the execution process per second (1 = one core).",
        target('sum(rate(process_cpu_seconds_total{job="execution"}[1m]))', "cpu"),
        unit="percentunit",
    )
    b.timeseries(
        "Resident memory",
        "Resident memory of the execution process.",
        target('sum(process_resident_memory_bytes{job="execution"})', "rss"),
        unit="bytes",
    )
    return b


def marketdata() -> Board:
    b = Board(
        "tradebus-marketdata",
        "tradebus market data",
        "The marketdata feeds (one service per venue) and the ticks the strategies receive.",
    )
    b.row("Feeds")
    b.stat(
        "Connected",
        "Per venue: up while the live websocket is connected (a replay shows whether its"
        " marketdata process is up).",
        target(CONNECTED, "{{venue}}{{job}}"),
        w=6,
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )
    b.stat(
        "Stale symbols",
        "Symbols whose stream is stale, per venue (REST polling stands in). Should be 0.",
        target("sum by (venue) (tradebus_marketdata_stale)" + ZERO, "{{venue}}"),
        w=6,
        steps=ZERO_GOOD,
    )
    b.stat(
        "Reconnects (1h)",
        "Websocket reconnections over the last hour, per venue.",
        target(
            "sum by (venue) (increase(tradebus_marketdata_reconnects_total[1h]))" + ZERO,
            "{{venue}}",
        ),
        w=6,
        decimals=0,
        steps=thresholds((None, "green"), (1, "orange"), (10, "red")),
    )
    b.stat(
        "Marketdata up",
        "Whether Prometheus reaches each marketdata service.",
        target('up{job=~"marketdata.*"}', "{{job}}"),
        w=6,
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )
    b.timeseries(
        "Last message age",
        "Seconds since each symbol's last stream message (live feeds only). Past the stale"
        " threshold the symbol switches to REST polling.",
        target("tradebus_marketdata_last_message_age_seconds" + ZERO, "{{venue}} {{symbol}}"),
        unit="s",
    )
    b.timeseries(
        "Stale",
        "1 while the symbol's stream is stale (live feeds only).",
        target("tradebus_marketdata_stale" + ZERO, "{{venue}} {{symbol}}"),
    )
    b.row("Throughput")
    b.timeseries(
        "Ticks published / s",
        "Ticks published on md.*, by venue, symbol and kind.",
        target(
            "sum by (venue, symbol, kind) (rate(tradebus_marketdata_ticks_published_total[1m]))",
            "{{venue}} {{symbol}} {{kind}}",
        ),
        unit="ops",
    )
    b.timeseries(
        "Frames / s",
        "Raw websocket frames received, by venue and kind.",
        target(
            "sum by (venue, kind) (rate(tradebus_marketdata_frames_total[1m]))",
            "{{venue}} {{kind}}",
        ),
        unit="ops",
    )
    b.timeseries(
        "Duplicates dropped / s",
        "Ticks not published again (resends, REST echoes), by venue (0 when none).",
        target(
            "sum by (venue) (rate(tradebus_marketdata_duplicates_dropped_total[1m]))" + ZERO,
            "{{venue}}",
        ),
        unit="ops",
    )
    b.timeseries(
        "REST polls / s",
        "REST best bid/ask polls while a stream is stale, by venue and result (0 when none).",
        target(
            "sum by (venue, result) (rate(tradebus_marketdata_rest_polls_total[1m]))" + ZERO,
            "{{venue}} {{result}}",
        ),
        unit="ops",
    )
    b.row("Strategy side")
    b.timeseries(
        "Ticks received by strategy / s",
        "Ticks the strategy replicas received, by venue and symbol.",
        target(
            "sum by (venue, symbol) (rate(tradebus_strategy_ticks_received_total[1m]))",
            "{{venue}} {{symbol}}",
        ),
        w=8,
        unit="ops",
    )
    b.timeseries(
        "Stale ticks dropped / s",
        "Ticks too old to give to bots when received, by venue and symbol (0 when none).",
        target(
            "sum by (venue, symbol) (rate(tradebus_strategy_stale_ticks_total[1m]))" + ZERO,
            "{{venue}} {{symbol}}",
        ),
        w=8,
        unit="ops",
    )
    b.timeseries(
        "Tick -> intent",
        "From a tick's creation in marketdata to its intent's JetStream ack.",
        *quantiles("tradebus_strategy_tick_to_intent_seconds"),
        w=8,
        unit="s",
    )
    return b


BOARDS = {
    "overview.json": overview,
    "user.json": per_user,
    "execution.json": execution,
    "marketdata.json": marketdata,
}


def render(board: Board) -> str:
    return json.dumps(board.json(), indent=2, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: render(build()) for name, build in BOARDS.items()}


def main() -> int:
    for name, text in rendered().items():
        (DASHBOARDS / name).write_text(text)
        print(f"wrote {DASHBOARDS / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
