"""The metrics of the exporters compose runs beside the stack, as the dashboards use them.

Not tradebus metrics, so not in docs/metrics.md: each name here was read from the
exporter's own source at the version compose pins (docs/versions.md), and
``tests/unit/test_dashboards.py`` accepts a panel's metric only if it is ``tradebus_*``,
a process metric, ``up`` or listed here. ``tradebus demo --with-prometheus`` runs no
exporter, so ``tests/e2e/test_monitoring.py`` lets these panels be empty there (their
queries must still evaluate).

This module imports nothing: the tests load it by path.
"""

from __future__ import annotations

EXPORTER_METRICS: dict[str, frozenset[str]] = {
    # natsio/prometheus-nats-exporter with -varz: nats-server's /varz fields as
    # gnatsd_varz_<field> (collector/collector.go; its collector_test checks these names).
    "nats-exporter": frozenset({"gnatsd_varz_in_msgs", "gnatsd_varz_out_msgs"}),
    # prometheuscommunity/postgres-exporter: the stat_database collector (on by default),
    # pg_stat_database_<column>{datid, datname} (collector/pg_stat_database.go).
    "postgres-exporter": frozenset(
        {
            "pg_stat_database_numbackends",
            "pg_stat_database_xact_commit",
            "pg_stat_database_xact_rollback",
        }
    ),
}
"""Compose service (= Prometheus job) -> the metric names of it the dashboards query."""
