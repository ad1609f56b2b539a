"""The end-of-run summary: per user and bot from the ledger, per account from reconciliation.

Numbers come from the ledger (orders, fills, fees; position and P&L by the
average-cost method of :mod:`tradebus.common.positions`), priced at the last
trade each bot saw; state and cycles come from the bots' status blocks.
"""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import msgspec

from tradebus.cli.tables import render_table
from tradebus.common.messages import BotStatus, ReconReport
from tradebus.common.positions import Position


class BotSummary(msgspec.Struct, kw_only=True):
    """One row of the summary (quote-asset money, base-asset quantities)."""

    user: str
    bot: str
    symbol: str
    orders: int
    fills: int
    avg_price: Decimal | None
    position: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    state: str = "-"
    cycles: int = 0
    last_price: Decimal | None = None


async def ledger_summary(
    conn: asyncpg.Connection, statuses: dict[str, BotStatus]
) -> list[BotSummary]:
    """Summarise every ``(user, source, symbol)`` that placed orders, from the ledger.

    ``statuses`` (bot id -> status) adds state, cycles and the last price;
    without a status the unrealized P&L is zero.
    """
    orders = {
        (r["user_id"], r["source"], r["symbol"]): r["n"]
        for r in await conn.fetch(
            "SELECT user_id, source, symbol, count(*) AS n FROM orders GROUP BY 1, 2, 3"
        )
    }
    fills = await conn.fetch(
        "SELECT o.user_id, o.source, f.symbol, f.side, f.price, f.qty, f.fee"
        " FROM fills f JOIN orders o USING (client_order_id)"
        " ORDER BY f.ts_event, f.recorded_ns, f.trade_id"
    )
    positions: dict[tuple[str, str, str], Position] = {}
    fill_counts: dict[tuple[str, str, str], int] = {}
    for f in fills:
        key = (f["user_id"], f["source"], f["symbol"])
        positions.setdefault(key, Position()).apply(f["side"], f["qty"], f["price"], f["fee"])
        fill_counts[key] = fill_counts.get(key, 0) + 1
    rows = []
    for key in sorted(orders):
        user, source, symbol = key
        pos = positions.get(key, Position())
        status = statuses.get(source)
        last = status.last_price if status is not None else None
        rows.append(
            BotSummary(
                user=user,
                bot=source,
                symbol=symbol,
                orders=orders[key],
                fills=fill_counts.get(key, 0),
                avg_price=pos.avg_price,
                position=pos.qty,
                realized_pnl=pos.realized_pnl,
                unrealized_pnl=pos.unrealized_pnl(last) if last is not None else Decimal(0),
                fees=pos.fees,
                state=status.state if status is not None else "-",
                cycles=status.cycles_completed if status is not None else 0,
                last_price=last,
            )
        )
    return rows


def _fmt(value: Decimal | None, places: int) -> str:
    if value is None:
        return "-"
    return f"{value.quantize(Decimal(1).scaleb(-places)):,}"


def render_bots(rows: list[BotSummary]) -> str:
    """A plain-text table of :func:`ledger_summary` rows, users grouped, with totals."""
    header = (
        "user",
        "bot",
        "symbol",
        "state",
        "cycles",
        "orders",
        "fills",
        "avg price",
        "position",
        "realized P&L",
        "unrealized P&L",
        "fees",
    )
    table = [header]
    for r in rows:
        table.append(
            (
                r.user,
                r.bot,
                r.symbol,
                r.state,
                str(r.cycles),
                str(r.orders),
                str(r.fills),
                _fmt(r.avg_price, 2),
                _fmt(r.position, 5),
                _fmt(r.realized_pnl, 4),
                _fmt(r.unrealized_pnl, 4),
                _fmt(r.fees, 4),
            )
        )
    realized = sum((r.realized_pnl for r in rows), Decimal(0))
    unrealized = sum((r.unrealized_pnl for r in rows), Decimal(0))
    fees = sum((r.fees for r in rows), Decimal(0))
    table.append(
        (
            "total",
            "",
            "",
            "",
            "",
            str(sum(r.orders for r in rows)),
            str(sum(r.fills for r in rows)),
            "",
            "",
            _fmt(realized, 4),
            _fmt(unrealized, 4),
            _fmt(fees, 4),
        )
    )
    return render_table(table[0], table[1:], right_from=4)


def render_recon(reports: list[ReconReport]) -> str:
    """A plain-text table of the final reconciliation, one row per account and asset."""
    table = [("account", "status", "asset", "venue", "ledger", "drift", "tolerance")]
    for rep in reports:
        for row in rep.rows:
            table.append(
                (
                    rep.account,
                    rep.status.upper(),
                    row.asset,
                    f"{row.venue_total.normalize():f}",
                    f"{row.ledger_total.normalize():f}",
                    f"{row.drift.normalize():f}",
                    f"{row.tolerance.normalize():f}",
                )
            )
    return render_table(table[0], table[1:], right_from=3)


def render_statuses(statuses: list[BotStatus]) -> str:
    """Every bot's status block: the common columns, then each bot's own details."""
    from tradebus.cli.botctl import bots_table

    lines = [bots_table(statuses)]
    for s in sorted(statuses, key=lambda s: (s.user, s.bot)):
        parts = []
        if s.strategy == "ladder":
            parts.append(f"take-profit progress {s.take_profit_progress_pct:.0f}%")
        parts += [f"{k}={_short(v)}" for k, v in sorted(s.details.items()) if v is not None]
        if s.error:
            parts.append(f"error: {s.error}")
        lines.append(f"  {s.bot} [{s.strategy} {s.phase}]" + (": " + ", ".join(parts)))
    return "\n".join(lines)


def _short(value: object, places: int = 8) -> str:
    """A detail value for people: long decimals rounded to ``places``, zeros trimmed."""
    if not isinstance(value, str):
        return str(value)
    try:
        number = Decimal(value)
    except ArithmeticError:
        return value
    if not number.is_finite() or number.as_tuple().exponent >= -places:  # type: ignore[operator]
        return value
    rounded = number.quantize(Decimal(1).scaleb(-places)).normalize()
    return f"{rounded:f}"
