"""Every message that crosses the bus, in one place.

Conventions (DESIGN.md, "Messages"):

* one frozen :class:`msgspec.Struct` per message, keyword-only, tagged with
  its class name in the ``"type"`` field, so a payload on any subject says
  what it is (``{"type":"PlaceOrder",...}``);
* money (prices, quantities, fees, balances) is :class:`decimal.Decimal`,
  a JSON string on the wire, ``NUMERIC`` in Postgres; never a float;
* times are integer nanoseconds since the Unix epoch: ``ts_event`` is when
  the venue says it happened, ``ts_recv`` when we received it, ``ts_init``
  when this object was created;
* commands are imperative (:class:`PlaceOrder`), events past tense
  (:class:`OrderFilled`); every command has an id and every event names the
  command it answers;
* schema evolution: new fields get defaults.

One typed decoder per kind of subject is built once in :mod:`tradebus.common.codec`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import msgspec

from tradebus.common.ids import AccountId, IntentId, UserId
from tradebus.common.markets import Market

Side = Literal["buy", "sell"]
"""Order or aggressor side."""

OrderType = Literal["limit", "market"]
TimeInForce = Literal["gtc", "ioc"]
Liquidity = Literal["maker", "taker"]
CancelScope = Literal["source", "account"]


class Message(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of every bus message: frozen, keyword-only, tagged by class name."""


# --------------------------------------------------------------------------
# Market data: md.quote.<venue>.<symbol> / md.trade.<venue>.<symbol> (core NATS)
# --------------------------------------------------------------------------


class QuoteTick(Message, frozen=True, kw_only=True):
    """Best bid and ask of one market (Binance ``bookTicker``).

    ``symbol`` is the venue's native market id (``BTCUSDT``);
    ``unified_symbol`` is the ccxt-style name (``BTC/USDT``). Sizes are in the
    base asset, prices in the quote asset. ``update_id`` is the venue's book
    update id where it has one (Binance ``u``), used to de-duplicate.
    """

    venue: str
    symbol: str
    unified_symbol: str
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    ts_event: int
    ts_recv: int
    ts_init: int
    update_id: int | None = None

    @property
    def mid(self) -> Decimal:
        """Mid price ``(bid + ask) / 2`` in the quote asset."""
        return (self.bid + self.ask) / 2


class TradeTick(Message, frozen=True, kw_only=True):
    """One public trade (Binance ``trade``).

    ``aggressor`` is the taker's side: Binance ``m == true`` (buyer is maker)
    means the aggressor sold. ``trade_id`` is the venue's trade id as text.
    """

    venue: str
    symbol: str
    unified_symbol: str
    price: Decimal
    size: Decimal
    aggressor: Side | None
    trade_id: str
    ts_event: int
    ts_recv: int
    ts_init: int


MarketEvent = QuoteTick | TradeTick


class FeedStatus(Message, frozen=True, kw_only=True):
    """State of one venue's market-data feed (``feed.status.<venue>``, core NATS).

    Published by marketdata every few seconds and at once when ``connected``
    or a symbol's staleness changes. ``connected``: the venue's WebSocket is
    open. A symbol is stale when its stream sent nothing for the configured
    ``TRADEBUS_STALE_SECONDS``; its quotes then come from REST polling until
    the stream delivers again. ``stale`` is true while any symbol is stale.
    ``last_message_age`` gives, per native symbol, the seconds since its last
    stream message (since the feed started if none yet). ``reconnects``
    counts re-established connections since the process started, and
    ``last_gap`` marks the last one: ``[lost_ns, back_ns]`` (wall-clock ns),
    the window in which the stream delivered nothing.
    """

    venue: str
    connected: bool
    stale: bool
    stale_symbols: list[str] = []
    last_message_age: dict[str, float] = {}
    reconnects: int = 0
    last_gap: list[int] = []
    ts_event: int


# --------------------------------------------------------------------------
# Intents: intent.<user>.<source> (JetStream INTENTS)
# --------------------------------------------------------------------------


class PlaceOrder(Message, frozen=True, kw_only=True):
    """Place one order on ``account``.

    ``intent_id`` is unique forever and deterministic for strategies
    (``<bot>:<cycle>:<leg>``); execution turns one intent into at most one
    venue order. ``price`` is required for ``limit`` orders and is the
    worst acceptable price for ``market`` orders (``None`` = no limit).
    ``trigger_ts`` is the ``ts_recv`` of the market event that caused the
    intent; the paper venue makes the order live only after that event
    (STRATEGIES.md, paper fill model rule 1). Manual orders leave it empty.
    ``clamp_to_free`` (sells on spot markets): sell at most the account's
    free base balance, floored to the step size, so a bot whose position was
    partly sold by hand sells what is really there (seed 001's real-position
    check, STRATEGIES.md §1); :class:`OrderAccepted` carries the quantity
    actually placed. ``reduce_only`` (perpetual markets): the order may only
    shrink the position, never open or grow one; execution refuses one that
    would (``invalid_order``) and the venue is told (ccxt ``reduceOnly``).
    """

    intent_id: IntentId
    account: AccountId
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal | None = None
    order_type: OrderType = "limit"
    time_in_force: TimeInForce = "gtc"
    ts_init: int = 0
    trigger_ts: int | None = None
    clamp_to_free: bool = False
    reduce_only: bool = False


class CancelOrder(Message, frozen=True, kw_only=True):
    """Cancel the order that intent ``target_intent_id`` placed."""

    intent_id: IntentId
    account: AccountId
    target_intent_id: IntentId
    ts_init: int = 0


class CancelAll(Message, frozen=True, kw_only=True):
    """Cancel open orders on ``account``, optionally of one ``symbol``.

    ``scope="source"`` cancels only orders placed from the same subject source
    (the bot, or ``manual``); ``scope="account"`` cancels every open order of
    the account.
    """

    intent_id: IntentId
    account: AccountId
    symbol: str | None = None
    scope: CancelScope = "source"
    ts_init: int = 0


Intent = PlaceOrder | CancelOrder | CancelAll


# --------------------------------------------------------------------------
# Order events: exec.evt.<user>.<source> (JetStream EXEC)
# --------------------------------------------------------------------------


class OrderAccepted(Message, frozen=True, kw_only=True):
    """The venue accepted the order placed by ``intent_id``."""

    intent_id: IntentId
    user: UserId
    source: str
    account: AccountId
    symbol: str
    side: Side
    order_type: OrderType
    price: Decimal | None
    qty: Decimal
    client_order_id: str
    venue_order_id: str
    ts_event: int


class OrderRejected(Message, frozen=True, kw_only=True):
    """An intent was refused: by decoding, ownership, risk or the venue.

    ``reason`` is a machine-readable code (``decode_error``,
    ``unknown_account``, ``not_owner``, ``invalid_intent``,
    ``insufficient_balance``, ``unknown_symbol``, ``risk_max_notional``, ...);
    ``message`` says the same for people. ``intent_id`` is empty when the
    payload could not be decoded.
    """

    intent_id: IntentId | None
    user: UserId
    source: str
    account: AccountId | None
    reason: str
    message: str
    ts_event: int


class OrderFilled(Message, frozen=True, kw_only=True):
    """A fill of the order placed by ``intent_id``.

    ``trade_id`` is the venue's fill id; ``(venue, account, trade_id)`` is unique.
    ``fee`` is charged in ``fee_asset``. ``cum_qty``/``leaves_qty`` give the
    order's filled and remaining quantity after this fill.
    """

    intent_id: IntentId
    user: UserId
    source: str
    account: AccountId
    symbol: str
    side: Side
    trade_id: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity
    cum_qty: Decimal
    leaves_qty: Decimal
    ts_event: int


class OrderCanceled(Message, frozen=True, kw_only=True):
    """The order placed by ``intent_id`` is canceled (``filled_qty`` was filled)."""

    intent_id: IntentId
    user: UserId
    source: str
    account: AccountId
    symbol: str
    filled_qty: Decimal
    cancel_intent_id: IntentId | None = None
    reason: str = "canceled"
    ts_event: int


class CancelRejected(Message, frozen=True, kw_only=True):
    """The cancel ``intent_id`` could not cancel ``target_intent_id``."""

    intent_id: IntentId
    user: UserId
    source: str
    target_intent_id: IntentId
    reason: str
    message: str
    ts_event: int


OrderEvent = OrderAccepted | OrderRejected | OrderFilled | OrderCanceled | CancelRejected


class AccountHalted(Message, frozen=True, kw_only=True):
    """An account stopped trading: its venue refuses its configuration.

    Published on ``exec.alert.<user>.<account>`` (stream ``EXEC``).

    ``reason`` is the machine-readable code (``authentication``,
    ``permission_denied``, ``account_suspended``, ...), ``message`` says what
    to do for people. Every intent for the account is refused with
    ``account_halted`` until execution restarts with a working key; the other
    accounts keep trading.
    """

    user: UserId
    account: AccountId
    venue: str
    reason: str
    message: str
    ts_event: int


# --------------------------------------------------------------------------
# Queries: exec.query.<verb> (request/reply)
# --------------------------------------------------------------------------


class MarketsQuery(Message, frozen=True, kw_only=True):
    """Ask execution for the markets it trades by: one market-data venue's, or all when
    ``venue`` is None (``exec.query.markets``)."""

    venue: str | None = None


class MarketsReply(Message, frozen=True, kw_only=True):
    """Market-data venue -> its markets: what a live venue answered (ccxt
    ``load_markets``, refreshed by execution), the markets file for the others."""

    venues: dict[str, list[Market]]
    ts_event: int


class BalancesQuery(Message, frozen=True, kw_only=True):
    """Ask execution for venue balances: one account, or all when ``None``.

    ``reconcile``: the reconciler asks, to compare them with the ledger. An account whose
    reconciliation is off (accounts file ``reconciliation.enabled: false``) is then
    answered without asking its venue: no balances, ``reconciliation`` ``off``.
    ``bot_positions``: also each source's ledger position per base asset
    (:attr:`AccountBalances.bot_positions`; the strategy host's position checks).
    """

    account: AccountId | None = None
    reconcile: bool = False
    bot_positions: bool = False


class AssetBalance(msgspec.Struct, frozen=True, kw_only=True):
    """One asset of one account: ``total = free + locked``, in that asset."""

    asset: str
    total: Decimal
    free: Decimal
    locked: Decimal


class PositionRisk(msgspec.Struct, frozen=True, kw_only=True):
    """One open perpetual position as the venue sees it (prices in ``settle`` per base):
    ``qty`` signed (short < 0, base units), ``entry_price``, ``mark_price``, the venue's
    estimated ``liquidation_price`` (None where it gives none) and ``maintenance_margin``
    (``|qty| * mark * mmf``, in ``settle``; None where the venue gives no fraction)."""

    symbol: str
    settle: str
    qty: Decimal
    entry_price: Decimal | None = None
    mark_price: Decimal | None = None
    liquidation_price: Decimal | None = None
    maintenance_margin: Decimal | None = None


ReconMode = Literal["detailed", "short", "off"]
"""How an account is reconciled (:class:`AccountBalances`): every asset in the report,
only the drifting ones, or not at all."""


class BotPosition(msgspec.Struct, frozen=True, kw_only=True):
    """The ledger position of one order source (a bot id, or ``manual``) of an account in
    one base ``asset``: its fills (base received less a base fee on a buy, base given up
    plus a base fee on a sell) plus its position corrections (``bot_adjustments``), in
    base units."""

    source: str
    asset: str
    qty: Decimal


class AccountBalances(msgspec.Struct, frozen=True, kw_only=True):
    """Venue balances of one account.

    ``ledger_watermark`` is the id of the last journal entry that this venue
    snapshot already reflects: the reconciler leaves out fill entries newer
    than it, so fills in flight are not mistaken for drift. An account that
    trades perpetuals also has its open ``positions`` and ``margin_ratio``:
    the positions' maintenance margin over the account's equity (settle
    balance plus unrealized P&L at the mark); at 1 the venue liquidates.
    ``bot_positions``: every order source's ledger position per base asset
    at the same watermark, when the query asked for them.
    """

    account: AccountId
    venue: str
    balances: list[AssetBalance]
    ledger_watermark: int
    positions: list[PositionRisk] = []
    margin_ratio: Decimal | None = None
    reconciliation: ReconMode = "detailed"
    """How the account wants to be reconciled (its accounts-file ``reconciliation``):
    ``detailed`` (the report lists every asset compared), ``short`` (only drifting
    assets) or ``off`` (not reconciled)."""
    bot_positions: list[BotPosition] = []


class BalancesReply(Message, frozen=True, kw_only=True):
    """Answer to :class:`BalancesQuery`."""

    accounts: list[AccountBalances]
    ts_event: int


class ErrorReply(Message, frozen=True, kw_only=True):
    """Answer to a request that could not be served (``error`` is a code)."""

    error: str
    message: str


# --------------------------------------------------------------------------
# Reconciliation: recon.report.<account> (JetStream RECON)
# --------------------------------------------------------------------------


class ReconRow(msgspec.Struct, frozen=True, kw_only=True):
    """One asset of a reconciliation: ``drift = venue_total - ledger_total``."""

    asset: str
    venue_total: Decimal
    ledger_total: Decimal
    drift: Decimal
    tolerance: Decimal
    ok: bool


DriftPolicy = Literal["alert", "adjust", "halt"]
"""What the reconciler does about drift, per account (seed 001: "user sold by hand"):
``alert`` only, ``adjust`` the ledger (adjustment entries valued at average cost), or
``halt`` (pause the account's bots)."""


class ReconReport(Message, frozen=True, kw_only=True):
    """Result of reconciling one account: ``ok`` when every row is within tolerance.

    ``action`` is what the account's drift policy did about a drift
    (``none`` when ok; ``alert``, ``adjusted``, ``halted``, or ``failed:<why>``).
    ``rows`` holds every asset compared (a ``detailed`` report, the default) or only
    the drifting ones (``detailed`` False: the account's ``reconciliation.detailed_report``).
    """

    account: str
    status: Literal["ok", "drift"]
    rows: list[ReconRow]
    ledger_watermark: int
    ts_event: int
    action: str = "none"
    detailed: bool = True


class AdjustRow(msgspec.Struct, frozen=True, kw_only=True):
    """One asset to adjust by ``amount`` (signed, in the asset); ``price`` is the
    valuation price execution wrote it at (its average cost; None if none)."""

    asset: str
    amount: Decimal
    price: Decimal | None = None


class AdjustRequest(Message, frozen=True, kw_only=True):
    """Ask execution to write adjustment entries (``exec.adjust``); ``ref`` makes it
    idempotent (``recon:<report id>``): a second request with the same ref writes nothing."""

    account: str
    ref: str
    rows: list[AdjustRow]


class AdjustReply(Message, frozen=True, kw_only=True):
    """The entries written (empty if ``ref`` had been applied before)."""

    account: str
    rows: list[AdjustRow]


BotAdjustmentKind = Literal["adopt", "reduce", "average"]
"""A correction of one bot's position: ``adopt`` (a position check took what the account
holds beyond the bot's position, at the current price), ``reduce`` (it wrote off what the
account no longer holds, at average cost), ``average`` (the average price set by hand)."""


class BotAdjustment(Message, frozen=True, kw_only=True):
    """Ask execution to journal a correction of one bot's position (``exec.bot_adjust``,
    from the strategy host running the bot; table ``bot_adjustments``).

    ``qty``: how far the bot's position moved (signed, base units of ``asset``, 0 for
    ``average``); ``price``: the valuation (quote per base): the current price of an
    adoption, the average cost of a write-off, the new average set by hand;
    ``old_average``/``new_average`` around the change; ``held`` what the position check
    found the account holding for the bot (None for ``average``); ``actor`` who asked
    (``strategy`` for a check, the person for a set average). ``ref``
    (``<bot>:<run>:position:<n>``) makes it idempotent. ``ts_event``: when the bot made
    the correction (ns)."""

    account: AccountId
    user: UserId
    bot: str
    symbol: str
    asset: str
    kind: BotAdjustmentKind
    qty: Decimal
    price: Decimal | None
    old_average: Decimal | None = None
    new_average: Decimal | None = None
    held: Decimal | None = None
    actor: str = ""
    ref: str
    ts_event: int


class BotAdjustReply(Message, frozen=True, kw_only=True):
    """Answer to :class:`BotAdjustment`: ``written`` False if ``ref`` was journaled before."""

    ref: str
    written: bool


class PaperAdjust(Message, frozen=True, kw_only=True):
    """Move a paper account's venue balance by hand, without the ledger knowing
    (``ctl.paper.adjust``): what a user selling on the exchange's website does. For
    demos and drift tests; live venues ignore it. ``actor``: who asked (audit log)."""

    account: str
    asset: str
    delta: Decimal
    actor: str = ""


RECON_REPLY_REPORTS = 500
"""Reports a :class:`ReconRunReply` carries in full (about 200 bytes each, under 1 MiB)."""


class ReconRunRequest(Message, frozen=True, kw_only=True):
    """Ask the reconciler to run now (``ctl.recon.run``); ``actor``: who asked (audit log)."""

    account: AccountId | None = None
    actor: str = ""


class ReconRunReply(Message, frozen=True, kw_only=True):
    """What a run started by :class:`ReconRunRequest` found.

    ``accounts`` reconciled, of which ``drifting`` are not ok; ``reports``
    holds every report when the run covered at most ``RECON_REPLY_REPORTS``
    accounts, else only the drifting ones (the rest are on
    ``recon.report.<account>``): a reply must fit in one NATS message.
    """

    reports: list[ReconReport]
    accounts: int = 0
    drifting: int = 0
    off: list[AccountId] = []
    """Accounts not reconciled because their reconciliation is off (accounts file)."""


# --------------------------------------------------------------------------
# Bot control: ctl.bots.<verb> (request/reply)
# --------------------------------------------------------------------------


class BotStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The status block of one bot (STRATEGIES.md §1-§4, the seeds' displays).

    ``state`` is the bot's lifecycle as the host runs it (``running``,
    ``paused``, ``stopped``, ``failed``); ``phase`` the strategy's own step
    (ladder: ``waiting``, ``buying``, ``restarting``, ``closing``, ...).
    Quote-asset amounts: ``filled_quote``, ``position_value``,
    ``unrealized_pnl``, ``realized_pnl``; base-asset: ``filled_qty``,
    ``position``. Percentages are in percent. ``details`` holds what only one
    strategy has (martingale worst-case capital, spread legs, volume target),
    as JSON scalars (money as decimal strings). ``host`` is the strategy host
    replica running the bot. ``price_ts`` is the market time (ns, the venue's
    ``ts_event``; the recorded time in a replay) of the latest tick of the
    bot's markets when the block was built, None before the first: the time
    to plot ``last_price`` at, beside fills' ``ts_event``.

    Position check (docs/strategies.md "Position check"): ``position_check`` the
    last finding or correction for people (None when off or in line),
    ``position_difference`` the last check's ``held - position`` (base units),
    ``position_mismatch`` True while it is above the threshold uncorrected;
    ``average_missing`` True when a position is held at an average price of 0
    (seed 001: set it with ``tradebus bots set-average``).
    to plot ``last_price`` at, beside fills' ``ts_event``. ``dry_run``: the bot's
    ``execute_trades`` is false: its orders go to its own paper venue in the host,
    never to its account (``details`` then counts ``dry_run_intents`` and
    ``dry_run_fills``; stream ``DRYRUN`` keeps them, :class:`DryRunRecord`).
    """

    bot: str
    user: str
    account: str
    strategy: str
    venue: str
    symbol: str
    state: str = "running"
    phase: str = ""
    run: int = 1
    cycle: int = 0
    orders_placed: int = 0
    orders_filled: int = 0
    open_orders: int = 0
    filled_quote: Decimal = Decimal(0)
    filled_qty: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    position: Decimal = Decimal(0)
    last_price: Decimal | None = None
    position_value: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)
    unrealized_pct: Decimal = Decimal(0)
    take_profit_progress_pct: Decimal = Decimal(0)
    cycles_completed: int = 0
    realized_pnl: Decimal = Decimal(0)
    error: str | None = None
    host: str | None = None
    price_ts: int | None = None
    details: dict[str, str | int | bool | None] = {}
    position_check: str | None = None
    position_difference: Decimal | None = None
    position_mismatch: bool = False
    average_missing: bool = False
    dry_run: bool = False


class BotsQuery(Message, frozen=True, kw_only=True):
    """``ctl.bots.status`` / ``ctl.bots.list`` request: one bot, or every bot when empty.

    Every strategy host answers a query for all bots with its own bots (gather
    the replies: ``nats req --replies 0``); a query for one bot is answered
    by the host that runs it only.
    """

    bot: str | None = None


class BotsReply(Message, frozen=True, kw_only=True):
    """Statuses of the bots a host runs; ``host`` is the replica that answered."""

    bots: list[BotStatus]
    host: str = ""


StartMode = Literal["resume", "fresh"]


class BotSetAverage(Message, frozen=True, kw_only=True):
    """``ctl.bots.set-average``: set one bot's average entry price by hand (seed 001's
    ``setManualAveragePrice``), in quote per base (> 0). The host running the bot sets it
    and has execution journal the correction (:class:`BotAdjustment`, kind ``average``);
    answered with :class:`BotCommandReply`. ``actor``: who asked (audit log)."""

    bot: str
    price: Decimal
    actor: str = ""


class BotCommand(Message, frozen=True, kw_only=True):
    """``ctl.bots.{pause,resume,stop,start,flatten}`` request for one bot.

    ``start`` takes ``mode``: ``resume`` (restore the last snapshot, then the
    order events after it) or ``fresh`` (cancel the bot's open orders and
    forget its state). ``stop`` cancels the bot's orders when its
    ``cancel_on_exit`` says so; ``pause`` keeps them; ``flatten`` cancels them,
    closes the bot's position at market and stops it (docs/strategies.md). ``actor`` names who asked
    (``alice`` through the gateway, ``cli:<login>`` from the CLI; empty from a
    bare ``nats req``): the host writes it to the audit log.
    """

    bot: str
    mode: StartMode = "resume"
    actor: str = ""


class BotCommandReply(Message, frozen=True, kw_only=True):
    """Answer to :class:`BotCommand`: the bot's status after the command."""

    ok: bool
    message: str
    status: BotStatus | None = None
    host: str = ""


class VolumeReport(msgspec.Struct, frozen=True, kw_only=True):
    """A value of KV ``group_volume`` (key ``<group>.<bot>``): one volume bot's filled buy
    notional (quote asset) and its owner, written by the host running the bot; the
    hosts sum a group's values toward its ``target_volume`` (STRATEGIES.md §4), and
    ``tradebus groups status`` reports them. ``turn``: None if the bot is out of play
    (stopped, target reached), else whether it holds one of the group's turns
    (``max_concurrent_users``; ``Strategy.group_turn``)."""

    user: str
    volume: Decimal
    turn: bool | None = None


# --------------------------------------------------------------------------
# Kill switch: ctl.killswitch (request/reply to execution)
# --------------------------------------------------------------------------

KillSwitchAction = Literal["engage", "release", "status"]


class KillSwitchCommand(Message, frozen=True, kw_only=True):
    """Engage, release or show the kill switch of one ``account``, or of all (``None``).

    Engaging cancels every open order of the accounts it covers and refuses
    their new orders (``kill_switch``) until released; cancels still pass.
    A global switch and an account's own switch are independent: releasing
    one leaves the other engaged.
    """

    action: KillSwitchAction
    account: AccountId | None = None
    reason: str = ""
    actor: str = ""


class KillSwitchReply(Message, frozen=True, kw_only=True):
    """The kill switches after a command: ``global_reason`` if the global one is
    engaged, ``accounts`` (account -> reason) of the engaged account switches,
    and how many open orders the command canceled."""

    global_reason: str | None
    accounts: dict[AccountId, str]
    canceled: int = 0


# --------------------------------------------------------------------------
# Bot status changes: bot.status.<user>.<bot> (core NATS, strategy hosts -> anyone)
# --------------------------------------------------------------------------


class DryRunRecord(Message, frozen=True, kw_only=True):
    """One thing a dry-run bot (``execute_trades: false``) did, on ``dryrun.<user>.<bot>``
    (stream ``DRYRUN``): an ``intent`` it emitted (never sent to its account's venue)
    or an ``event`` its simulated venue answered (acceptance, fill, cancel, refusal),
    exactly one of the two. ``run`` is the bot's run number, ``seq`` counts the bot's
    records in that run from 1, ``ts_event`` is the market time (ns, ``ts_recv`` of the
    tick the bot had seen last) it happened at."""

    bot: str
    user: str
    account: str
    run: int
    seq: int
    ts_event: int
    intent: Intent | None = None
    event: OrderEvent | None = None


class BotStatusChanged(Message, frozen=True, kw_only=True):
    """A bot's status after something about it changed (its lifecycle, phase, orders,
    position or P&L), published by the host running it on ``bot.status.<user>.<bot>``;
    ``ts_event`` is when the host published it (ns). At most about one per bot per
    second while only prices move; every lifecycle change at once."""

    status: BotStatus
    ts_event: int


# --------------------------------------------------------------------------
# Accounts at run time: ctl.accounts.sync (request/reply to execution)
# --------------------------------------------------------------------------


class AccountsSync(Message, frozen=True, kw_only=True):
    """Ask execution to load, reload or unload accounts from the ledger's
    ``account_configs`` table (``ctl.accounts.sync``): ``account`` alone, or all of
    them when None. A deleted account is unloaded: its open orders are canceled and
    its new intents refused (``unknown_account``). ``actor``: who asked (audit log)."""

    account: AccountId | None = None
    actor: str = ""


class AccountsSyncReply(Message, frozen=True, kw_only=True):
    """What a sync did: accounts ``loaded`` (new or changed), ``unloaded``, and the
    ``failed`` ones with why (account -> message; the message never holds a key)."""

    loaded: list[AccountId] = []
    unloaded: list[AccountId] = []
    failed: dict[AccountId, str] = {}


# --------------------------------------------------------------------------
# Audit log: audit.<source> (JetStream AUDIT -> the gateway writes audit_log)
# --------------------------------------------------------------------------

AuditSource = Literal["gateway", "cli", "strategy", "execution", "reconciler"]


class AuditEvent(Message, frozen=True, kw_only=True):
    """One state-changing action, whoever made it (``audit.<source>``).

    ``event_id`` is unique (a UUID; the stream's ``Nats-Msg-Id`` and the
    ``audit_log`` row's key, so a republished event is written once);
    ``ts_event`` when it happened (ns); ``actor`` who did it (a user id, ``cli:<login>``,
    or a service); ``source`` the part of tradebus that did it; ``action`` a dotted
    verb (``bot.pause``, ``account.create``, ``killswitch.engage``); ``target`` what it
    acted on (``bot:alice-ladder``, ``account:alice-paper``, ``user:bob``);
    ``user`` the owner of the target (None for the whole system); ``before`` and
    ``after`` the target's values around the change (None where there is none);
    ``details`` anything else (a reason, a mode). Never a secret.
    """

    event_id: str
    ts_event: int
    actor: str
    source: AuditSource
    action: str
    target: str
    user: UserId | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    details: dict[str, Any] = {}
