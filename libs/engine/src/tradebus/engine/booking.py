"""The ledger row of a venue fill: the fill and its journal entries (pure).

A spot fill books base, quote and fee entries (:func:`fill_entries`); a
perpetual fill books the position's pseudo-asset, the venue's realized P&L
and the fee (:func:`perp_fill_entries`). Which one is the venue's word
(:attr:`VenueFill.market_kind`): the venue decided how it settled the fill,
and the ledger must journal it the same way for reconciliation to match.
"""

from __future__ import annotations

from tradebus.common.markets import Market
from tradebus.common.money import ZERO
from tradebus.engine.events import fill_ref
from tradebus.engine.venue import VenueFill
from tradebus.ledger.entries import FillFacts, PerpFillFacts, fill_entries, perp_fill_entries
from tradebus.ledger.rows import FillRow


def fill_row(fill: VenueFill, market: Market, ts: int) -> FillRow:
    """The :class:`FillRow` of ``fill`` on ``market``, recorded at ``ts`` (ns)."""
    ref = fill_ref(fill)
    if fill.market_kind == "perpetual":
        entries = perp_fill_entries(
            PerpFillFacts(
                account=fill.account,
                symbol=fill.symbol,
                quote=market.quote,
                side=fill.side,
                qty=fill.qty,
                realized_pnl=ZERO if fill.realized_pnl is None else fill.realized_pnl,
                fee=fill.fee,
                fee_asset=fill.fee_asset,
                ref=ref,
            )
        )
    else:
        entries = fill_entries(
            FillFacts(
                account=fill.account,
                base=market.base,
                quote=market.quote,
                side=fill.side,
                price=fill.price,
                qty=fill.qty,
                fee=fill.fee,
                fee_asset=fill.fee_asset,
                ref=ref,
            )
        )
    return FillRow(
        venue=fill.venue,
        trade_id=fill.trade_id,
        client_order_id=int(fill.client_order_id),
        account_id=fill.account,
        symbol=fill.symbol,
        side=fill.side,
        price=fill.price,
        qty=fill.qty,
        fee=fill.fee,
        fee_asset=fill.fee_asset,
        liquidity=fill.liquidity,
        ts_event=fill.ts_event,
        ts=ts,
        entries=entries,
    )
