"""Exchange accounts of users: add, list, read, delete, and their kill switch.

* ``POST /api/v1/accounts``: add a paper account, or a live one on any ccxt
  venue with the credentials that venue requires (ccxt's
  ``requiredCredentials``: ``apiKey``, ``secret``, and ``password``, ``uid``...
  where the venue asks). The settings are checked by the very validation of
  the accounts file (:func:`tradebus.engine.accounts.validate_accounts`),
  errors naming the field. The credentials are sealed at once with
  execution's public key (:mod:`tradebus.common.sealed`); only the ciphertext
  is stored (``account_configs``), and only execution can open it. Then
  ``ctl.accounts.sync`` asks execution to load the account, without a restart;
  the answer says whether it trades (``sync.state``: ``loaded``), is halted
  or waits for its venue (``failed``, with why), or execution did not answer
  (``pending``: it loads it at its next start or sync).
* ``GET /api/v1/accounts``: the caller's accounts (an admin's: everyone's, or
  ``?user=``), those of the accounts file too (``managed_by: file``).
* ``GET /api/v1/accounts/{id}``: one account, with its balances at the venue
  (``exec.query.balances``) and its latest reconciliation report.
* ``DELETE /api/v1/accounts/{id}``: the account's bots stop: those made through the
  API are deleted, those of a bot file disabled (their hosts stop them, canceling per
  ``cancel_on_exit``); the account is marked deleted (its ledger
  history stays) and unloaded by execution: its open orders are canceled and
  its intents refused. An account of the accounts file is not the API's to
  delete (409).
* ``POST /api/v1/accounts/{id}/killswitch`` ``{action: engage|release|status,
  reason}``: the account's kill switch over ``ctl.killswitch`` (execution
  checks and persists it as for the CLI).

Keys and secrets never come back out: no answer, log, audit event or error
holds them. Another user's account is 404, never its data. Every change is
an audit event (source ``gateway``) with before and after.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
import nats.errors
from litestar import Router, delete, get, post
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from tradebus.common import subjects
from tradebus.common.bus import request
from tradebus.common.codec import (
    decode_accounts_sync_reply,
    decode_balances_reply,
    decode_killswitch_reply,
)
from tradebus.common.ids import AccountId, UserId
from tradebus.common.markets import MarketKind
from tradebus.common.messages import (
    AccountsSync,
    AccountsSyncReply,
    AssetBalance,
    BalancesQuery,
    BalancesReply,
    KillSwitchCommand,
    KillSwitchReply,
)
from tradebus.common.sealed import MAX_VALUE_CHARS, SealedError, seal
from tradebus.common.subjects import TOKEN_PATTERN
from tradebus.control.botstore import (
    BotNotFound,
    BotStoreError,
    delete_spec,
    get_spec,
    open_bots,
    read_specs,
    update_spec,
)
from tradebus.engine.accounts import (
    PAPER,
    AccountSpec,
    RiskLimits,
    credential_problems,
    validate_accounts,
)
from tradebus.gateway.auth import SECURED
from tradebus.gateway.context import Caller, Ctx, GatewayContext, Principal
from tradebus.gateway.errors import ApiError, invalid, invalid_fields, not_found
from tradebus.gateway.exchanges import ccxt_exchanges, ccxt_module
from tradebus.gateway.params import AccountIdPath
from tradebus.ledger.account_configs import AccountConfig, AccountConfigs, AccountIdTaken

log = logging.getLogger(__name__)

SYNC_TIMEOUT_SECONDS = 30.0
"""How long a request waits for execution to load or unload an account (a live venue's
first answer included)."""
QUERY_TIMEOUT_SECONDS = 5.0
"""How long a request waits for execution's balances or kill switch answer."""

Credential = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_VALUE_CHARS)]
AccountIdText = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN.pattern)]


def required_credentials(venue: str) -> dict[str, bool]:
    """ccxt's ``requiredCredentials`` of exchange ``venue`` (every name ccxt knows ->
    whether this exchange needs it)."""
    return dict(getattr(ccxt_module(), venue)().requiredCredentials)


# --------------------------------------------------------------------------- shapes
class NewAccount(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An account to add. Paper: ``venue`` omitted (or ``paper``), with its starting
    ``balances``, fees, ``market_kind`` and ``leverage``. Live: ``venue`` a ccxt exchange
    id, ``market_data`` the markets file's venue of its symbols, ``credentials`` by ccxt
    name (sealed at once, never shown again), request budget and polling.

    ``user``: whose account it is (the caller's by default; only an admin names another
    user). ``api_url``/``ws_url`` (a mirror or test server, where the keys go): admins only.
    """

    id: AccountIdText
    user: str | None = None
    venue: str = PAPER
    market_data: str = "binance"
    balances: dict[str, Decimal] = {}
    maker_fee_bps: Decimal = Decimal(10)
    taker_fee_bps: Decimal = Decimal(10)
    risk: RiskLimits = RiskLimits()
    market_kind: MarketKind = "spot"
    leverage: Decimal = Decimal(1)
    credentials: dict[str, Credential] | None = None
    rate_per_second: float = 10.0
    burst: int = 10
    fill_stream: bool = True
    poll_seconds: float = 1.0
    backstop_seconds: float = 30.0
    timeout_seconds: float = 10.0
    api_url: str | None = None
    ws_url: str | None = None


class SyncState(msgspec.Struct, frozen=True, kw_only=True):
    """What execution did with an account just added or deleted: ``loaded``, ``unloaded``,
    ``failed`` (halted, or waiting for its venue: ``message`` says why) or ``pending``
    (execution did not answer; it applies the change at its next start or sync)."""

    state: Literal["loaded", "unloaded", "failed", "pending", "unchanged"]
    message: str | None = None


class AccountView(msgspec.Struct, frozen=True, kw_only=True):
    """An account as the API shows it: never a key.

    ``managed_by``: ``api`` (added through the API) or ``file`` (the accounts file:
    only its id, owner and venue are known here). ``balances`` are the opening
    balances it was added with; ``sealed_credentials`` says its keys are held sealed
    for execution (never shown).
    """

    id: AccountId
    user: UserId
    venue: str
    managed_by: Literal["api", "file"]
    live: bool
    created_ns: int
    market_data: str | None = None
    market_kind: str | None = None
    leverage: Decimal | None = None
    balances: dict[str, Decimal] | None = None
    maker_fee_bps: Decimal | None = None
    taker_fee_bps: Decimal | None = None
    risk: RiskLimits | None = None
    rate_per_second: float | None = None
    burst: int | None = None
    sealed_credentials: bool = False
    deleted_ns: int | None = None


class AccountCreated(msgspec.Struct, frozen=True, kw_only=True):
    """The account added, and what execution did with it."""

    account: AccountView
    sync: SyncState


class AccountList(msgspec.Struct, frozen=True, kw_only=True):
    """Accounts, by id."""

    accounts: list[AccountView]


class ReconView(msgspec.Struct, frozen=True, kw_only=True):
    """The latest reconciliation of the account: ``ok`` or ``drift``, per asset rows."""

    status: str
    ledger_watermark: int
    ts: int
    rows: list[dict[str, Any]]


class AccountDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One account, its balances at the venue now (or why they could not be had), and
    its latest reconciliation report (None before the first)."""

    account: AccountView
    balances: list[AssetBalance] | None = None
    ledger_watermark: int | None = None
    balances_error: str | None = None
    reconciliation: ReconView | None = None


class AccountDeleted(msgspec.Struct, frozen=True, kw_only=True):
    """The account deleted, its bots stopped with it (``bots_deleted``: made through the
    API, deleted; ``bots_disabled``: of a bot file, disabled), and what execution did."""

    account: AccountView
    bots_deleted: list[str]
    bots_disabled: list[str]
    sync: SyncState


class KillSwitchRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Engage, release or show the account's kill switch; ``reason`` shown in alerts."""

    action: Literal["engage", "release", "status"]
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class KillSwitchState(msgspec.Struct, frozen=True, kw_only=True):
    """The account's switch (``engaged`` and why), the global switch, and the orders an
    engage canceled."""

    account: AccountId
    engaged: bool
    reason: str | None = None
    global_engaged: bool = False
    global_reason: str | None = None
    canceled: int = 0


# --------------------------------------------------------------------------- helpers
def spec_view(spec: AccountSpec, created_ns: int, deleted_ns: int | None) -> AccountView:
    """The view of an account added through the API."""
    return AccountView(
        id=spec.id,
        user=spec.user,
        venue=spec.venue,
        managed_by="api",
        live=spec.live,
        created_ns=created_ns,
        market_data=spec.market_data,
        market_kind=spec.market_kind,
        leverage=spec.leverage,
        balances=dict(spec.balances),
        maker_fee_bps=spec.maker_fee_bps,
        taker_fee_bps=spec.taker_fee_bps,
        risk=spec.risk,
        rate_per_second=spec.rate_per_second if spec.live else None,
        burst=spec.burst if spec.live else None,
        sealed_credentials=spec.sealed,
        deleted_ns=deleted_ns,
    )


def row_spec(row: AccountConfig) -> AccountSpec:
    """The settings of a stored row as an :class:`AccountSpec` (id and owner: the row's)."""
    fields = {**row.spec, "id": row.account_id, "user": row.user_id}
    return msgspec.json.decode(msgspec.json.encode(fields), type=AccountSpec)


def row_view(row: AccountConfig) -> AccountView:
    """The view of a stored row."""
    return spec_view(row_spec(row), row.created_ns, row.deleted_ns)


async def file_accounts(ctx: GatewayContext, user: str | None) -> list[AccountView]:
    """Accounts of the ledger that were not added through the API (the accounts file's)."""
    sql = (
        "SELECT a.id, a.user_id, a.venue, a.created_ns FROM accounts a"
        " WHERE NOT EXISTS (SELECT 1 FROM account_configs c WHERE c.account_id = a.id)"
    )
    args: list[Any] = []
    if user is not None:
        sql += " AND a.user_id = $1"
        args.append(user)
    rows = await ctx.pool.fetch(sql + " ORDER BY a.id", *args)
    return [
        AccountView(
            id=AccountId(r["id"]),
            user=UserId(r["user_id"]),
            venue=r["venue"],
            managed_by="file",
            live=r["venue"] != PAPER,
            created_ns=r["created_ns"],
        )
        for r in rows
    ]


async def find_account(
    ctx: GatewayContext, principal: Principal, account_id: str
) -> tuple[AccountView, AccountConfig | None]:
    """The account ``account_id`` if the caller may see it: its view and its row (None for
    an account of the file).

    Raises
    ------
    ApiError
        404 if there is no such active account or it is another user's (the same answer).
    """
    row = await AccountConfigs(ctx.pool).get(AccountId(account_id))
    if row is not None:
        if row.deleted_ns is None and principal.may_see(row.user_id):
            return row_view(row), row
        raise not_found("account", account_id)
    record = await ctx.pool.fetchrow(
        "SELECT id, user_id, venue, created_ns FROM accounts WHERE id = $1", account_id
    )
    if record is None or not principal.may_see(record["user_id"]):
        raise not_found("account", account_id)
    view = AccountView(
        id=AccountId(record["id"]),
        user=UserId(record["user_id"]),
        venue=record["venue"],
        managed_by="file",
        live=record["venue"] != PAPER,
        created_ns=record["created_ns"],
    )
    return view, None


async def sync_account(ctx: GatewayContext, account: str, actor: str, wanted: str) -> SyncState:
    """Ask execution to re-read ``account`` (``ctl.accounts.sync``); what it did.

    ``wanted`` is ``loaded`` or ``unloaded``. Execution not answering is ``pending``
    (the change is in the table: execution applies it at its next start or sync).
    """
    message = AccountsSync(account=AccountId(account), actor=actor)
    try:
        raw = await request(
            ctx.nc, subjects.CTL_ACCOUNTS_SYNC, message, timeout=SYNC_TIMEOUT_SECONDS
        )
    except (nats.errors.Error, TimeoutError) as exc:
        log.warning(
            "execution did not answer an accounts sync",
            extra={"account": account, "error": type(exc).__name__},
        )
        return SyncState(
            state="pending",
            message="execution did not answer; it applies the change at its next start or sync",
        )
    reply = decode_accounts_sync_reply(raw)
    if not isinstance(reply, AccountsSyncReply):
        return SyncState(state="pending", message=f"execution: {reply.message}")
    failed = reply.failed.get(AccountId(account))
    if failed is not None:
        return SyncState(state="failed", message=failed)
    if account in reply.loaded or account in reply.unloaded:
        return SyncState(state=wanted)  # type: ignore[arg-type]
    return SyncState(state="unchanged")


def _validate(ctx: GatewayContext, data: NewAccount, spec: AccountSpec) -> list[tuple[str, str]]:
    """Every problem of a new account as ``(field, message)``."""
    problems: list[tuple[str, str]] = []
    exchanges = ccxt_exchanges()
    for text in validate_accounts([spec], exchanges):
        where, _, message = text.partition(": ")
        field = where.removeprefix("accounts[0]").lstrip(".") or "account"
        problems.append((field, message))
    if not ctx.catalog.venue_markets(spec.market_data):
        problems.append(("market_data", f"no markets of {spec.market_data!r} in the markets file"))
    if spec.live:
        if data.credentials is None:
            problems.append(("credentials", f"a live account on {spec.venue} needs credentials"))
        elif spec.venue in exchanges:
            required = required_credentials(spec.venue)
            for text in credential_problems(spec.venue, data.credentials, required):
                field, _, message = text.partition(": ")
                problems.append((field, message))
    elif data.credentials is not None:
        problems.append(("credentials", "only for live accounts (venue is paper)"))
    return problems


# --------------------------------------------------------------------------- routes
@post("/", status_code=HTTP_201_CREATED, security=SECURED, summary="Add an exchange account")
async def create_account(ctx: Ctx, principal: Caller, data: JSONBody[NewAccount]) -> AccountCreated:
    """Add a paper or live account (module docstring); 201 with the account (no key)."""
    owner = data.user or principal.user
    if owner != principal.user:
        if not principal.is_admin:
            raise invalid("user", "you can add only your own accounts")
        if await ctx.users.get(owner) is None:
            raise invalid("user", f"no user {owner!r}")
    if not principal.is_admin:
        for field in ("api_url", "ws_url"):
            if getattr(data, field) is not None:
                raise invalid(field, "only an admin may point an account's keys elsewhere")
    live = data.venue != PAPER
    spec = AccountSpec(
        id=AccountId(data.id),
        user=UserId(owner),
        venue=data.venue,
        market_data=data.market_data,
        balances=dict(data.balances),
        maker_fee_bps=data.maker_fee_bps,
        taker_fee_bps=data.taker_fee_bps,
        risk=data.risk,
        market_kind=data.market_kind,
        leverage=data.leverage,
        api_url=data.api_url,
        ws_url=data.ws_url,
        rate_per_second=data.rate_per_second,
        burst=data.burst,
        fill_stream=data.fill_stream,
        poll_seconds=data.poll_seconds,
        backstop_seconds=data.backstop_seconds,
        timeout_seconds=data.timeout_seconds,
        sealed=live,
    )
    problems = _validate(ctx, data, spec)
    if problems:
        raise invalid_fields(problems)
    sealed: bytes | None = None
    if live:
        assert data.credentials is not None  # _validate
        if ctx.seal_public_key is None:
            raise ApiError(
                503, "unavailable", "live accounts cannot be added: no seal_public_key_file"
            )
        try:
            sealed = seal(ctx.seal_public_key, dict(data.credentials))
        except SealedError as exc:  # never holds a value: names a field or the key
            log.error("cannot seal credentials", extra={"why": str(exc)})
            raise ApiError(503, "unavailable", "credentials cannot be sealed now") from None
    stored = msgspec.to_builtins(spec)
    try:
        row = await AccountConfigs(ctx.pool).create(
            spec.id, spec.user, stored, sealed, ctx.clock.now_ns()
        )
    except AccountIdTaken as exc:
        raise ApiError(409, "conflict", str(exc), field="id") from None
    view = row_view(row)
    await ctx.audit.record(
        principal.actor(), "account.create", f"account:{spec.id}", user=spec.user, after=view
    )
    state = await sync_account(ctx, spec.id, principal.actor(), "loaded")
    return AccountCreated(account=view, sync=state)


@get("/", security=SECURED, summary="List exchange accounts")
async def list_accounts(
    ctx: Ctx,
    principal: Caller,
    user: Annotated[
        str | None, Parameter(description="only this user's accounts (admins)", max_length=64)
    ] = None,
) -> AccountList:
    """The caller's accounts; an admin's: everyone's, or ``?user=``'s."""
    if user is not None and not principal.may_see(user):
        return AccountList(accounts=[])
    scope = user if principal.is_admin else principal.user
    rows = await AccountConfigs(ctx.pool).by_user(UserId(scope) if scope else None)
    views = [row_view(r) for r in rows] + await file_accounts(ctx, scope)
    return AccountList(accounts=sorted(views, key=lambda v: v.id))


@get("/{account_id:str}", security=SECURED, summary="One exchange account")
async def get_account(ctx: Ctx, principal: Caller, account_id: AccountIdPath) -> AccountDetail:
    """The account, its balances at the venue and its latest reconciliation (404 if it is
    not the caller's)."""
    view, _ = await find_account(ctx, principal, account_id)
    balances: list[AssetBalance] | None = None
    watermark: int | None = None
    error: str | None = None
    query = BalancesQuery(account=AccountId(account_id))
    try:
        raw = await request(
            ctx.nc, subjects.exec_query("balances"), query, timeout=QUERY_TIMEOUT_SECONDS
        )
        reply = decode_balances_reply(raw)
    except (nats.errors.Error, TimeoutError, msgspec.MsgspecError) as exc:
        error = f"execution did not answer ({type(exc).__name__})"
    else:
        if isinstance(reply, BalancesReply) and reply.accounts:
            balances = list(reply.accounts[0].balances)
            watermark = reply.accounts[0].ledger_watermark
        elif not isinstance(reply, BalancesReply):
            error = f"{reply.error}: {reply.message}"
    record = await ctx.pool.fetchrow(
        "SELECT status, ledger_watermark, rows::text AS rows, ts FROM recon_reports"
        " WHERE account_id = $1 ORDER BY id DESC LIMIT 1",
        account_id,
    )
    recon = None
    if record is not None:
        recon = ReconView(
            status=record["status"],
            ledger_watermark=record["ledger_watermark"],
            ts=record["ts"],
            rows=msgspec.json.decode(record["rows"]),
        )
    return AccountDetail(
        account=view,
        balances=balances,
        ledger_watermark=watermark,
        balances_error=error,
        reconciliation=recon,
    )


@delete("/{account_id:str}", status_code=HTTP_200_OK, security=SECURED, summary="Delete one")
async def delete_account(ctx: Ctx, principal: Caller, account_id: AccountIdPath) -> AccountDeleted:
    """Delete an account added through the API (module docstring); 409 for one of the
    accounts file, 404 if it is not the caller's."""
    view, row = await find_account(ctx, principal, account_id)
    if row is None:
        raise ApiError(
            409,
            "conflict",
            f"account {account_id!r} comes from the accounts file: remove it there and restart"
            " execution",
            field="id",
        )
    deleted, disabled = await stop_bots_of(ctx, principal, account_id)
    after = await AccountConfigs(ctx.pool).mark_deleted(AccountId(account_id), ctx.clock.now_ns())
    assert after is not None  # found above; a delete is soft
    gone = row_view(after)
    await ctx.audit.record(
        principal.actor(),
        "account.delete",
        f"account:{account_id}",
        user=view.user,
        before=view,
        after=gone,
        details={"bots_deleted": deleted, "bots_disabled": disabled},
    )
    state = await sync_account(ctx, account_id, principal.actor(), "unloaded")
    return AccountDeleted(account=gone, bots_deleted=deleted, bots_disabled=disabled, sync=state)


async def stop_bots_of(
    ctx: GatewayContext, principal: Principal, account_id: str
) -> tuple[list[str], list[str]]:
    """Stop every bot of ``account_id`` (an account being deleted): ``(deleted, disabled)``
    bot ids.

    A bot made through the API is deleted from KV ``bots``; one of a bot file is
    disabled there (``enabled: false``: the API does not delete what a file
    owns; the file's next apply may enable it again, and execution then refuses
    its intents ``unknown_account``). Either way its host stops it at once,
    canceling per ``cancel_on_exit``. Each is an audit event. A bot changed or
    deleted by someone else meanwhile is left as it is (logged); execution
    refuses its intents all the same once the account is unloaded.
    """
    kv = await open_bots(ctx.js)
    deleted: list[str] = []
    disabled: list[str] = []
    why = {"why": f"account {account_id} deleted"}
    for bot, spec in sorted((await read_specs(kv)).items()):
        if spec.account != account_id:
            continue
        if spec.managed_by == "api":
            try:
                await delete_spec(kv, bot)
            except BotNotFound:
                continue
            deleted.append(bot)
            await ctx.audit.record(
                principal.actor(),
                "bot.delete",
                f"bot:{bot}",
                user=spec.user,
                before=spec,
                details=why,
            )
            continue
        current = await get_spec(kv, bot)
        if current is None or not current[0].enabled:
            continue
        after = msgspec.structs.replace(current[0], enabled=False)
        try:
            await update_spec(kv, after, current[1])
        except BotStoreError as exc:
            log.warning("bot not disabled", extra={"bot": bot, "why": str(exc)})
            continue
        disabled.append(bot)
        await ctx.audit.record(
            principal.actor(),
            "bot.disable",
            f"bot:{bot}",
            user=spec.user,
            before=current[0],
            after=after,
            details=why,
        )
    return deleted, disabled


@post(
    "/{account_id:str}/killswitch",
    status_code=HTTP_200_OK,
    security=SECURED,
    summary="Engage, release or show the account's kill switch",
)
async def account_killswitch(
    ctx: Ctx, principal: Caller, account_id: AccountIdPath, data: JSONBody[KillSwitchRequest]
) -> KillSwitchState:
    """The account's kill switch through execution (``ctl.killswitch``): engaging cancels
    its open orders and refuses new ones until released (404 if not the caller's)."""
    view, _ = await find_account(ctx, principal, account_id)
    command = KillSwitchCommand(
        action=data.action,
        account=AccountId(account_id),
        reason=data.reason,
        actor=principal.actor(),
    )
    before = None
    if data.action != "status":
        status = msgspec.structs.replace(command, action="status", reason="")
        before = _switch_state(account_id, await _ask_killswitch(ctx, account_id, status))
    state = _switch_state(account_id, await _ask_killswitch(ctx, account_id, command))
    if before is not None:
        await ctx.audit.record(
            principal.actor(),
            f"killswitch.{data.action}",
            f"account:{account_id}",
            user=view.user,
            before=before,
            after=state,
            details={"reason": data.reason},
        )
    return state


async def _ask_killswitch(
    ctx: GatewayContext, account_id: str, command: KillSwitchCommand
) -> KillSwitchReply:
    """Execution's answer to ``command`` (503 if it does not answer, 409 if it has no such
    account loaded)."""
    try:
        raw = await request(ctx.nc, subjects.CTL_KILLSWITCH, command, timeout=SYNC_TIMEOUT_SECONDS)
    except (nats.errors.Error, TimeoutError):
        raise ApiError(503, "unavailable", "execution did not answer; try again") from None
    reply = decode_killswitch_reply(raw)
    if not isinstance(reply, KillSwitchReply):
        if reply.error == "unknown_account":
            raise ApiError(409, "conflict", f"execution has no account {account_id!r} loaded")
        raise ApiError(503, "unavailable", f"execution: {reply.message}")
    return reply


def _switch_state(account_id: str, reply: KillSwitchReply) -> KillSwitchState:
    """What the caller may see of ``reply``: their account's switch and the global one
    (never other accounts')."""
    reason = reply.accounts.get(AccountId(account_id))
    return KillSwitchState(
        account=AccountId(account_id),
        engaged=reason is not None,
        reason=reason,
        global_engaged=reply.global_reason is not None,
        global_reason=reply.global_reason,
        canceled=reply.canceled,
    )


accounts_router = Router(
    path="/api/v1/accounts",
    route_handlers=[create_account, list_accounts, get_account, delete_account, account_killswitch],
    tags=["accounts"],
)
