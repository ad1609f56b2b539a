"""What execution does once each time it starts an account: the accounts file's ``at_start``.

Seed 000 ran two things when the bot started: ``cancelAllOrders`` (cancel the
open orders) and ``sellNonUsdcAssets`` / ``sellNonUsdcMinValue`` (sell every
non-USDC asset worth at least that much into USDC). In tradebus they are
settings of the account (:class:`~tradebus.engine.accounts.AtStart`), carried
out here, by execution, when it starts the account: at execution's start (an
account of the accounts file, or one added at run time, once its venue answers)
and when it loads an account added at run time. Why here and then:

* only execution holds the keys, and a sweep trades markets no bot trades;
* "start" is the account's: a bot's ``start`` happens many times a day (a
  ladder restarts after each take-profit), an account is started when
  execution (re)loads it, which is when the user means "start over";
* it can never sell or cancel what a running bot holds, whenever it runs:
  ``cancel_open_orders: unknown`` cancels only the orders the ledger does not
  know (placed outside tradebus), and a sweep sells at most the free balance
  less what the account's bots hold by the ledger (:func:`bot_holdings`). Only
  ``cancel_open_orders: all`` touches bots' orders, because the user asked for
  the whole account.

The arithmetic of a sweep is :func:`plan_sweep` (docs/strategies.md, "Sweep
leftover assets at start"). A sweep sells at market, through the engine like
any intent (vetted, an order row, fills journaled), from the account owner's
``manual`` source with intent id ``sweep:<account>:<asset>:<ns>``. Every asset
looked at is logged (sold, or left and why); every sale and every cancel at
start is in the audit log (``account.sweep``, ``account.cancel_at_start``,
actor ``execution``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from decimal import ROUND_DOWN, Decimal
from typing import Literal

import msgspec

from tradebus.common import subjects
from tradebus.common.clock import Clock
from tradebus.common.ids import AccountId, IntentId
from tradebus.common.markets import Market, MarketCatalog
from tradebus.common.messages import AssetBalance, PlaceOrder
from tradebus.common.money import ZERO
from tradebus.common.subjects import MANUAL_SOURCE
from tradebus.control.audit import AuditTrail
from tradebus.engine.accounts import AccountSpec, AtStart
from tradebus.engine.core import ExecutionEngine
from tradebus.engine.events import IntentContext
from tradebus.engine.intake import admit_intent
from tradebus.engine.orders import RetryLater
from tradebus.engine.venue import Venue, VenueRejected, VenueUnavailable
from tradebus.ledger.rows import BookedFill, OrderRow
from tradebus.ledger.store import Ledger

log = logging.getLogger(__name__)

ACTOR = "execution"
"""The actor of the audit events of what is done at start."""

SweepVerdict = Literal["sell", "no_market", "no_price", "held_by_bots", "below_minimum"]
"""What a sweep does with one asset: sells it, or leaves it and why."""


class SweepLine(msgspec.Struct, frozen=True, kw_only=True):
    """One asset of a sweep (:func:`plan_sweep`).

    ``free`` is the venue's free balance, ``bots_hold`` what the account's bots hold of
    it by the ledger, ``qty`` what is sold (base units, floored to the market's step;
    zero when left), ``price`` the venue's last price (quote per base), ``value``
    ``qty x price`` in the quote asset.
    """

    asset: str
    free: Decimal
    bots_hold: Decimal
    qty: Decimal
    verdict: SweepVerdict
    symbol: str | None = None
    price: Decimal | None = None
    value: Decimal = ZERO


def bot_holdings(
    fills: list[BookedFill], market_of: Callable[[str], Market | None]
) -> dict[str, Decimal]:
    """What the bots of one account hold of each base asset by the ledger: for each spot
    fill whose order came from a bot (any source but ``manual``), ``+qty`` for a buy and
    ``-qty`` for a sell, less the fee when the venue took it in the base asset (Backpack's
    buys). ``market_of(symbol)`` gives the fill's market (None: left out). Base units."""
    held: dict[str, Decimal] = {}
    for f in fills:
        market = market_of(f.symbol)
        if f.source == MANUAL_SOURCE or market is None or market.kind != "spot":
            continue
        change = f.qty if f.side == "buy" else -f.qty
        if f.fee_asset == market.base:
            change -= f.fee
        held[market.base] = held.get(market.base, ZERO) + change
    return held


def plan_sweep(
    balances: list[AssetBalance],
    holdings: Mapping[str, Decimal],
    markets: Mapping[str, Market],
    prices: Mapping[str, Decimal | None],
    settings: AtStart,
) -> list[SweepLine]:
    """What a sweep sells (docs/strategies.md, "Sweep leftover assets at start").

    For each asset other than ``settings.sweep_quote`` with a free balance:
    ``qty = floor_step(free - max(bots_hold, 0))``; it is sold when its market
    ``<asset>/<quote>`` (``markets``, by asset) exists, its last price (``prices``, by
    asset) is known, ``qty >= min_qty`` and ``qty x price >= max(sweep_min_value,
    min_notional)``; otherwise left with the reason. Assets in balance order.
    """
    lines = []
    for b in balances:
        if b.asset == settings.sweep_quote or b.free <= 0:
            continue
        hold = max(holdings.get(b.asset, ZERO), ZERO)
        line = SweepLine(asset=b.asset, free=b.free, bots_hold=hold, qty=ZERO, verdict="no_market")
        market = markets.get(b.asset)
        if market is None:
            lines.append(line)
            continue
        qty = ((b.free - hold) / market.step_size).to_integral_value(ROUND_DOWN) * market.step_size
        price = prices.get(b.asset)
        verdict: SweepVerdict = "sell"
        if qty <= 0:
            verdict = "held_by_bots"
        elif price is None:
            verdict = "no_price"
        elif qty < market.min_qty or qty * price < max(
            settings.sweep_min_value, market.min_notional
        ):
            verdict = "below_minimum"
        lines.append(
            msgspec.structs.replace(
                line,
                symbol=market.symbol,
                price=price,
                verdict=verdict,
                qty=qty if verdict == "sell" else ZERO,
                value=qty * price if price is not None and qty > 0 else ZERO,
            )
        )
    return lines


class AccountStart:
    """Carries out an account's ``at_start`` (module docstring).

    Parameters
    ----------
    engine
        The execution engine (cancels, and the sweep's orders).
    ledger
        The ledger (the bots' fills).
    catalog
        Markets (the sweep's markets, by the account's ``market_data`` venue).
    audit
        Where the audit events go.
    clock
        Now, in ns (intent ids, ``ts_init``).
    """

    def __init__(
        self,
        engine: ExecutionEngine,
        ledger: Ledger,
        catalog: MarketCatalog,
        audit: AuditTrail,
        clock: Clock,
    ) -> None:
        self._engine = engine
        self._ledger = ledger
        self._catalog = catalog
        self._audit = audit
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def begin(self, spec: AccountSpec, venue: Venue) -> None:
        """:meth:`run` in a task of its own (an account that comes up while execution
        runs: a venue that answered late, an account loaded at run time)."""
        if spec.at_start == AtStart():
            return
        task = asyncio.create_task(self.run(spec, venue), name=f"at-start-{spec.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel the runs still going (execution stops)."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self, spec: AccountSpec, venue: Venue) -> None:
        """Do what ``spec.at_start`` asks, once. Never raises for a venue that cannot be
        asked (logged as an error: the account trades all the same)."""
        options = spec.at_start
        try:
            if options.cancel_open_orders != "none":
                await self._cancel(spec, options)
            if options.sweep_assets:
                await self._sweep(spec, venue, options)
        except (VenueUnavailable, VenueRejected, RetryLater) as exc:
            log.error("at start: not done", extra={"account": spec.id, "error": str(exc)})

    async def _cancel(self, spec: AccountSpec, options: AtStart) -> None:
        cancel_id = IntentId(f"start:{spec.id}:{self._clock.now_ns()}")
        scope = options.cancel_open_orders
        foreign, ours = await self._engine.cancel_at_start(spec.id, scope, cancel_id)
        for o in foreign:
            log.info(
                "at start: canceled an order placed outside tradebus",
                extra={
                    "account": spec.id,
                    "venue_order_id": o.venue_order_id,
                    "symbol": o.symbol,
                    "side": o.side,
                    "price": o.price,
                    "qty": o.qty,
                },
            )
        for row in ours:
            log.info(
                "at start: canceled an order of the ledger",
                extra={"account": spec.id, "source": row.source, "intent_id": row.intent_id},
            )
        log.info(
            "at start: open orders canceled",
            extra={
                "account": spec.id,
                "scope": scope,
                "outside": len(foreign),
                "ledger": len(ours),
            },
        )
        await self._audit.record(
            ACTOR,
            "account.cancel_at_start",
            f"account:{spec.id}",
            user=spec.user,
            after={
                "scope": scope,
                "outside": [o.venue_order_id for o in foreign],
                "ledger": [f"{r.source}:{r.intent_id}" for r in ours],
            },
        )

    async def _sweep(self, spec: AccountSpec, venue: Venue, options: AtStart) -> None:
        quote = options.sweep_quote
        markets = {
            m.base: m
            for m in self._catalog.venue_markets(spec.market_data)
            if m.quote == quote and m.kind == "spot"
        }
        by_symbol = {m.symbol: m for m in self._catalog.venue_markets(spec.market_data)}
        holdings = bot_holdings(await self._ledger.account_fills(spec.id), by_symbol.get)
        balances = await venue.balances()
        prices = {
            b.asset: await venue.last_price(markets[b.asset].symbol)
            for b in balances
            if b.asset in markets and b.free > 0
        }
        for line in plan_sweep(balances, holdings, markets, prices, options):
            facts = {
                "account": spec.id,
                "asset": line.asset,
                "free": line.free,
                "bots_hold": line.bots_hold,
                "price": line.price,
                "value": line.value,
                "quote": quote,
                "min_value": options.sweep_min_value,
            }
            if line.verdict != "sell":
                log.info(f"sweep: {line.asset} left ({line.verdict})", extra=facts)
                continue
            assert line.symbol is not None
            outcome = await self._sell(spec, line)
            log.info(
                f"sweep: {line.asset} sold into {quote} ({outcome})",
                extra={**facts, "qty": line.qty},
            )
            await self._audit.record(
                ACTOR,
                "account.sweep",
                f"account:{spec.id}",
                user=spec.user,
                before={"asset": line.asset, "free": line.free, "bots_hold": line.bots_hold},
                after={
                    "symbol": line.symbol,
                    "qty": line.qty,
                    "value": line.value,
                    "order": outcome,
                },
            )

    async def _sell(self, spec: AccountSpec, line: SweepLine) -> str:
        """Sell ``line`` at market through the engine; the order's status (or refusal)."""
        assert line.symbol is not None
        now = self._clock.now_ns()
        intent = PlaceOrder(
            intent_id=IntentId(f"sweep:{spec.id}:{line.asset}:{now}"),
            account=AccountId(spec.id),
            symbol=line.symbol,
            side="sell",
            qty=line.qty,
            order_type="market",
            clamp_to_free=True,
            ts_init=now,
        )
        subject = subjects.intent(spec.user, MANUAL_SOURCE)
        ctx = IntentContext(
            subject=subject,
            user=spec.user,
            source=MANUAL_SOURCE,
            stream_seq=None,
            payload=msgspec.json.encode(intent),
        )
        await self._engine.handle_intents([admit_intent(ctx, intent, self._engine.accounts)])
        key = (spec.user, intent.intent_id)
        found = (await self._ledger.find_intents([key])).get(key)
        if found is None:
            return "not handled"
        return found.status if isinstance(found, OrderRow) else f"refused: {found[0]}"
