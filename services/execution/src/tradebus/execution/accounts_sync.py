"""Accounts added and deleted at run time: the ledger's ``account_configs``, loaded without
a restart.

Users add accounts through the gateway, which writes a row of
``account_configs`` (:class:`~tradebus.ledger.account_configs.AccountConfigs`):
the account's settings and, for a live account, its exchange credentials
sealed to execution's public key (:mod:`tradebus.common.sealed`). Execution
loads the active rows at start (beside the accounts file's accounts: an id in
both is a start-up error) and answers ``ctl.accounts.sync``
(:class:`AccountsSync` -> :class:`AccountsSyncReply`) by re-reading one row or
all of them:

* **a new row is loaded**. Paper: the ledger account with its opening
  deposits, the paper exchange of its market-data venue (a new venue gets one,
  and a market-data subscription), its state restored from the ledger
  (:mod:`.paper_restore`). Live: the sealed credentials are opened with
  execution's private key (``TRADEBUS_SEAL_KEY_FILE``) and checked against
  ccxt's ``requiredCredentials`` of the venue, a :class:`CcxtVenue` is
  connected once, then its fill poller and order stream start
  (:mod:`.live_accounts`, as at start). Keys that cannot be opened, or that
  the venue refuses, halt the account (its intents are refused with
  ``account_halted``); a venue that does not answer leaves it connecting,
  retried with back-off (its intents wait). Either is reported in the reply's
  ``failed``, in words that never hold a key. The engine takes the account
  (:meth:`ExecutionEngine.add_account`) and the intake its user's
  ``INTENTS_<user>`` stream if the user is new (:meth:`IntentConsumer.add_user`);
* **a deleted row is unloaded**: its open orders are canceled through the
  engine, then it leaves the engine (:meth:`ExecutionEngine.remove_account`):
  its intents are refused ``unknown_account``, as for an account that never
  existed; its fill tasks stop and its venue client closes; a user with no
  account left is no longer fetched (:meth:`IntentConsumer.remove_user`);
* **a changed row** may change the account's ``risk`` limits only (applied at
  once); anything else is refused in ``failed`` (add a new account instead).

An account of the accounts file is never loaded or unloaded here. Every load
and unload made on request publishes an :class:`AuditEvent`
(``account.load`` / ``account.unload``, the request's ``actor``, before/after
the account's settings, which hold no key). Syncs run one at a time; other
accounts' intents flow meanwhile (the engine's lock is held only for the
in-memory changes and the ledger reads of one account).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import ccxt
import msgspec
from nacl.public import PrivateKey
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from tradebus.common import subjects
from tradebus.common.clock import LiveClock
from tradebus.common.codec import decode_accounts_sync, encode
from tradebus.common.ids import AccountId, IntentId
from tradebus.common.markets import MarketCatalog
from tradebus.common.messages import AccountsSync, AccountsSyncReply, ErrorReply, Message
from tradebus.common.sealed import SealedError, open_sealed
from tradebus.control.audit import AuditTrail
from tradebus.engine.accounts import AccountSpec, credential_problems, validate_accounts
from tradebus.engine.core import ExecutionEngine
from tradebus.engine.paper.exchange import PaperExchange, PaperVenue
from tradebus.engine.venue import VenueRejected, VenueUnavailable
from tradebus.execution.account_start import AccountStart
from tradebus.execution.ccxt_venue import CcxtVenue
from tradebus.execution.intent_consumer import IntentConsumer
from tradebus.execution.keys import (
    AccountKeys,
    Secret,
    keys_from_credentials,
    required_credentials,
)
from tradebus.execution.live import has_sandbox, live_venue
from tradebus.execution.live_accounts import (
    connect_later,
    connect_live_account,
    start_fill_tasks,
)
from tradebus.execution.market_feed import MarketFeed
from tradebus.execution.paper_restore import restore_account
from tradebus.ledger.account_configs import AccountConfig, AccountConfigs
from tradebus.ledger.entries import deposit_entries
from tradebus.ledger.history import LedgerHistory
from tradebus.ledger.store import Ledger

log = logging.getLogger(__name__)

CHANGEABLE = frozenset({"risk"})
"""The settings of a loaded account a sync may change in place."""


class AccountProblem(Exception):
    """A row that cannot be loaded at all (its settings are invalid); the message says why."""


def spec_of(row: AccountConfig) -> AccountSpec:
    """The account of ``row``, validated as an accounts-file entry would be (its id and
    owner are the row's), live accounts with sealed credentials.

    Raises
    ------
    AccountProblem
        Naming each bad field (``account_configs[<id>].<field>: ...``).
    """
    where = f"account_configs[{row.account_id}]"
    fields = dict(row.spec)
    for name, column in (("id", row.account_id), ("user", row.user_id)):
        if fields.setdefault(name, column) != column:
            raise AccountProblem(f"{where}.spec.{name}: does not match the row's {column!r}")
    try:
        spec = msgspec.json.decode(msgspec.json.encode(fields), type=AccountSpec)
    except msgspec.ValidationError as exc:
        raise AccountProblem(f"{where}.spec: {exc}") from None
    problems = [
        p.replace("accounts[0]", where, 1) for p in validate_accounts([spec], ccxt.exchanges)
    ]
    if spec.live and not spec.sealed:
        problems.append(f"{where}.sealed: a live account added at run time has sealed keys")
    if spec.sealed and row.sealed_credentials is None:
        problems.append(f"{where}.sealed_credentials: missing")
    if not spec.live and row.sealed_credentials is not None:
        problems.append(f"{where}.sealed_credentials: a paper account has no keys")
    if spec.live and spec.sandbox and not has_sandbox(spec.venue):
        problems.append(f"{where}.sandbox: ccxt knows no testnet or sandbox of {spec.venue}")
    if problems:
        raise AccountProblem("; ".join(problems))
    return spec


class AccountLoader:
    """Loads and unloads the accounts of ``account_configs`` (module docstring).

    Parameters
    ----------
    engine
        The execution engine (accounts, lock, cancels).
    ledger, history, configs
        The ledger: account creation, paper restore, the table of run-time accounts.
    catalog
        Markets (paper exchanges).
    exchanges
        Paper exchanges by market-data venue (shared with the market feed).
    feed
        Market-data subscriptions.
    intake
        The intent consumer (users come and go).
    seal_key
        Execution's private key; None: live accounts added at run time are halted.
    audit
        Publishes ``account.load`` / ``account.unload``.
    clock
        Times of ledger rows and cancel ids.
    stop
        Set when execution stops (ends fill tasks and retries).
    file_accounts
        Ids of the accounts file's accounts (never loaded or unloaded here).
    owns
        ``user -> True`` if this process owns the user's accounts (:mod:`.shard`; default:
        every user). Rows of other users are left to their shard, and so is a request
        naming one of their accounts (no answer from here).
    """

    def __init__(
        self,
        *,
        engine: ExecutionEngine,
        ledger: Ledger,
        history: LedgerHistory,
        configs: AccountConfigs,
        catalog: MarketCatalog,
        exchanges: dict[str, PaperExchange],
        feed: MarketFeed,
        intake: IntentConsumer,
        seal_key: PrivateKey | None,
        audit: AuditTrail,
        clock: LiveClock,
        stop: asyncio.Event,
        file_accounts: set[AccountId],
        at_start: AccountStart | None = None,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self._owns = owns
        self._engine = engine
        self._ledger = ledger
        self._history = history
        self._configs = configs
        self._catalog = catalog
        self._exchanges = exchanges
        self._feed = feed
        self._intake = intake
        self._seal_key = seal_key
        self._audit = audit
        self._clock = clock
        self._stop = stop
        self._file_accounts = set(file_accounts)
        self._at_start = at_start
        self._loaded: set[AccountId] = set()  # run-time accounts in the engine now
        self._live: dict[AccountId, CcxtVenue] = {}
        self._tasks: dict[AccountId, list[asyncio.Task[None]]] = {}
        self._lock = asyncio.Lock()
        self._sub: Any = None

    @property
    def loaded(self) -> set[AccountId]:
        """Ids of the run-time accounts loaded now."""
        return set(self._loaded)

    # ---------------------------------------------------------------- service
    async def start(self, nc: NATS) -> None:
        """Answer ``ctl.accounts.sync``."""
        self._sub = await nc.subscribe(subjects.CTL_ACCOUNTS_SYNC, cb=self._on_request)

    async def close(self) -> None:
        """Stop answering; stop every fill task and retry, close the live venues."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        tasks = [t for ts in self._tasks.values() for t in ts]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for venue in self._live.values():
            with contextlib.suppress(Exception):
                await venue.close()
        self._live.clear()

    async def _on_request(self, msg: Msg) -> None:
        reply: Message
        try:
            request = decode_accounts_sync(msg.data or b'{"type":"AccountsSync"}')
        except msgspec.MsgspecError as exc:
            reply = ErrorReply(error="bad_request", message=str(exc))
        else:
            try:
                answered = await self.sync(request)
            except Exception as exc:  # the ledger or the bus down: say so, keep answering
                log.exception("accounts sync failed")
                reply = ErrorReply(error="unavailable", message=f"sync failed: {exc!r}"[:500])
            else:
                if answered is None:
                    return  # another execution shard's account: that shard answers
                reply = answered
        await msg.respond(encode(reply))

    # ------------------------------------------------------------------- sync
    async def load_at_start(self, rows: list[AccountConfig]) -> AccountsSyncReply:
        """Load the active rows of this shard's users (execution's start; no audit events:
        nothing changed)."""
        async with self._lock:
            reply = AccountsSyncReply()
            for row in filter(self._ours, rows):
                await self._apply(row, "", reply, audit=False)
            return reply

    def _ours(self, row: AccountConfig) -> bool:
        return self._owns is None or self._owns(row.user_id)

    async def sync(self, request: AccountsSync) -> AccountsSyncReply | None:
        """Re-read one account (``request.account``) or every row of this shard's users;
        load, unload or change what differs from what is loaded. None: the account is
        another shard's (or, with several shards, none loaded it and it has no row).
        Raises only on infrastructure errors."""
        async with self._lock:
            reply = AccountsSyncReply()
            if request.account is not None:
                account = request.account
                row = await self._configs.get(account)
                if account not in self._file_accounts and self._owns is not None:
                    if row is None and account not in self._loaded:
                        return None
                    if row is not None and not self._ours(row):
                        return None
                if account in self._file_accounts:
                    reply.failed[account] = (
                        f"{account} is an account of the accounts file: change the file and"
                        " restart execution"
                    )
                elif row is None:
                    if account in self._loaded:
                        await self._unload(account, request.actor, reply)
                    else:
                        reply.failed[account] = f"no account {account!r} in account_configs"
                else:
                    await self._apply(row, request.actor, reply)
            else:
                rows = await self._configs.by_user(None, include_deleted=True)
                rows = [r for r in rows if self._ours(r)]
                for row in rows:
                    if row.account_id not in self._file_accounts:
                        await self._apply(row, request.actor, reply)
                for account in sorted(self._loaded - {r.account_id for r in rows}):
                    await self._unload(account, request.actor, reply)
            log.info(
                "accounts synced",
                extra={
                    "actor": request.actor,
                    "loaded": reply.loaded,
                    "unloaded": reply.unloaded,
                    "failed": sorted(reply.failed),
                },
            )
            return reply

    async def _apply(
        self, row: AccountConfig, actor: str, reply: AccountsSyncReply, audit: bool = True
    ) -> None:
        account = row.account_id
        if row.deleted_ns is not None:
            if account in self._loaded:
                await self._unload(account, actor, reply, audit)
            return
        try:
            spec = spec_of(row)
        except AccountProblem as exc:
            reply.failed[account] = str(exc)
            log.error("account not loaded", extra={"account": account, "why": str(exc)})
            return
        if account in self._file_accounts:
            reply.failed[account] = f"{account} is also in the accounts file"
            return
        if account in self._loaded:
            await self._change(spec, actor, reply, audit)
            return
        if account in self._engine.accounts:
            reply.failed[account] = f"{account} is loaded already"
            return
        try:
            if spec.live:
                problem = await self._load_live(spec, row)
            else:
                await self._load_paper(spec)
                problem = None
        except ValueError as exc:  # the ledger holds that id for another owner or venue
            reply.failed[account] = str(exc)
            log.error("account not loaded", extra={"account": account, "why": str(exc)})
            return
        self._loaded.add(account)
        await self._intake.add_user(spec.user)
        reply.loaded.append(account)
        if problem is not None:
            reply.failed[account] = problem
        log.info("account loaded", extra={"account": account, "user": spec.user})
        if audit:
            details = {"failed": problem} if problem is not None else {}
            await self._audit.record(
                actor,
                "account.load",
                f"account:{account}",
                user=spec.user,
                after=_shown(spec),
                details=details,
            )

    async def _change(
        self, spec: AccountSpec, actor: str, reply: AccountsSyncReply, audit: bool
    ) -> None:
        before = self._engine.accounts[spec.id]
        if before == spec:
            return
        changed = sorted(
            f
            for f in spec.__struct_fields__
            if getattr(spec, f) != getattr(before, f) and f not in CHANGEABLE
        )
        if changed:
            reply.failed[spec.id] = (
                f"{spec.id}: {', '.join(changed)} cannot change on a loaded account"
                " (only risk can): add a new account instead"
            )
            return
        async with self._engine.lock:
            self._engine.replace_spec(spec)
        reply.loaded.append(spec.id)
        log.info("account limits changed", extra={"account": spec.id})
        if audit:
            await self._audit.record(
                actor,
                "account.change",
                f"account:{spec.id}",
                user=spec.user,
                before=_shown(before),
                after=_shown(spec),
            )

    async def _load_paper(self, spec: AccountSpec) -> None:
        deposits = deposit_entries(spec.id, dict(spec.balances), "initial")
        await self._ledger.ensure_account(
            spec.id, spec.user, spec.venue, deposits, self._clock.now_ns()
        )
        exchange = self._exchanges.get(spec.market_data)
        async with self._engine.lock:
            if exchange is None:
                exchange = PaperExchange(self._catalog, spec.market_data)
                self._exchanges[spec.market_data] = exchange
            await restore_account(exchange, self._history, spec)
            venue = PaperVenue(exchange, spec.id)
            await self._engine.add_account(spec, venue)
        await self._feed.watch_paper(spec.market_data)
        if self._at_start is not None:
            self._at_start.begin(spec, venue)

    def _keys(self, spec: AccountSpec, row: AccountConfig) -> tuple[AccountKeys, str | None]:
        """The account's keys, or empty ones and why they cannot be had (never a key)."""
        if self._seal_key is None:
            why = "no private key to open sealed credentials (TRADEBUS_SEAL_KEY_FILE is not set)"
        else:
            assert row.sealed_credentials is not None  # checked by spec_of
            try:
                credentials = open_sealed(self._seal_key, row.sealed_credentials)
            except SealedError as exc:
                why = str(exc)
            else:
                problems = credential_problems(
                    spec.venue, credentials, required_credentials(spec.venue)
                )
                if not problems:
                    return keys_from_credentials(credentials), None
                why = "; ".join(problems)
        return AccountKeys(Secret(""), Secret("")), why

    async def _load_live(self, spec: AccountSpec, row: AccountConfig) -> str | None:
        """Bring a live account up (module docstring); why it is halted or waiting, if so."""
        keys, problem = self._keys(spec, row)
        venue = live_venue(spec, keys, self._catalog)
        halted: str | None = None
        connecting = False
        if problem is not None:
            halted = "credentials"
        else:
            try:
                await connect_live_account(spec, venue, self._ledger, self._clock.now_ns())
            except VenueUnavailable as exc:
                if exc.error.kind == "configuration":
                    halted = exc.error.reason
                    problem = f"halted: the venue refuses the account's keys ({halted})"
                else:
                    connecting = True
                    problem = f"connecting: the venue did not answer ({exc.error.reason});"
                    problem += " retrying, its intents wait"
            except VenueRejected as exc:
                connecting = True
                problem = f"connecting: the venue refused the start-up requests ({exc.reason});"
                problem += " retrying"
        if problem is not None and halted == "credentials":
            problem = f"halted: {problem}"
        async with self._engine.lock:
            if connecting:
                self._engine.connecting.add(spec.id)
            await self._engine.add_account(spec, venue)
            if halted is not None:
                await self._engine.halt(spec.id, halted)
        self._live[spec.id] = venue
        await self._feed.watch_live(spec.market_data)
        tasks = self._tasks.setdefault(spec.id, [])
        if halted is not None:
            return problem
        if connecting:

            def on_ready() -> None:
                tasks.extend(
                    start_fill_tasks(
                        self._engine, self._ledger, {spec.id: venue}, {spec.id: spec}, self._stop
                    )
                )
                if self._at_start is not None:
                    self._at_start.begin(spec, venue)

            job = connect_later(
                self._engine, self._ledger, spec, venue, self._clock, self._stop, on_ready
            )
            tasks.append(asyncio.create_task(job, name=f"connect-{spec.id}"))
        else:
            tasks.extend(
                start_fill_tasks(
                    self._engine, self._ledger, {spec.id: venue}, {spec.id: spec}, self._stop
                )
            )
            if self._at_start is not None:
                self._at_start.begin(spec, venue)
        return problem

    async def _unload(
        self, account: AccountId, actor: str, reply: AccountsSyncReply, audit: bool = True
    ) -> None:
        cancel_id = IntentId(f"unload:{self._clock.now_ns()}")
        async with self._engine.lock:
            canceled = await self._engine.cancel_open_orders(account, cancel_id)
            spec = self._engine.remove_account(account)
            if not spec.live:
                exchange = self._exchanges.get(spec.market_data)
                if exchange is not None:
                    exchange.close_account(account)
        self._loaded.discard(account)
        tasks = self._tasks.pop(account, [])
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        venue = self._live.pop(account, None)
        if venue is not None:
            with contextlib.suppress(Exception):
                await venue.close()
        if not any(s.user == spec.user for s in self._engine.accounts.values()):
            await self._intake.remove_user(spec.user)
        reply.unloaded.append(account)
        log.warning(
            "account unloaded: its open orders canceled, its intents refused",
            extra={"account": account, "user": spec.user, "canceled": canceled},
        )
        if audit:
            await self._audit.record(
                actor,
                "account.unload",
                f"account:{account}",
                user=spec.user,
                before=_shown(spec),
                details={"canceled": canceled},
            )


def _shown(spec: AccountSpec) -> dict[str, Any]:
    """The account's settings for an audit event: no key (run-time accounts have none),
    nor where a file account's keys are read from."""
    shown = msgspec.to_builtins(spec)
    for field in ("api_key_env", "api_key_file", "secret_env", "secret_file"):
        shown.pop(field, None)
    return dict(shown)
