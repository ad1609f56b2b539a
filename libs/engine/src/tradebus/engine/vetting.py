"""Step 2 of the execution protocol: may this order go out, and at what size?

:class:`Vetting` answers for one new ``PlaceOrder``, in this order:

1. the kill switch (:mod:`.killswitch`): ``kill_switch`` while engaged for
   the account or globally;
2. the market: ``unknown_symbol``;
3. the order's shape (:func:`~tradebus.engine.risk.check_order_shape`);
4. a ``clamp_to_free`` sell is sized by the venue's free balance
   (:mod:`.sizing`) and checked again;
5. the account's limits (:func:`~tradebus.engine.risk.check_limits`)
   against a :class:`~tradebus.engine.risk_state.RiskState` snapshot:
   open orders, last trade price, today's realized P&L, order rate, and
   for a perpetual order that would otherwise be refused by
   ``max_open_orders``, the venue's position in its symbol and the quantity
   of the account's resting orders on its side (is it closing?
   :func:`~tradebus.engine.risk.is_closing`), as the venue shows them
   (:meth:`~tradebus.engine.venue.Venue.perpetual_exposure`);
6. for a buy of a bot in a strategy group with a ``total_capital``
   (:attr:`Vetting.groups`), the group's cap
   (:func:`~tradebus.engine.risk.check_group_capital`) against what the group's bots
   commit: their open buy orders in the ledger and the positions their fills built.

It also keeps that risk state: every booked fill (:meth:`Vetting.on_fill`)
and every order sent (:meth:`Vetting.on_place`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

from tradebus.common.clock import Clock
from tradebus.common.ids import AccountId
from tradebus.common.markets import Market, MarketCatalog, UnknownMarketError
from tradebus.common.messages import PlaceOrder, Side
from tradebus.common.money import ZERO
from tradebus.common.positions import Position, price_pnl
from tradebus.engine.accounts import AccountSpec, trades_perpetual
from tradebus.engine.group_capital import GroupCaps, committed_quote
from tradebus.engine.killswitch import KillSwitch
from tradebus.engine.paper.exchange import PAPER_VENUE
from tradebus.engine.risk import (
    Refusal,
    check_group_capital,
    check_limits,
    check_margin_ratio,
    check_order_shape,
)
from tradebus.engine.risk_state import RiskState
from tradebus.engine.sizing import clamp_to_free, wants_free_balance
from tradebus.engine.venue import Venue
from tradebus.ledger.rows import OrderRow

FillFacts = tuple[Side, Decimal, Decimal, Decimal, str]
"""``(side, qty, price, fee, fee_asset)`` of a booked fill."""


class Vetting:
    """Vets new orders (module docstring).

    Parameters
    ----------
    catalog
        Markets.
    venues
        Venue of each account (free balances for ``clamp_to_free``).
    open_count
        ``account -> open orders``.
    last_price
        ``(market venue, symbol) -> last trade price`` or None.
    clock
        Now, in ns.
    open_orders
        ``account -> its open order rows`` (the ledger's): what a capped group's bots
        have open (none by default).
    """

    def __init__(
        self,
        catalog: MarketCatalog,
        venues: dict[AccountId, Venue],
        open_count: Callable[[AccountId], int],
        last_price: Callable[[str, str], Decimal | None],
        clock: Clock,
        open_orders: Callable[[AccountId], Awaitable[list[OrderRow]]] | None = None,
    ) -> None:
        self._catalog = catalog
        self._venues = venues
        self._open_count = open_count
        self._last_price = last_price
        self._clock = clock
        self._open_orders = open_orders
        self.kill = KillSwitch()
        self.risk = RiskState()
        self.groups = GroupCaps()
        """Which bot is in which capped strategy group (kept by the execution service)."""

    def market(self, spec: AccountSpec, symbol: str) -> Market | None:
        """The market ``symbol`` of the account's market data venue, or None."""
        try:
            return self._catalog.get(spec.market_data, symbol)
        except UnknownMarketError:
            return None

    async def vet(
        self, spec: AccountSpec, intent: PlaceOrder, source: str = ""
    ) -> PlaceOrder | Refusal:
        """The order to persist for ``intent`` from ``source`` (the subject's: a bot id,
        ``manual``) sized by ``clamp_to_free``, or why not."""
        blocked = self.kill.blocking(spec.id)
        if blocked is not None:
            return Refusal("kill_switch", blocked)
        market = self.market(spec, intent.symbol)
        if market is None:
            return Refusal("unknown_symbol", f"no market {spec.market_data}:{intent.symbol}")
        ioc = spec.venue != PAPER_VENUE  # the paper venue rests every order (gtc)
        refusal = check_order_shape(intent, market, immediate_or_cancel=ioc)
        perpetual = trades_perpetual(spec.market_kind, market)
        if refusal is None and intent.reduce_only:
            refusal = self._check_reduces(spec, intent, perpetual)
        if refusal is None and wants_free_balance(intent, perpetual):
            sized = clamp_to_free(intent, market, await self._free(spec.id, market.base))
            if isinstance(sized, Refusal):
                return sized
            intent, refusal = sized, check_order_shape(sized, market, immediate_or_cancel=ioc)
        open_orders = self._open_count(spec.id)
        position, same_side_open = None, ZERO
        most = spec.risk.max_open_orders
        if perpetual and most is not None and open_orders >= most:
            position, same_side_open = self._exposure(spec.id, intent)
        now = self.risk.snapshot(
            spec.id,
            self._clock.now_ns(),
            open_orders,
            self._last_price(spec.market_data, intent.symbol),
            perpetual=perpetual,
            position=position,
            same_side_open=same_side_open,
        )
        refusal = refusal or check_limits(intent, spec.risk, now)
        ratio = self.risk.margin_ratios.get(spec.id)
        refusal = refusal or check_margin_ratio(intent, spec.risk, ratio)
        if refusal is None and intent.side == "buy":
            refusal = await self._check_group(spec, intent, source)
        return intent if refusal is None else refusal

    def capped(self, spec: AccountSpec, source: str) -> bool:
        """True if ``source`` is a bot of a strategy group with a ``total_capital`` on
        ``spec``'s account (its buys depend on what the group's previous orders did)."""
        return self.groups.of(spec.user, spec.id, source) is not None

    async def _check_group(
        self, spec: AccountSpec, intent: PlaceOrder, source: str
    ) -> Refusal | None:
        """The strategy group's ``total_capital`` (:mod:`.group_capital`)."""
        group = self.groups.of(spec.user, spec.id, source)
        if group is None:
            return None
        rows = await self._open_orders(spec.id) if self._open_orders is not None else []
        committed = committed_quote(
            rows,
            self.risk.source_positions(spec.id, group.bots),
            group.bots,
            lambda symbol: self._last_price(spec.market_data, symbol),
        )
        last = self._last_price(spec.market_data, intent.symbol)
        return check_group_capital(intent, group.group, group.total_capital, committed, last)

    async def _free(self, account: AccountId, asset: str) -> Decimal:
        """The venue's free balance of ``asset`` on ``account`` (zero if it holds none)."""
        for balance in await self._venues[account].balances():
            if balance.asset == asset:
                return balance.free
        return ZERO

    def _exposure(self, account: AccountId, intent: PlaceOrder) -> tuple[Decimal | None, Decimal]:
        """The venue's signed perpetual position of ``account`` in the intent's symbol and
        the quantity of its resting orders there on the intent's side; ``(None, 0)``
        from a venue that does not show them."""
        exposure = self._venues[account].perpetual_exposure(intent.symbol, intent.side)
        return exposure if exposure is not None else (None, ZERO)

    def on_place(self, account: AccountId) -> None:
        """An order of ``account`` goes to its venue now."""
        self.risk.on_place(account, self._clock.now_ns())

    def _check_reduces(
        self, spec: AccountSpec, intent: PlaceOrder, perpetual: bool
    ) -> Refusal | None:
        """A ``reduce_only`` order must shrink the account's perpetual position, by at
        most its size (the venue would refuse it, or cut it down, otherwise)."""
        if not perpetual:
            return Refusal(
                "invalid_order",
                f"reduce_only is for perpetual markets; account {spec.id} trades"
                f" {intent.symbol} spot",
            )
        position = self.risk.position(spec.id, intent.symbol)
        held = ZERO if position is None else position.qty
        reduces = (held > 0 and intent.side == "sell") or (held < 0 and intent.side == "buy")
        if not reduces or intent.qty > abs(held):
            return Refusal(
                "invalid_order",
                f"reduce_only: a {intent.side} of {intent.qty} would not reduce the position"
                f" of {held} {intent.symbol}",
            )
        return None

    def price_pnl(
        self, spec: AccountSpec, symbol: str, side: Side, qty: Decimal, price: Decimal
    ) -> Decimal:
        """What a perpetual fill realizes on the account's position, fees left out
        (:func:`~tradebus.common.positions.price_pnl`), before it is applied."""
        position = self.risk.position(spec.id, symbol) or Position()
        return price_pnl(position, side, qty, price)

    def on_fill(
        self, spec: AccountSpec, symbol: str, facts: FillFacts, recorded_ns: int, source: str = ""
    ) -> None:
        """A fill of ``spec``'s order from ``source`` was booked at ``recorded_ns``: update
        the account's P&L and positions (the source's too)."""
        market = self.market(spec, symbol)
        if market is not None:
            perpetual = trades_perpetual(spec.market_kind, market)
            self.risk.on_fill(spec.id, market, perpetual, facts, recorded_ns, source)
