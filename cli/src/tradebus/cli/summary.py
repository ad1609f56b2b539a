"""The end-of-run summary: per user and bot from the ledger, per account from reconciliation.

Numbers come from the ledger: orders counted here, fills, fees, position and
P&L from :func:`tradebus.ledger.reports.pnl.pnl_by_bot` (booked per cycle,
:class:`tradebus.common.positions.CycleBook`), priced at the last trade each
bot saw; state and cycles come from the bots' status blocks.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from tradebus.cli.figures import (
    QUOTE_PLACES,
    RECON_DIGITS,
    detail_market,
    format_figure,
    market_of,
)
from tradebus.cli.tables import render_table
from tradebus.common.markets import MarketCatalog, default_markets_path
from tradebus.common.messages import BotStatus, ReconReport
from tradebus.common.money import format_amount
from tradebus.ledger.reports.pnl import MarketPnl, MarketResolver, pnl_by_bot
from tradebus.ledger.reports.scope import ALL_USERS, LedgerReader


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
    conn: LedgerReader,
    statuses: dict[str, BotStatus],
    catalog: MarketCatalog | None = None,
) -> list[BotSummary]:
    """Summarise every ``(user, source, symbol)`` that placed orders, from the ledger.

    ``statuses`` (bot id -> status) adds state, cycles and the last price, and
    says which market data each bot's account trades on; without a status the
    unrealized P&L is zero. ``catalog`` (the shipped markets file by default)
    gives each market's base and quote asset, to count fees in the quote asset.
    """
    orders: dict[tuple[str, str, str], int] = {
        (r["user_id"], r["source"], r["symbol"]): r["n"]
        for r in await conn.fetch(
            "SELECT user_id, source, symbol, count(*) AS n FROM orders GROUP BY 1, 2, 3"
        )
    }
    markets = MarketResolver(
        catalog or MarketCatalog.load(default_markets_path()),
        data_venues={s.account: s.venue for s in statuses.values()},
    )
    marks = {
        (s.venue, s.symbol): s.last_price for s in statuses.values() if s.last_price is not None
    }
    pnl: dict[tuple[str, str, str], MarketPnl] = {}
    for r in await pnl_by_bot(conn, ALL_USERS, markets=markets, marks=marks):
        bot_key = (str(r.user), r.bot or "", r.symbol)
        pnl[bot_key] = r if bot_key not in pnl else _together(pnl[bot_key], r)
    rows = []
    for key in sorted(orders.keys() | pnl.keys()):
        user, source, symbol = key
        row = pnl.get(key)
        status = statuses.get(source)
        last = status.last_price if status is not None else None
        rows.append(
            BotSummary(
                user=user,
                bot=source,
                symbol=symbol,
                orders=orders.get(key, 0),
                fills=0 if row is None else row.fills,
                avg_price=None if row is None else row.avg_price,
                position=Decimal(0) if row is None else row.position,
                realized_pnl=Decimal(0) if row is None else row.realized_pnl,
                unrealized_pnl=Decimal(0)
                if row is None or row.unrealized_pnl is None
                else row.unrealized_pnl,
                fees=Decimal(0) if row is None else row.fees,
                state=status.state if status is not None else "-",
                cycles=status.cycles_completed if status is not None else 0,
                last_price=last,
            )
        )
    return rows


def _together(a: MarketPnl, b: MarketPnl) -> MarketPnl:
    """One summary row of a bot that traded one symbol in two accounts: the sums (an
    average price only if one of them holds a position)."""
    unrealized = None
    if a.unrealized_pnl is not None and b.unrealized_pnl is not None:
        unrealized = a.unrealized_pnl + b.unrealized_pnl
    return msgspec.structs.replace(
        a,
        fills=a.fills + b.fills,
        position=a.position + b.position,
        avg_price=a.avg_price if not b.position else b.avg_price if not a.position else None,
        realized_pnl=a.realized_pnl + b.realized_pnl,
        unrealized_pnl=unrealized,
        fees=a.fees + b.fees,
    )


def render_bots(rows: list[BotSummary], catalog: MarketCatalog | None = None) -> str:
    """A table of :func:`ledger_summary` rows, users grouped, with totals; prices and
    positions with their market's precision (``catalog``, the shipped markets file by
    default), money with :data:`~tradebus.cli.figures.QUOTE_PLACES` places."""
    catalog = catalog or MarketCatalog.load(default_markets_path())
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
        market = market_of(catalog, None, r.symbol)
        table.append(
            (
                r.user,
                r.bot,
                r.symbol,
                r.state,
                str(r.cycles),
                str(r.orders),
                str(r.fills),
                format_figure("avg_price", r.avg_price, market),
                format_figure("position", r.position, market),
                _money(r.realized_pnl),
                _money(r.unrealized_pnl),
                _money(r.fees),
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
            _money(realized),
            _money(unrealized),
            _money(fees),
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
                    format_amount(row.venue_total, digits=RECON_DIGITS),
                    format_amount(row.ledger_total, digits=RECON_DIGITS),
                    format_amount(row.drift, digits=RECON_DIGITS),
                    format_amount(row.tolerance, digits=RECON_DIGITS),
                )
            )
    return render_table(table[0], table[1:], right_from=3)


def render_statuses(statuses: list[BotStatus], catalog: MarketCatalog | None = None) -> str:
    """Every bot's status block: the common columns, then each bot's own details, each
    number with its market's precision (:func:`tradebus.cli.figures.format_figure`)."""
    from tradebus.cli.botctl import bots_table

    catalog = catalog or MarketCatalog.load(default_markets_path())
    lines = [bots_table(statuses, catalog)]
    for s in sorted(statuses, key=lambda s: (s.user, s.bot)):
        market = market_of(catalog, s.venue, s.symbol)
        parts = []
        if s.strategy == "ladder":
            parts.append(f"take-profit progress {s.take_profit_progress_pct:.0f}%")
        parts += [
            f"{k}={format_figure(k, v, detail_market(catalog, s.venue, k, market))}"
            for k, v in sorted(s.details.items())
            if v is not None
        ]
        if s.error:
            parts.append(f"error: {s.error}")
        lines.append(f"  {s.bot} [{s.strategy} {s.phase}]" + (": " + ", ".join(parts)))
    return "\n".join(lines)


def _money(value: Decimal) -> str:
    """Quote-asset money of the summary."""
    return format_amount(value, QUOTE_PLACES)
