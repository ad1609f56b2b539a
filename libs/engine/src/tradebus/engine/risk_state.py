"""What the risk limits are checked against: each account's realized P&L today and order rate.

:class:`RiskState` follows every fill execution books and every order it
places, and gives :func:`tradebus.engine.risk.check_limits` a
:class:`~tradebus.engine.risk.RiskSnapshot` of one account:

* **realized P&L today**: each account's position per symbol is kept with
  the average-cost method of :class:`tradebus.common.positions.Position`
  (STRATEGIES.md §1); the realized P&L a fill books counts for the UTC day
  on which execution recorded it (the ledger's ``recorded_ns``, so a replay
  of old market data still counts today). Fees are in the quote asset (a
  fee charged in the base asset is valued at the fill price; one in a third
  asset is not counted). On a spot account a sell beyond the position
  execution has seen bought (coins deposited, not traded) realizes nothing:
  their cost is unknown;
* **order rate**: the times of the orders placed in the last second.

It is rebuilt at start from the ledger's fills (:meth:`RiskState.replay`).
Pure and synchronous; times are integer nanoseconds.
"""

from __future__ import annotations

from collections import defaultdict, deque
from decimal import Decimal

from tradebus.common.ids import AccountId
from tradebus.common.markets import Market
from tradebus.common.messages import Side
from tradebus.common.money import ZERO
from tradebus.common.positions import Position, position_change
from tradebus.engine.risk import RiskSnapshot

DAY_NS = 86_400 * 1_000_000_000
SECOND_NS = 1_000_000_000


class RiskState:
    """Per account: positions per symbol, realized P&L per UTC day, recent placements."""

    def __init__(self) -> None:
        self._positions: dict[tuple[AccountId, str], Position] = {}
        self._by_source: dict[tuple[AccountId, str, str], Position] = {}
        """(account, source, symbol) -> the position that source's fills built (spot)."""
        self._daily: dict[tuple[AccountId, int], Decimal] = defaultdict(lambda: ZERO)
        self._placed: dict[AccountId, deque[int]] = defaultdict(deque)
        self.margin_ratios: dict[AccountId, Decimal] = {}
        """The margin ratio of each perpetual account as last measured at its venue."""

    def on_fill(
        self,
        account: AccountId,
        market: Market,
        perpetual: bool,
        fill: tuple[Side, Decimal, Decimal, Decimal, str],
        recorded_ns: int,
        source: str = "",
    ) -> Decimal:
        """Apply one booked fill ``(side, qty, price, fee, fee_asset)`` of an order from
        ``source``; the P&L it realized. A spot fill also moves that source's own position
        (:meth:`source_positions`: what a group's bots hold)."""
        side, gross, price, fee, fee_asset = fill
        qty, fee_or_none = position_change(side, gross, price, fee, fee_asset, market)
        fee_quote = ZERO if fee_or_none is None else fee_or_none
        if source and not perpetual:
            mine = self._by_source.setdefault((account, source, market.symbol), Position())
            sold = min(qty, max(mine.qty, ZERO)) if side == "sell" else qty
            if sold > 0:
                mine.apply(side, sold, price, ZERO)
        position = self._positions.setdefault((account, market.symbol), Position())
        if not perpetual and side == "sell":
            held = max(position.qty, ZERO)
            if held <= 0:
                return ZERO
            if qty > held:
                fee_quote = fee_quote * held / qty
                qty = held
        before = position.realized_pnl
        position.apply(side, qty, price, fee_quote)
        realized = position.realized_pnl - before
        self._daily[(account, recorded_ns // DAY_NS)] += realized
        return realized

    def forget(self, account: AccountId) -> None:
        """Drop everything kept for ``account`` (unloaded at run time)."""
        for key in [k for k in self._positions if k[0] == account]:
            del self._positions[key]
        for source_key in [k for k in self._by_source if k[0] == account]:
            del self._by_source[source_key]
        for day in [k for k in self._daily if k[0] == account]:
            del self._daily[day]
        self._placed.pop(account, None)
        self.margin_ratios.pop(account, None)

    def position(self, account: AccountId, symbol: str) -> Position | None:
        """The account's position in ``symbol`` as execution has seen it traded (or None)."""
        return self._positions.get((account, symbol))

    def source_positions(self, account: AccountId, sources: frozenset[str]) -> list[Position]:
        """The spot positions of ``account`` that the fills of ``sources`` built (a group's
        bots' holdings: :func:`~tradebus.engine.group_capital.committed_quote`)."""
        return [
            p for (a, source, _), p in self._by_source.items() if a == account and source in sources
        ]

    def on_place(self, account: AccountId, now_ns: int) -> None:
        """An order of ``account`` was sent to its venue at ``now_ns``."""
        self._placed[account].append(now_ns)

    def daily_realized_pnl(self, account: AccountId, now_ns: int) -> Decimal:
        """Realized P&L of ``account`` since 00:00 UTC of ``now_ns`` (quote)."""
        return self._daily.get((account, now_ns // DAY_NS), ZERO)

    def orders_last_second(self, account: AccountId, now_ns: int) -> int:
        """Orders placed by ``account`` in the second before ``now_ns``."""
        times = self._placed[account]
        while times and times[0] <= now_ns - SECOND_NS:
            times.popleft()
        return len(times)

    def snapshot(
        self,
        account: AccountId,
        now_ns: int,
        open_orders: int,
        last_price: Decimal | None,
        *,
        perpetual: bool = False,
        position: Decimal | None = None,
        same_side_open: Decimal = ZERO,
    ) -> RiskSnapshot:
        """Everything :func:`~tradebus.engine.risk.check_limits` needs for ``account``.

        ``perpetual``, ``position`` and ``same_side_open`` are the venue's
        (:func:`~tradebus.engine.risk.is_closing`), given by the caller.
        """
        return RiskSnapshot(
            open_orders=open_orders,
            last_price=last_price,
            daily_realized_pnl=self.daily_realized_pnl(account, now_ns),
            orders_last_second=self.orders_last_second(account, now_ns),
            perpetual=perpetual,
            position=position,
            same_side_open=same_side_open,
        )
