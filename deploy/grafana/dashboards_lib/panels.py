"""Panels that stand on more than one dashboard, each defined once.

Each function adds its panel to the :class:`~dashboards_lib.builder.Board` it is given at
the board's current position. Where dashboards word a panel differently the title or
description is a parameter; ``where`` is a label filter such as ``user="$user"``.
"""

from __future__ import annotations

from .builder import (
    CONNECTED,
    ONE_GOOD,
    UP_DOWN,
    YES_NO,
    ZERO,
    ZERO_GOOD,
    Board,
    quantiles,
    target,
)


def _filtered(metric: str, where: str) -> str:
    """``metric`` with the label filter ``where`` (when there is one)."""
    return f"{metric}{{{where}}}" if where else metric


def _or_zero(where: str) -> str:
    """A filtered series may not exist yet (a user without orders): then end in ZERO."""
    return ZERO if where else ""


def feeds_connected(b: Board, title: str, description: str, *, w: int = 6) -> None:
    """Up/down per live feed (per marketdata process for a replay)."""
    b.stat(
        title,
        description,
        target(CONNECTED, "{{venue}}{{job}}"),
        w=w,
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )


def ticks_published(b: Board, description: str, *labels: str, w: int = 12, h: int = 8) -> None:
    """Ticks marketdata publishes per second, split by ``labels``."""
    by = ", ".join(labels)
    b.timeseries(
        "Ticks published / s",
        description,
        target(
            f"sum by ({by}) (rate(tradebus_marketdata_ticks_published_total[1m]))",
            " ".join(f"{{{{{label}}}}}" for label in labels),
        ),
        w=w,
        h=h,
        unit="ops",
    )


def execution_healthy(b: Board, title: str = "Healthy", *, w: int = 4) -> None:
    """Whether execution's ledger and bus take writes."""
    b.stat(
        title,
        "1 while the ledger and the bus take writes; 0 while intents and fills wait.",
        target("min(tradebus_execution_healthy)"),
        w=w,
        mappings=UP_DOWN,
        steps=ONE_GOOD,
    )


def kill_switch(b: Board, *, w: int = 4) -> None:
    """Whether any kill switch is engaged."""
    b.stat(
        "Kill switch engaged",
        "Whether any kill switch (global or an account's) is engaged.",
        target("max(tradebus_execution_killswitch_engaged)" + ZERO),
        w=w,
        mappings=YES_NO,
        steps=ZERO_GOOD,
    )


def accounts_halted(
    b: Board,
    description: str = "Accounts whose venue refuses their keys or permissions.",
    *,
    w: int = 4,
) -> None:
    """How many accounts execution halted."""
    b.stat(
        "Accounts halted",
        description,
        target("count(tradebus_execution_account_halted == 1)" + ZERO),
        w=w,
        steps=ZERO_GOOD,
    )


def open_orders(b: Board, *, w: int = 4) -> None:
    """Orders open at the venues."""
    b.stat(
        "Open orders",
        "Orders open at the venues.",
        target("sum(tradebus_execution_open_orders)"),
        w=w,
    )


def order_updates(b: Board, description: str, *, w: int, where: str = "") -> None:
    """Order state changes per second, by new status."""
    metric = _filtered("tradebus_execution_orders_total", where)
    b.timeseries(
        "Order updates / s",
        description,
        target(f"sum by (status) (rate({metric}[1m]))" + _or_zero(where), "{{status}}"),
        w=w,
        unit="ops",
    )


def fills_recorded(b: Board, title: str, description: str, *, w: int, where: str = "") -> None:
    """Fills booked in the ledger per second, by venue."""
    metric = _filtered("tradebus_execution_fills_recorded_total", where)
    b.timeseries(
        title,
        description,
        target(f"sum by (venue) (rate({metric}[1m]))" + _or_zero(where), "{{venue}}"),
        w=w,
        unit="ops",
    )


def rejects(b: Board, description: str, *, w: int, where: str = "") -> None:
    """Refused intents and venue rejections per second, by reason (0 when none)."""
    metric = _filtered("tradebus_execution_rejects_total", where)
    b.timeseries(
        "Rejects / s",
        description,
        target(f"sum by (reason) (rate({metric}[1m]))" + ZERO, "{{reason}}"),
        w=w,
        unit="ops",
    )


def latency(b: Board, title: str, description: str, metric: str, *, w: int = 8) -> None:
    """p50/p95/p99 of the histogram ``metric``, in seconds."""
    b.timeseries(title, description, *quantiles(metric), w=w, unit="s")
