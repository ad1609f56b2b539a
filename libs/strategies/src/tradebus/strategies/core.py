"""What every strategy core shares: its identity, its orders, and its interface.

A strategy core is a pure, deterministic object (DESIGN.md, "Strategy host"):
it reads no clock and does no I/O; the host passes every market event and
order event in, and publishes the intents it returns. The same inputs always
give the same intents, with the same deterministic ids ``<bot>:<run>.<cycle>:<leg>``.

The contract between a core and whatever drives it (the strategy host, the
backtest) is :class:`Strategy`. Every core keeps its whole memory in one
msgspec state struct derived from :class:`BotState` (its ``phase`` and its
``orders``); :class:`BotBase`, generic over the parameters and that state,
gives snapshot/restore (the host writes snapshots to KV ``bot_state``) and the
re-sending of intents a resumed bot emitted but never heard back about. A
core that needs more than ticks and its own order events names those inputs
in :attr:`BotBase.inputs` (:class:`BotInput`); the driver calls the matching
method only on the cores that name it. The helpers below hold what the cores
do alike: the reference price from trades and quote mids, order bookkeeping
(acceptance, fills, cancels) and fees in quote.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar, Generic, Literal, Protocol, TypeVar, cast

import msgspec

from tradebus.common.ids import AccountId, BotId, IntentId, UserId, intent_id
from tradebus.common.markets import Market
from tradebus.common.messages import (
    AccountBalances,
    BotStatus,
    CancelOrder,
    Intent,
    OrderEvent,
    OrderFilled,
    OrderType,
    PlaceOrder,
    QuoteTick,
    Side,
    TradeTick,
)
from tradebus.common.money import ZERO, floor_to
from tradebus.common.positions import Position, position_change
from tradebus.strategies.position_check import (
    PositionCheck,
    PositionCheckResult,
    PositionCheckState,
    run_check,
    set_average,
)

OrderStatus = Literal["pending", "accepted", "filled", "canceled", "rejected"]
TERMINAL: frozenset[str] = frozenset({"filled", "canceled", "rejected"})


class BotContext(msgspec.Struct, frozen=True, kw_only=True):
    """Who a bot is and what it trades: fixed for the bot's life.

    ``market`` is the bot's (first) market; ``markets`` every market it trades
    (two for ``spread``), ``market`` first; empty means ``(market,)``.
    ``run`` is the bot's run number: it changes only on a fresh start and is
    part of every intent id. ``group`` names the strategy block of the bot
    file the bot came from (bots of one group share a volume target).
    """

    bot: BotId
    user: UserId
    account: AccountId
    strategy: str
    venue: str
    market: Market
    markets: tuple[Market, ...] = ()
    run: int = 1
    group: str = ""

    def all_markets(self) -> tuple[Market, ...]:
        """Every market of the bot, the primary one first."""
        return self.markets or (self.market,)

    def market_of(self, symbol: str) -> Market:
        """The bot's market with native id ``symbol``.

        Raises
        ------
        KeyError
            If the bot does not trade ``symbol``.
        """
        for market in self.all_markets():
            if market.symbol == symbol:
                return market
        raise KeyError(symbol)


class TrackedOrder(msgspec.Struct, kw_only=True):
    """A bot's view of one of its orders (quantities in base, price in quote).

    ``symbol``, ``order_type``, ``trigger_ts``, ``ts_init`` and
    ``clamp_to_free`` are kept so the exact intent can be sent again after a
    resume (:meth:`OrderTracker.resend`).
    """

    intent_id: IntentId
    leg: str
    side: Side
    price: Decimal | None
    qty: Decimal
    symbol: str = ""
    order_type: OrderType = "limit"
    trigger_ts: int | None = None
    ts_init: int = 0
    clamp_to_free: bool = False
    reduce_only: bool = False
    filled: Decimal = ZERO
    status: OrderStatus = "pending"
    cancel_sent: bool = False
    cancel_ts: int = 0

    @property
    def is_open(self) -> bool:
        """Not yet filled, canceled or rejected."""
        return self.status not in TERMINAL

    def accept(self, qty: Decimal) -> Decimal:
        """Mark the order accepted for ``qty``; return what the venue cut (else 0).

        Only a ``clamp_to_free`` sell is cut (the user sold by hand, seed 001):
        it takes ``qty``, and the bot writes the difference off its position.
        """
        if self.status == "pending":
            self.status = "accepted"
        if not self.clamp_to_free or qty >= self.qty:
            return ZERO
        cut, self.qty = self.qty - qty, qty
        return cut


class OrderTracker(msgspec.Struct, kw_only=True):
    """The orders a bot placed, keyed by intent id, with counts for its status block."""

    orders: dict[IntentId, TrackedOrder] = msgspec.field(default_factory=dict)
    placed: int = 0
    filled: int = 0

    def find(self, intent_id: IntentId | None) -> TrackedOrder | None:
        """The order placed by ``intent_id``, or None (also for no id: a refusal of an
        intent that could not be read)."""
        return self.orders.get(intent_id) if intent_id is not None else None

    def place(
        self,
        ctx: BotContext,
        cycle: int,
        leg: str,
        side: Side,
        price: Decimal | None,
        qty: Decimal,
        ts: int,
        trigger_ts: int | None,
        *,
        symbol: str | None = None,
        order_type: OrderType = "limit",
        clamp_to_free: bool = False,
        reduce_only: bool = False,
    ) -> PlaceOrder:
        """Record and return a GTC order intent ``<bot>:<run>.<cycle>:<leg>``.

        ``symbol`` defaults to the bot's primary market; ``price`` is the limit
        (or the worst acceptable price of a market order, None = no limit).
        """
        iid = intent_id(ctx.bot, ctx.run, cycle, leg)
        order = TrackedOrder(
            intent_id=iid,
            leg=leg,
            side=side,
            price=price,
            qty=qty,
            symbol=symbol or ctx.market.symbol,
            order_type=order_type,
            trigger_ts=trigger_ts,
            ts_init=ts,
            clamp_to_free=clamp_to_free,
            reduce_only=reduce_only,
        )
        self.orders[iid] = order
        self.placed += 1
        return self._place_intent(ctx, order)

    @staticmethod
    def _place_intent(ctx: BotContext, order: TrackedOrder) -> PlaceOrder:
        return PlaceOrder(
            intent_id=order.intent_id,
            account=ctx.account,
            symbol=order.symbol or ctx.market.symbol,
            side=order.side,
            qty=order.qty,
            price=order.price,
            order_type=order.order_type,
            ts_init=order.ts_init,
            trigger_ts=order.trigger_ts,
            clamp_to_free=order.clamp_to_free,
            reduce_only=order.reduce_only,
        )

    @staticmethod
    def _cancel_intent(ctx: BotContext, order: TrackedOrder) -> CancelOrder:
        return CancelOrder(
            intent_id=IntentId(f"{order.intent_id}:x"),
            account=ctx.account,
            target_intent_id=order.intent_id,
            ts_init=order.cancel_ts,
        )

    def cancel(self, ctx: BotContext, order: TrackedOrder, ts: int) -> CancelOrder | None:
        """A cancel intent for ``order`` (id ``<order id>:x``), once; None if already sent."""
        if order.cancel_sent or not order.is_open:
            return None
        order.cancel_sent = True
        order.cancel_ts = ts
        return self._cancel_intent(ctx, order)

    def cancel_all(self, ctx: BotContext, orders: list[TrackedOrder], ts: int) -> list[Intent]:
        """The cancel intents of ``orders`` not yet sent (see :meth:`cancel`)."""
        cancels = (self.cancel(ctx, o, ts) for o in orders)
        return [c for c in cancels if c is not None]

    def record_fill(self, order: TrackedOrder, qty: Decimal) -> bool:
        """Add a fill of ``qty`` to ``order``; True if it made the order filled."""
        order.filled += qty
        if order.filled >= order.qty and order.status != "filled":
            order.status = "filled"
            self.filled += 1
            return True
        return False

    def resend(self, ctx: BotContext) -> list[Intent]:
        """The intents to send again after a resume, identical to the first time.

        A place still ``pending`` (no answer heard) and a cancel sent for an
        order still open. Both are idempotent: JetStream drops a repeated
        ``Nats-Msg-Id`` and execution turns one intent id into at most one order.
        """
        out: list[Intent] = []
        for order in self.orders.values():
            if order.status == "pending":
                out.append(self._place_intent(ctx, order))
            if order.cancel_sent and order.is_open:
                out.append(self._cancel_intent(ctx, order))
        return out

    def open_orders(self, side: Side | None = None) -> list[TrackedOrder]:
        """Open orders, optionally of one side, in placement order."""
        return [o for o in self.orders.values() if o.is_open and (side is None or o.side == side)]

    def forget_closed(self) -> None:
        """Drop terminal orders (keeps snapshots small once a cycle is over)."""
        self.orders = {k: o for k, o in self.orders.items() if o.is_open}


class BotState(msgspec.Struct, kw_only=True):
    """The base of every core's state struct: what the host and the backtest read of any bot.

    ``phase`` is the core's phase (a core narrows it to its own ``Literal``;
    ``"failed"`` means the bot stopped on an error and its status shows
    why; ``"flattening"`` that a force exit waits for its cancels and its
    close, :meth:`Strategy.flatten`); ``orders`` every order the bot placed;
    ``position_check`` what its position checks found
    (:mod:`tradebus.strategies.position_check`). A core's state adds its own
    fields; the whole struct is the bot's snapshot.
    """

    phase: str = "waiting"
    orders: OrderTracker = msgspec.field(default_factory=OrderTracker)
    position_check: PositionCheckState = msgspec.field(default_factory=PositionCheckState)
    flattens: int = 0
    """Closing orders a force exit placed so far (their legs are ``f1``, ``f2``...)."""


class BotInput(enum.Enum):
    """An input a core needs beyond ticks and its own order events (:attr:`BotBase.inputs`)."""

    BALANCES = "balances"
    """The venue balances of the bot's account, given to :meth:`Strategy.on_balances`
    (the host polls execution every few seconds and as soon as the bot starts)."""
    GROUP_VOLUME = "group_volume"
    """The bot's group's filled buy notional: the host reads :meth:`Strategy.own_volume`
    and :meth:`Strategy.group_turn` and reports every group total, and which users are
    in play holding a turn, to :meth:`Strategy.on_group_volume`."""


def booked_change(fill: OrderFilled, market: Market) -> tuple[Decimal, Decimal]:
    """How far ``fill`` moves the bot's position (base units, > 0) and its fee in quote:
    :func:`tradebus.common.positions.position_change`, a fee in another asset (BNB)
    counting as 0. A spot buy whose fee the venue takes in the base asset (Backpack)
    adds ``qty - fee``, so a take-profit sells what the account received."""
    qty, fee = position_change(fill.side, fill.qty, fill.price, fill.fee, fill.fee_asset, market)
    return qty, ZERO if fee is None else fee


def apply_fill(position: Position, fill: OrderFilled, market: Market) -> None:
    """Apply ``fill`` to ``position`` as the venue charged it (:func:`booked_change`)."""
    position.apply_fill(fill.side, fill.qty, fill.price, fill.fee, fill.fee_asset, market)


FLATTEN_LEG = "f"
"""The leg prefix of a force exit's closing orders (``f1``, ``f2``...)."""


def is_close(order: TrackedOrder) -> bool:
    """Whether ``order`` is a closing order of a force exit (leg ``f<n>``)."""
    return order.leg[:1] == FLATTEN_LEG and order.leg[1:].isdigit()


def cancel_all_but_closes(ctx: BotContext, state: BotState, ts: int) -> list[Intent]:
    """The cancels a force exit sends: every open order of the bot but its own closes
    (each once, :meth:`OrderTracker.cancel`)."""
    orders = state.orders
    return orders.cancel_all(ctx, [o for o in orders.open_orders() if not is_close(o)], ts)


def place_close(
    ctx: BotContext,
    state: BotState,
    cycle: int,
    side: Side,
    qty: Decimal,
    ts: int,
    *,
    symbol: str | None = None,
    clamp_to_free: bool = False,
    reduce_only: bool = False,
) -> PlaceOrder:
    """A force exit's closing order: a GTC market order (no limit price) of ``qty`` (base
    units) on ``symbol`` (default: the bot's market), leg ``f<n>`` (``n`` counts the bot's
    closes, :attr:`BotState.flattens`), id ``<bot>:<run>.<cycle>:f<n>``, caused by the
    market event at ``ts`` (ns). ``clamp_to_free`` for a spot sell (sell what the account
    holds, seed 001), ``reduce_only`` on a perpetual market (never opens a position).
    Source: docs/strategies.md, "Force exit"."""
    state.flattens += 1
    return state.orders.place(
        ctx,
        cycle,
        f"{FLATTEN_LEG}{state.flattens}",
        side,
        None,
        qty,
        ts,
        ts,
        symbol=symbol,
        order_type="market",
        clamp_to_free=clamp_to_free,
        reduce_only=reduce_only,
    )


def flatten_long(
    ctx: BotContext, state: BotState, qty: Decimal, cycle: int, ts: int
) -> list[Intent] | None:
    """One step of the force exit of a long spot position of ``qty`` base units (a ladder's,
    a grid's): the cancels of every open order but the closes; once none is open, a
    market sell of ``floor_step(qty)`` (:func:`place_close`, clamped to the free base
    balance, seed 001) in ``cycle``, caused by the market event at ``ts`` (ns). None when
    the exit is done (nothing open, nothing to sell): the caller then stops.
    Source: docs/strategies.md, "Force exit"."""
    out = cancel_all_but_closes(ctx, state, ts)
    if state.orders.open_orders():
        return out
    sellable = floor_to(qty, ctx.market.step_size)
    if sellable > 0:
        return [*out, place_close(ctx, state, cycle, "sell", sellable, ts, clamp_to_free=True)]
    return None


class PricedState(Protocol):
    """A state with a reference price ``p``: the last trade price, or the quote mid until then."""

    last_price: Decimal | None
    has_trade: bool
    last_ts: int


def note_trade(state: PricedState, tick: TradeTick) -> None:
    """A trade sets ``p`` and moves market time (``ts_recv``)."""
    state.last_price, state.has_trade, state.last_ts = tick.price, True, tick.ts_recv


def note_quote(state: PricedState, tick: QuoteTick) -> bool:
    """A quote moves market time; it sets ``p`` to its mid (and returns True) until a trade."""
    state.last_ts = tick.ts_recv
    if state.has_trade:
        return False
    state.last_price = tick.mid
    return True


class Wake(msgspec.Struct, frozen=True, kw_only=True):
    """The ticks that can make a parked bot act (see :meth:`Strategy.wake`).

    ``trade_at_or_above`` / ``trade_at_or_below``: a trade priced at or
    beyond it (quote asset); ``at_ns``: any tick with ``ts_recv`` at or after
    it (market time, ns). None: no tick wakes the bot by that test; a
    ``Wake()`` with all three None is woken by order events only.
    """

    trade_at_or_above: Decimal | None = None
    trade_at_or_below: Decimal | None = None
    at_ns: int | None = None


class Strategy(Protocol):
    """The interface the host drives. Every method returns the intents to publish.

    Time is market time: the ``ts_recv`` of the ticks passed in. A core reads
    no clock and does no I/O. A core commits new capital (a new cycle, an
    entry, a volume buy) only in :meth:`on_quote`/:meth:`on_trade`; in answer
    to order events it only manages what is already exposed (a take-profit, a
    cancel). A paused bot gets no ticks, so it opens nothing new.

    ``inputs`` names what the core needs beyond ticks and its order events;
    a driver calls :meth:`on_balances` only on cores whose ``inputs`` hold
    :attr:`BotInput.BALANCES`, and :meth:`own_volume`/:meth:`on_group_volume`
    only on those holding :attr:`BotInput.GROUP_VOLUME`.
    """

    ctx: BotContext
    inputs: ClassVar[frozenset[BotInput]]

    @property
    def state(self) -> BotState:
        """The core's whole memory (its ``phase`` and ``orders`` readable by any driver)."""
        ...

    def on_quote(self, tick: QuoteTick) -> list[Intent]:
        """A new best bid/ask of the bot's market."""
        ...

    def on_trade(self, tick: TradeTick) -> list[Intent]:
        """A public trade of the bot's market."""
        ...

    def on_order_event(self, event: OrderEvent) -> list[Intent]:
        """An event about one of the bot's orders."""
        ...

    def wake(self) -> Wake | None:
        """Which ticks can make the bot act now; None: every tick (the safe answer).

        A core returns a :class:`Wake` only if every tick outside it would
        make ``on_trade``/``on_quote`` return no intents and change nothing
        but what :meth:`note_tick` changes. The host then skips such ticks
        and, before the bot's next call, applies only the last trade and the
        last quote it skipped (:meth:`note_tick`), so every output is the
        same as if the bot had seen every tick. Asked after every call.
        """
        ...

    def note_tick(self, tick: QuoteTick | TradeTick) -> None:
        """Record a tick that cannot make the bot act: its price and market time only."""
        ...

    def on_stop(self) -> list[Intent]:
        """The bot is being stopped: return the cancels its config asks for."""
        ...

    def flatten(self) -> list[Intent]:
        """Force exit: close the position at market and stop (docs/strategies.md, "Force exit").

        The phase becomes ``flattening``: every open order is cancelled; once
        none is open, the position is closed by market orders (:func:`place_close`);
        once those are done and nothing is left to close, the phase is
        ``stopped`` (at once when there is nothing to cancel or close). No new
        capital is committed meanwhile, whatever ticks arrive.
        """
        ...

    def on_balances(self, balances: AccountBalances) -> list[Intent]:
        """The venue balances of the bot's account (input :attr:`BotInput.BALANCES`)."""
        ...

    def own_volume(self) -> Decimal:
        """The bot's filled buy notional, quote asset (input :attr:`BotInput.GROUP_VOLUME`)."""
        ...

    def on_group_volume(
        self,
        total: Decimal,
        by_user: dict[str, Decimal],
        turns: Mapping[str, bool] | None = None,
    ) -> list[Intent]:
        """The group's filled buy notional (quote), in total and per user, and its users in
        play with whether each holds a turn (``turns``, None: not reported)
        (input :attr:`BotInput.GROUP_VOLUME`)."""
        ...

    def group_turn(self) -> bool | None:
        """None if the bot is out of its group's play, else whether it holds a turn
        (input :attr:`BotInput.GROUP_VOLUME`)."""
        ...

    def on_restart(self) -> list[Intent]:
        """A stopped bot is started again with its state kept: go on from that state."""
        ...

    def position_check(self) -> PositionCheck | None:
        """The bot's position check settings when it is on, else None."""
        ...

    def tracked_position(self) -> Position | None:
        """The position a position check or a set average acts on; None if the core has
        none that can be checked."""
        ...

    def check_position(self, held: Decimal) -> PositionCheckResult | None:
        """Compare the position with ``held`` (base units the account holds for the bot)
        and act as the settings say; None when the check is off."""
        ...

    def set_average(self, price: Decimal) -> PositionCheckResult:
        """Set the average entry price of the position by hand (quote per base).

        Raises
        ------
        ValueError
            If the core has no such position, it is flat, or ``price`` is not > 0.
        """
        ...

    def status(self) -> BotStatus:
        """The bot's status block (``phase`` set; the host fills in ``state``)."""
        ...

    def snapshot(self) -> bytes:
        """The bot's whole state as bytes (JSON)."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the state with a :meth:`snapshot`."""
        ...

    def resend(self) -> list[Intent]:
        """Intents emitted but never answered, to send again after a resume."""
        ...


P = TypeVar("P")
"""A core's parameter struct (frozen msgspec struct, e.g. ``LadderParams``)."""
S = TypeVar("S", bound=BotState)
"""A core's state struct (a :class:`BotState`, e.g. ``LadderState``)."""


class BotBase(ABC, Generic[P, S]):
    """Shared plumbing of the cores: snapshot, restore, resend, and the no-op inputs.

    A subclass is ``BotBase[ItsParams, ItsState]``, sets ``state_type`` (its
    :class:`BotState` subclass) and keeps all of its memory in ``self.state``;
    caches derived from the state are rebuilt in :meth:`_on_restore`. It sets
    ``inputs`` to the :class:`BotInput` s it takes and overrides their methods
    (:meth:`on_balances`, :meth:`own_volume` and :meth:`on_group_volume`);
    the defaults here take nothing and emit nothing.
    """

    state_type: ClassVar[type[BotState]]
    inputs: ClassVar[frozenset[BotInput]] = frozenset()
    ctx: BotContext
    params: P
    state: S

    def __init__(self, ctx: BotContext, params: P, state: S | None = None) -> None:
        """Bind the bot's identity and parameters; ``state`` defaults to a new ``state_type()``."""
        self.ctx = ctx
        self.params = params
        self.state = state if state is not None else cast(S, self.state_type())

    # ----------------------------------------------------- what a core does
    @abstractmethod
    def on_quote(self, tick: QuoteTick) -> list[Intent]:
        """See :meth:`Strategy.on_quote`."""

    @abstractmethod
    def on_trade(self, tick: TradeTick) -> list[Intent]:
        """See :meth:`Strategy.on_trade`."""

    @abstractmethod
    def on_order_event(self, event: OrderEvent) -> list[Intent]:
        """See :meth:`Strategy.on_order_event`."""

    @abstractmethod
    def on_stop(self) -> list[Intent]:
        """See :meth:`Strategy.on_stop`."""

    @abstractmethod
    def flatten(self) -> list[Intent]:
        """See :meth:`Strategy.flatten`."""

    @abstractmethod
    def status(self) -> BotStatus:
        """See :meth:`Strategy.status`."""

    # ----------------------------------------------------------- plumbing
    def snapshot(self) -> bytes:
        """The whole state, JSON-encoded."""
        return msgspec.json.encode(self.state)

    def restore(self, data: bytes) -> None:
        """Replace the state with a :meth:`snapshot`.

        Raises
        ------
        msgspec.DecodeError
            If ``data`` is not a snapshot of this strategy.
        """
        self.state = cast(S, msgspec.json.decode(data, type=self.state_type))
        self._on_restore()

    def _on_restore(self) -> None:
        """Rebuild caches after :meth:`restore` (default: nothing)."""

    def resend(self) -> list[Intent]:
        """See :meth:`OrderTracker.resend`."""
        return self.state.orders.resend(self.ctx)

    # ------------------------------------------------------------- inputs
    def on_balances(self, balances: AccountBalances) -> list[Intent]:
        """Ignore balances (cores with :attr:`BotInput.BALANCES` in ``inputs`` override this)."""
        return []

    def own_volume(self) -> Decimal:
        """No volume (cores with :attr:`BotInput.GROUP_VOLUME` in ``inputs`` override this)."""
        return ZERO

    def on_group_volume(
        self,
        total: Decimal,
        by_user: dict[str, Decimal],
        turns: Mapping[str, bool] | None = None,
    ) -> list[Intent]:
        """Ignore group volume (cores with :attr:`BotInput.GROUP_VOLUME` override this)."""
        return []

    def group_turn(self) -> bool | None:
        """Out of any group's play (cores with :attr:`BotInput.GROUP_VOLUME` override this)."""
        return None

    # -------------------------------------------------------------- ticks
    def wake(self) -> Wake | None:
        """Every tick (cores that can say which ticks matter override this)."""
        return None

    def note_tick(self, tick: QuoteTick | TradeTick) -> None:
        """Move the reference price and market time (:func:`note_trade`, :func:`note_quote`).

        Only for a state with a reference price (:class:`PricedState`); a core
        whose state has none keeps every tick (its :meth:`wake` is None).
        """
        state = cast(PricedState, self.state)
        if isinstance(tick, TradeTick):
            note_trade(state, tick)
        else:
            note_quote(state, tick)

    def on_restart(self) -> list[Intent]:
        """Leave ``stopped``: ``waiting`` for the next price (override for more)."""
        if self.state.phase == "stopped":
            self.state.phase = "waiting"
        return []

    # ----------------------------------------------------- position check
    def position_check(self) -> PositionCheck | None:
        """None: the core has no position check (cores that have one override this)."""
        return None

    def tracked_position(self) -> Position | None:
        """None: no position to check or correct (cores that have one override this)."""
        return None

    def _reference_price(self) -> Decimal | None:
        """The price an adoption is valued at (default: none)."""
        return None

    def _position_moved(self) -> None:
        """Drop caches derived from the position after a correction (default: nothing)."""

    def _ref_prefix(self) -> str:
        return f"{self.ctx.bot}:{self.ctx.run}:position:"

    def check_position(self, held: Decimal) -> PositionCheckResult | None:
        """One position check (:func:`~tradebus.strategies.position_check.run_check`):
        ``held`` is what the account holds for the bot, base units; None when the
        check is off or the core has no position to check."""
        settings, position = self.position_check(), self.tracked_position()
        if settings is None or position is None:
            return None
        memory = self.state.position_check
        result = run_check(
            settings, memory, position, held, self._reference_price(), self._ref_prefix()
        )
        if result.qty:
            self._position_moved()
        return result

    def set_average(self, price: Decimal) -> PositionCheckResult:
        """Set the position's average entry price by hand
        (:func:`~tradebus.strategies.position_check.set_average`).

        Raises
        ------
        ValueError
            If the core has no position to correct, it is flat, or ``price`` is not > 0.
        """
        position = self.tracked_position()
        if position is None:
            raise ValueError(f"a {self.ctx.strategy} bot has no average price to set")
        result = set_average(self.state.position_check, position, price, self._ref_prefix())
        self._position_moved()
        return result
