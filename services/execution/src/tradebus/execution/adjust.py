"""Corrections of drift, by request: ledger adjustments and paper balances moved by hand.

* ``exec.adjust`` (:class:`AdjustRequest`, from the reconciler when an
  account's drift policy is ``adjust``): execution, the ledger's one writer,
  writes one ``adjustment`` journal entry per asset, valued at the average
  cost of the account's position in that asset (seed 001: what a user sold
  by hand leaves at its cost, booking no P&L), and drops that quantity from
  the position it tracks for the risk limits. Entries are never changed;
  the request's ``ref`` makes it idempotent.
* ``ctl.paper.adjust`` (:class:`PaperAdjust`): move a paper account's venue
  balance without the ledger knowing, as a user selling on the exchange's
  website would (demos and drift tests).
* ``exec.bot_adjust`` (:class:`BotAdjustment`, from the strategy host running
  the bot): journal a correction of one bot's position (a position check's
  adopt or reduce, an average price set by hand) in ``bot_adjustments``
  (migration 0011), once per ``ref``. It attributes holdings to the bot; the
  account's balances do not move. :meth:`AdjustControl.bot_positions` sums each
  source's fills and corrections per base asset for the balances reply.

Both are recorded in the audit log (``audit.execution``) before they are
answered, target ``account:<id>``, user its owner: ``ledger.adjust`` (actor
``reconciler``, the one requester of ``exec.adjust``; ``after`` the entries
written, ``details`` the ``ref``; a repeated ``ref`` writes and records
nothing), ``paper.adjust`` (actor the request's ``actor``; ``before`` and
``after`` the venue balance of the asset) and ``bot.position.<kind>``
(target ``bot:<id>``, actor the request's; ``before``/``after`` the bot's
average price, ``details`` quantity, price and ``ref``; once per ``ref``).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import msgspec
from nats.aio.msg import Msg

from tradebus.common import subjects
from tradebus.common.clock import Clock
from tradebus.common.codec import (
    decode_adjust_request,
    decode_bot_adjustment,
    decode_paper_adjust,
    encode,
)
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import (
    AccountBalances,
    AdjustReply,
    AdjustRequest,
    AdjustRow,
    AssetBalance,
    BotAdjustment,
    BotAdjustReply,
    BotPosition,
    ErrorReply,
    Message,
)
from tradebus.common.positions import position_change
from tradebus.control.audit import AuditTrail
from tradebus.engine.paper.exchange import PaperExchange
from tradebus.execution.replies import answer
from tradebus.ledger.rows import BotAdjustmentRow
from tradebus.ledger.store import Ledger

log = logging.getLogger(__name__)


class AdjustControl:
    """Answers ``exec.adjust`` and ``ctl.paper.adjust`` (module docstring).

    Parameters
    ----------
    engine
        The execution engine (``lock``, ``accounts``, ``risk``).
    ledger
        Where the adjustment entries go.
    catalog
        Markets (which symbol an asset is the base of).
    paper
        Paper exchanges by market-data venue.
    clock
        Entry and audit event times.
    audit
        Publishes the audit events (default: built by :meth:`start` on its
        connection's JetStream, source ``execution``).
    quiet_unknown
        Leave a request naming an account this process does not have unanswered
        (another execution shard owns it: :mod:`.shard`).
    """

    ADJUST_ACTOR = "reconciler"
    """The actor of ``exec.adjust``: only the reconciler asks for it."""

    def __init__(
        self,
        engine: Any,
        ledger: Ledger,
        catalog: MarketCatalog,
        paper: dict[str, PaperExchange],
        clock: Clock,
        audit: AuditTrail | None = None,
        quiet_unknown: bool = False,
    ) -> None:
        self._quiet_unknown = quiet_unknown
        self._engine = engine
        self._ledger = ledger
        self._catalog = catalog
        self._paper = paper
        self._clock = clock
        self._audit = audit
        self._subs: list[Any] = []

    async def start(self, nc: Any) -> None:
        """Subscribe to both subjects."""
        if self._audit is None:
            self._audit = AuditTrail(nc.jetstream(), "execution", self._clock)
        self._subs = [
            await nc.subscribe(subjects.EXEC_ADJUST, cb=self._on_adjust),
            await nc.subscribe(subjects.CTL_PAPER_ADJUST, cb=self._on_paper),
            await nc.subscribe(subjects.EXEC_BOT_ADJUST, cb=self._on_bot_adjust),
        ]

    async def stop(self) -> None:
        """Unsubscribe."""
        for sub in self._subs:
            await sub.unsubscribe()

    async def _on_adjust(self, msg: Msg) -> None:
        await answer(
            msg, lambda data: self.adjust(decode_adjust_request(data)), self._quiet_unknown
        )

    async def adjust(self, request: AdjustRequest) -> AdjustReply:
        """Write the adjustment entries of ``request`` (once per ``ref``).

        Raises
        ------
        KeyError
            If the account is not configured.
        """
        spec = self._engine.accounts[request.account]
        async with self._engine.lock:
            rows = [
                AdjustRow(asset=r.asset, amount=r.amount, price=self._average_cost(spec, r.asset))
                for r in request.rows
                if r.amount != 0
            ]
            entries = [(r.asset, r.amount, r.price) for r in rows]
            now = self._clock.now_ns()
            written = await self._ledger.record_adjustment(spec.id, entries, request.ref, now)
            if not written:
                return AdjustReply(account=spec.id, rows=[])
            for row in rows:
                self._move_position(spec, row)
        log.warning(
            "ledger adjusted to the venue",
            extra={"account": spec.id, "ref": request.ref, "rows": [str(r) for r in rows]},
        )
        if self._audit is not None:
            await self._audit.record(
                self.ADJUST_ACTOR,
                "ledger.adjust",
                f"account:{spec.id}",
                user=spec.user,
                after={"entries": rows},
                details={"ref": request.ref},
            )
        return AdjustReply(account=spec.id, rows=rows)

    async def _on_bot_adjust(self, msg: Msg) -> None:
        await answer(
            msg, lambda data: self.bot_adjust(decode_bot_adjustment(data)), self._quiet_unknown
        )

    async def bot_adjust(self, request: BotAdjustment) -> BotAdjustReply:
        """Journal one correction of a bot's position once per ``ref`` (module docstring).

        Raises
        ------
        KeyError
            If the account is not configured.
        ValueError
            If the request's user does not own the account.
        """
        spec = self._engine.accounts[request.account]
        if spec.user != request.user:
            raise ValueError(f"account {spec.id} is not {request.user}'s")
        row = BotAdjustmentRow(
            account_id=spec.id,
            user_id=request.user,
            source=request.bot,
            symbol=request.symbol,
            asset=request.asset,
            kind=request.kind,
            qty=request.qty,
            price=request.price,
            old_average=request.old_average,
            new_average=request.new_average,
            held=request.held,
            actor=request.actor or "strategy",
            ref=request.ref,
            ts=request.ts_event,
        )
        written = await self._ledger.record_bot_adjustment(row)
        if written and self._audit is not None:
            log.warning(
                "bot position corrected",
                extra={"bot": request.bot, "kind": request.kind, "qty": str(request.qty)},
            )
            await self._audit.record(
                row.actor,
                f"bot.position.{request.kind}",
                f"bot:{request.bot}",
                user=request.user,
                before={"average": request.old_average},
                after={"average": request.new_average},
                details={
                    "qty": request.qty,
                    "price": request.price,
                    "held": request.held,
                    "ref": request.ref,
                },
            )
        return BotAdjustReply(ref=request.ref, written=written)

    async def bot_positions(self, balances: AccountBalances) -> AccountBalances:
        """``balances`` with every order source's ledger position per base asset
        (:attr:`AccountBalances.bot_positions`): its fills as the venue charged them
        (:func:`~tradebus.common.positions.position_change`) plus its corrections."""
        spec = self._engine.accounts[balances.account]
        totals: dict[tuple[str, str], Decimal] = {}
        for group in await self._ledger.source_fills(spec.id):
            if (spec.market_data, group.symbol) not in self._catalog:
                continue
            market = self._catalog.get(spec.market_data, group.symbol)
            if market.kind != "spot":
                continue
            moved, _ = position_change(
                "buy" if group.side == "buy" else "sell",
                group.qty,
                Decimal(1),  # the fee's quote value is not needed here
                group.fee,
                group.fee_asset,
                market,
            )
            key = (group.source, market.base)
            totals[key] = totals.get(key, Decimal(0)) + (moved if group.side == "buy" else -moved)
        for key, qty in (await self._ledger.source_adjustments(spec.id)).items():
            totals[key] = totals.get(key, Decimal(0)) + qty
        rows = [BotPosition(source=s, asset=a, qty=q) for (s, a), q in sorted(totals.items())]
        return msgspec.structs.replace(balances, bot_positions=rows)

    def _symbols_of(self, spec: Any, asset: str) -> list[str]:
        return [m.symbol for m in self._catalog.venue_markets(spec.market_data) if m.base == asset]

    def _average_cost(self, spec: Any, asset: str) -> Decimal | None:
        for symbol in self._symbols_of(spec, asset):
            position = self._engine.risk.position(spec.id, symbol)
            if position is not None and position.qty:
                return position.avg_price
        return None

    def _move_position(self, spec: Any, row: AdjustRow) -> None:
        """A base asset that left by hand leaves the tracked position at its cost."""
        if row.amount >= 0:
            return
        for symbol in self._symbols_of(spec, row.asset):
            position = self._engine.risk.position(spec.id, symbol)
            if position is not None and position.qty > 0:
                position.write_off(min(-row.amount, position.qty))
                return

    async def _on_paper(self, msg: Msg) -> None:
        reply: Message
        try:
            command = decode_paper_adjust(msg.data)
            spec = self._engine.accounts[command.account]
            exchange = self._paper.get(spec.market_data)
            if spec.live or exchange is None:
                raise ValueError(f"{spec.id} is not a paper account")
            async with self._engine.lock:
                before = _total(exchange.balances(spec.id), command.asset)
                exchange.adjust(spec.id, command.asset, command.delta)
                balances = exchange.balances(spec.id)
            log.warning(
                "paper balance moved by hand (the ledger does not know)",
                extra={"account": spec.id, "asset": command.asset, "delta": str(command.delta)},
            )
            if self._audit is not None:
                await self._audit.record(
                    command.actor,
                    "paper.adjust",
                    f"account:{spec.id}",
                    user=spec.user,
                    before={"asset": command.asset, "total": before},
                    after={"asset": command.asset, "total": _total(balances, command.asset)},
                    details={"delta": command.delta},
                )
            reply = AdjustReply(
                account=spec.id,
                rows=[AdjustRow(asset=b.asset, amount=b.total) for b in balances],
            )
        except msgspec.MsgspecError as exc:
            reply = ErrorReply(error="bad_request", message=str(exc))
        except KeyError as exc:
            if self._quiet_unknown:
                return  # another execution shard's account
            reply = ErrorReply(error="unknown_account", message=f"no account {exc}")
        except ValueError as exc:
            reply = ErrorReply(error="invalid", message=str(exc))
        await msg.respond(encode(reply))


def _total(balances: list[AssetBalance], asset: str) -> Decimal:
    """The total of ``asset`` among ``balances`` (0 if absent)."""
    return next((b.total for b in balances if b.asset == asset), Decimal(0))
