"""The overview dashboard: the whole platform at a glance."""

from __future__ import annotations

from . import panels
from .builder import (
    OK_DRIFT,
    ONE_GOOD,
    SIGNED,
    UP_DOWN,
    ZERO,
    ZERO_GOOD,
    Board,
    Json,
    target,
    thresholds,
)

PER_USER_LINK: list[Json] = [
    {
        "title": "Open ${__field.labels.user}'s dashboard",
        "url": "/d/tradebus-user/tradebus-per-user"
        "?var-user=${__field.labels.user}&${__url_time_range}",
    }
]
"""Data link from a user's series to that user's dashboard."""


def overview() -> Board:
    """Feeds, bots, orders, reconciliation, P&L and scrape targets of every service."""
    b = Board(
        "tradebus-overview",
        "tradebus overview",
        "The whole platform at a glance: feeds, bots, orders, rejects, drift, P&L.",
    )
    b.row("Feeds")
    panels.feeds_connected(
        b,
        "Feeds connected",
        "Per venue: up while the live feed's websocket is connected (a replay shows whether"
        " its marketdata process is up).",
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
    panels.ticks_published(b, "Ticks marketdata publishes on md.*, by venue.", "venue", w=10, h=4)
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
    panels.open_orders(b, w=6)
    panels.execution_healthy(b, "Execution healthy", w=6)
    panels.accounts_halted(
        b, "Accounts whose venue refuses their keys or permissions. Should be 0.", w=6
    )
    panels.kill_switch(b, w=6)
    panels.order_updates(b, "Order state changes in execution, by new status.", w=12)
    panels.rejects(
        b,
        "Refused intents and venue rejections, by reason (0 when nothing was rejected).",
        w=12,
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
    for title, description, metric in (
        (
            "Realized P&L by user",
            "Realized P&L of every user's bots, summed (quote currency; click a line for the"
            " user).",
            "tradebus_strategy_bot_realized_pnl",
        ),
        (
            "Unrealized P&L by user",
            "Mark-to-market P&L of the users' open positions (quote currency).",
            "tradebus_strategy_bot_unrealized_pnl",
        ),
    ):
        b.timeseries(
            title,
            description,
            target(f"sum by (user) ({metric})", "{{user}}"),
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
        steps=SIGNED,
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
    b.row("Bus and database (Docker Compose: the exporters)")
    b.timeseries(
        "NATS messages / s",
        "Messages nats-server received from publishers and delivered to subscribers, over"
        " every account (prometheus-nats-exporter). Deliveries far above receipts: many"
        " subscribers per message; both at 0 while bots run: nothing reaches the bus.",
        target("sum(rate(gnatsd_varz_in_msgs[1m]))", "received"),
        target("sum(rate(gnatsd_varz_out_msgs[1m]))", "delivered"),
        w=12,
        unit="ops",
    )
    b.timeseries(
        "Ledger database",
        "The ledger's PostgreSQL (postgres_exporter, database tradebus): connections open,"
        " transactions committed and rolled back per second. Rollbacks should stay near 0;"
        " connections near the services' pool sizes.",
        target('sum(pg_stat_database_numbackends{datname="tradebus"})', "connections"),
        target('sum(rate(pg_stat_database_xact_commit{datname="tradebus"}[1m]))', "commits / s"),
        target(
            'sum(rate(pg_stat_database_xact_rollback{datname="tradebus"}[1m]))',
            "rollbacks / s",
        ),
        w=12,
        unit="short",
    )
    return b
