"""The per-user dashboard: one user's bots, positions, orders and P&L."""

from __future__ import annotations

from . import panels
from .builder import DATASOURCE, SIGNED, ZERO, Board, target

USER = 'user="$user"'
"""The label filter of every query: the user picked at the top of the dashboard."""


def per_user() -> Board:
    """Bots, P&L, positions and order flow of the user picked in the ``user`` variable."""
    b = Board(
        "tradebus-user",
        "tradebus per user",
        "One user's bots, positions, orders and P&L (pick the user at the top).",
    )
    where = USER
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
    for kind, metric in (
        ("Realized", "tradebus_strategy_bot_realized_pnl"),
        ("Unrealized", "tradebus_strategy_bot_unrealized_pnl"),
    ):
        b.stat(
            f"{kind} P&L",
            f"Sum of the user's bots' {kind.lower()} P&L (quote currency).",
            target(f"sum({metric}{{{where}}})"),
            w=6,
            decimals=2,
            steps=SIGNED,
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
        *(
            target(f"sum by (bot, account, symbol) ({metric}{{{where}}})", table=True)
            for metric in (
                "tradebus_strategy_bot_position",
                "tradebus_strategy_bot_realized_pnl",
                "tradebus_strategy_bot_unrealized_pnl",
            )
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
    panels.order_updates(b, "The user's order state changes, by new status.", w=8, where=where)
    panels.fills_recorded(
        b, "Fills / s", "Fills booked in the ledger for the user, by venue.", w=8, where=where
    )
    panels.rejects(
        b,
        "The user's refused intents and venue rejections, by reason (0 when none).",
        w=8,
        where=where,
    )
    return b
