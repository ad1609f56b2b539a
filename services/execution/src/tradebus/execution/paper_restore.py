"""Rebuild a paper account from the ledger when execution starts.

The paper venue (:class:`~tradebus.engine.paper.exchange.PaperExchange`) lives in
memory, so a restarted execution would otherwise start it from the
configured balances and disagree with the ledger. The ledger is the source
of truth; :func:`restore_account` rebuilds one account from it:

* **Balances**: ``total`` of every asset is its journal sum
  (:meth:`LedgerHistory.balances`). ``locked`` is recomputed: the locks of the
  resting orders plus the margin of perpetual positions.
* **Perpetual positions** (the ``<SYMBOL>-PERP`` pseudo-assets): the signed
  quantity is the journal sum; the open cost (hence the average entry price),
  the realized P&L and the margin come from replaying the account's fills of
  that symbol through :func:`perp.apply_fill` in booking order
  (:meth:`LedgerHistory.position_fills`), exactly as the venue applied them.
* **Resting orders**: the ledger's open orders the venue had *accepted*
  (``accepted`` / ``partially_filled``), remaining quantity ``qty -
  filled_qty``, with their limit price, side, symbol, client order id and
  ``trigger_ts``, placed back in placement order so that their locks are
  exactly what placing them would lock now (perpetual locks depend on the
  position and on the earlier resting orders). A market order's lock price
  is :data:`MARKET_BUY_LOCK_FACTOR` times the newest fill price of its symbol
  on this exchange's accounts (the last trade it saw is not stored). A
  restored order is not live until the next market event after its
  ``trigger_ts`` and is then judged marketable against the last trade seen
  since the restart (none on the first event: a limit order rests passive,
  which it almost always was, since a marketable order fills on the next
  trade).
* **Orders the venue never answered** (``new`` / ``unknown``): the ledger
  row was written, and execution died before it recorded the venue's answer.
  Placing on the paper venue and recording the acceptance happen under one
  lock in one process, so whatever the dead process placed died with it.
  These orders are *not* restored and their client ids are not "placed":
  :meth:`PaperVenue.find_order` says "not found", so the engine
  (``_resume`` for a redelivered intent, ``resolve_unknown`` for an
  ``unknown`` row) places them once, now. Every client id the venue ever
  accepted (rows with a venue order id, done ones too) counts as placed, so
  ``find_order`` and the duplicate check answer as they did before the
  restart.

**Crash between a paper fill and its ledger commit.** A paper fill changes
the venue's memory, then the ledger books it in one transaction. If
execution dies in between, the fill is lost on *both* sides: the ledger
never had it, and the restored venue is rebuilt from the ledger, so the
order is resting again with its funds locked. A simulated fill that was
never booked simply never happened; the order may fill on a later trade.
The same holds for a place whose acceptance was not committed (above).
"""

from __future__ import annotations

import logging
from decimal import Decimal

import msgspec

from tradebus.common.money import ZERO
from tradebus.engine import perp
from tradebus.engine.accounts import AccountSpec, trades_perpetual
from tradebus.engine.orders import venue_order
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.engine.paper.funds import MARKET_BUY_LOCK_FACTOR
from tradebus.engine.perp import PerpPosition, notional_quantum
from tradebus.ledger.entries import POSITION_SUFFIX
from tradebus.ledger.history import LedgerHistory
from tradebus.ledger.rows import OrderRow

log = logging.getLogger(__name__)

RESTING_STATUSES = ("accepted", "partially_filled")
"""Open ledger statuses whose order the venue held (the others it never answered)."""


class Restored(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`restore_account` rebuilt for one account (counts, for the log)."""

    account: str
    assets: int
    positions: int
    resting: int
    unanswered: int


async def restore_account(
    exchange: PaperExchange, ledger: LedgerHistory, spec: AccountSpec
) -> Restored:
    """Open ``spec``'s account on ``exchange`` with its state rebuilt from ``ledger``.

    The ledger account must exist (with its deposits). The exchange must not
    hold the account yet. See the module docstring for what is rebuilt.

    Raises
    ------
    ValueError
        If the account is already open on ``exchange``, or a position's fills
        do not add up to its journal sum (the ledger was edited by hand).
    """
    if spec.id in exchange.accounts:
        raise ValueError(f"paper account {spec.id} is already open")
    sums = await ledger.balances(spec.id)
    cash = {a: v for a, v in sums.items() if not a.endswith(POSITION_SUFFIX)}
    exchange.open_account(
        spec.id,
        cash,
        spec.maker_fee_bps,
        spec.taker_fee_bps,
        market_kind=spec.market_kind,
        leverage=spec.leverage,
    )
    acct = exchange.accounts[spec.id]
    acct.positions = {}
    for asset, qty in sums.items():
        if asset.endswith(POSITION_SUFFIX):
            symbol = asset.removesuffix(POSITION_SUFFIX)
            position = await _replay_position(exchange, ledger, spec, symbol, asset)
            if position.qty != qty:
                raise ValueError(
                    f"{spec.id}: fills of {symbol} add up to {position.qty}, journal says {qty}"
                )
            acct.positions[symbol] = position
            acct.balance(exchange.market(symbol).quote).locked += position.margin
    resting = unanswered = 0
    for row in await ledger.open_orders_in_placement_order(spec.id):
        if row.status not in RESTING_STATUSES:
            unanswered += 1  # never placed as far as the venue is concerned: the engine sends it
            continue
        lock_price = row.price
        if lock_price is None and not (row.side == "sell" and not _perpetual(exchange, spec, row)):
            lock_price = await _market_lock_price(exchange, ledger, row)
        exchange.restore_order(spec.id, venue_order(row, row.qty - row.filled_qty), lock_price)
        resting += 1
    for client_order_id in await ledger.accepted_client_ids(spec.id):
        exchange.restore_placed(spec.id, str(client_order_id))
    restored = Restored(
        account=spec.id,
        assets=len(cash),
        positions=len(acct.positions),
        resting=resting,
        unanswered=unanswered,
    )
    log.info("paper account restored from the ledger", extra=msgspec.structs.asdict(restored))
    return restored


async def _replay_position(
    exchange: PaperExchange, ledger: LedgerHistory, spec: AccountSpec, symbol: str, asset: str
) -> PerpPosition:
    """The position of ``symbol``: its fills replayed in booking order, with its margin."""
    quantum = notional_quantum(exchange.market(symbol))
    position = PerpPosition()
    for fill in await ledger.position_fills(spec.id, asset):
        perp.apply_fill(position, fill.side, fill.qty, fill.price, quantum)  # type: ignore[arg-type]
    position.margin = perp.position_margin(position, spec.leverage, quantum)
    return position


def _perpetual(exchange: PaperExchange, spec: AccountSpec, row: OrderRow) -> bool:
    """True if ``row`` trades as a perpetual on ``spec``'s account."""
    return trades_perpetual(spec.market_kind, exchange.market(row.symbol))


async def _market_lock_price(
    exchange: PaperExchange, ledger: LedgerHistory, row: OrderRow
) -> Decimal:
    """The lock price of a restored market order (see the module docstring).

    Without any fill of the symbol on this exchange, the order locks only
    its fee part (a price of zero) and a warning is logged.
    """
    price = await ledger.last_fill_price(sorted(exchange.accounts), row.symbol)
    if price is None:
        log.warning(
            "no price known for a restored market order: it locks nothing",
            extra={"account": row.account_id, "intent_id": row.intent_id},
        )
        return ZERO
    return price * MARKET_BUY_LOCK_FACTOR
