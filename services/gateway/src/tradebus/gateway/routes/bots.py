"""Bots: create, read, change and delete bot specs (KV ``bots``), and command them.

* ``POST /api/v1/bots`` ``{"strategy", "account", "params", "symbol"?, "venue"?,
  "id"?, "name"?, "group"?, "enabled"?, "execute_trades"?, "dry_run_wallet"?}``: a bot
  of the caller's (``execute_trades: false``: a dry run, README "Dry run"), on one of their
  accounts. ``venue`` (the market data it trades on) defaults to the account's
  market-data venue; ``id`` to ``<user>-<strategy>[-<name>]`` as a bot file
  names bots, and an id given must start with ``<user>-`` (no one can take
  another person's bot names); ``group`` (bots of one group share a volume
  target) is always the caller's own: ``<user>-<group or strategy>``. The spec
  is validated by the code of ``tradebus bots apply``
  (:func:`tradebus.strategies.registry.spec_problems`): 400 listing every
  problem by field (``params.total_quote``). The account must exist (400
  naming ``account``) and be the caller's (404, as any resource not theirs).
* ``GET /api/v1/bots[?user=]``: the caller's bots (an admin's: everyone's, or
  one user's with ``user``), each with its revision and the live status its
  host reports (None when no host runs it or no host answered within a
  second; statuses are shared by requests for a second).
* ``GET /api/v1/bots/{id}``: one bot; 404 if it is not the caller's.
* ``PUT /api/v1/bots/{id}`` ``{"params"?, "enabled"?, "revision"?}``: replace
  its parameters and/or enable or disable it, if it is still at the revision
  given (``If-Match: <revision>`` or ``revision``; without either, the
  revision just read): 409 if it changed meanwhile. The host takes the new
  spec live.
* ``DELETE /api/v1/bots/{id}`` (``If-Match`` optional): its host stops it
  (cancelling its orders per ``cancel_on_exit``) and forgets it.
* ``POST /api/v1/bots/{id}/start`` ``{"mode": "resume"|"fresh"}``, ``/pause``,
  ``/resume``, ``/stop``, ``/flatten`` (force exit: cancel, close the position at
  market, stop; docs/strategies.md): ``ctl.bots.<verb>`` to the host that runs it, as the
  caller (``actor``); the host's refusal is 409 with its reason
  (``not_running``, ``unknown_bot``...), no host answering 503.
* ``POST /api/v1/bots/{id}/average`` ``{"price": "50000"}``: set the bot's
  average entry price by hand (seed 001; ``ctl.bots.set-average`` as the
  caller). The price must be > 0 (400 naming ``price``); a bot without a
  position is 409 ``invalid``. The host has execution journal the correction
  (``bot_adjustments``, kind ``average``: who, when, old and new average).
* ``GET /api/v1/bots/{id}/dry-run`` ``?limit=``: a dry-run bot's last intents and
  the answers of its simulated venue (stream ``DRYRUN``).

Bots of the bot file (``managed_by: file``) are listed and can be commanded
by their owner, but not changed or deleted here (409: edit the bot file).
Changes are audited (``bot.create``, ``bot.update``, ``bot.delete``, with
the spec before and after); commands are audited by the host that carries
them out.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, delete, get, post, put
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from tradebus.common.ids import AccountId, BotId
from tradebus.common.messages import BotCommand, BotSetAverage, BotStatus, DryRunRecord, StartMode
from tradebus.common.subjects import TOKEN_PATTERN
from tradebus.control.bots import ControlError, send_command, set_average
from tradebus.control.botstore import (
    BotChanged,
    BotExists,
    BotManagedElsewhere,
    BotNotFound,
    create_spec,
    delete_spec,
    update_spec,
)
from tradebus.control.dryrun import dry_run_records
from tradebus.gateway.auth import SECURED
from tradebus.gateway.context import Caller, Ctx, GatewayContext, Principal
from tradebus.gateway.errors import ApiError, ErrorDetail, invalid, invalid_fields, not_found
from tradebus.gateway.live import account_info
from tradebus.gateway.params import BotIdPath
from tradebus.strategies.registry import BotSpec, normalize_params, spec_problems

log = logging.getLogger(__name__)

Token = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN.pattern)]


class BotCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new bot (module docstring): ``params`` as the bot file's (money as strings or
    numbers)."""

    strategy: str
    account: Token
    params: dict[str, Any] = {}
    symbol: str | None = None
    venue: str | None = None
    id: str | None = None
    name: Token | None = None
    group: Token | None = None
    enabled: bool = True
    execute_trades: bool = True
    dry_run_wallet: dict[str, Decimal] = {}


class BotUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to replace of a bot: its whole ``params`` and/or ``enabled``; ``revision`` the
    one read (or send ``If-Match``)."""

    params: dict[str, Any] | None = None
    enabled: bool | None = None
    revision: int | None = None


class StartRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to start a stopped bot: ``resume`` its state, or start ``fresh`` (its open
    orders cancelled, its state forgotten)."""

    mode: StartMode = "resume"


class AverageRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The average entry price to set on a bot, quote per base (> 0; required, checked
    after the bot is found to be the caller's)."""

    price: Decimal | None = None


class Bot(msgspec.Struct, frozen=True, kw_only=True):
    """A bot: its ``spec`` as KV ``bots`` holds it, the ``revision`` to send with a
    change, and the ``status`` its host reports (None: not running, or no host answered)."""

    id: BotId
    spec: BotSpec
    revision: int
    status: BotStatus | None


class CommandResult(msgspec.Struct, frozen=True, kw_only=True):
    """The host's answer to a command: what it did (``message``), the bot's status after,
    and the host replica (``host``)."""

    bot: BotId
    command: str
    ok: bool
    message: str
    status: BotStatus | None
    host: str


# --------------------------------------------------------------------- helpers
async def visible_bot(ctx: GatewayContext, principal: Principal, bot: str) -> tuple[BotSpec, int]:
    """``(spec, revision)`` of ``bot`` if the caller may see it; 404 otherwise (also when it
    is someone else's: the same answer as no bot at all)."""
    found = await ctx.bots.get(bot)
    if found is None or not principal.may_see(found[0].user):
        raise not_found("bot", bot)
    return found


def _editable(spec: BotSpec) -> None:
    if spec.managed_by != "api":
        raise ApiError(
            409,
            "conflict",
            f"bot {spec.id!r} comes from the bot file: change it there (tradebus bots apply)",
        )


def _problems(spec: BotSpec, ctx: GatewayContext) -> None:
    problems = spec_problems(spec, ctx.catalog)
    if problems:
        raise invalid_fields(problems)


def _if_match(request: Request[Any, Any, Any], body_revision: int | None) -> int | None:
    """The revision of ``If-Match`` (``3``, ``"3"`` or ``W/"3"``) or of the body."""
    raw = request.headers.get("if-match")
    if raw is None:
        return body_revision
    text = raw.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise ApiError(
            400,
            "invalid_request",
            f"If-Match: expected a bot revision (an integer), got {raw!r}",
            field="If-Match",
            details=[ErrorDetail(field="If-Match", message="not a revision", source="header")],
        )
    return int(text)


def _changed(ctx: GatewayContext) -> None:
    ctx.bots.changed()
    ctx.statuses.changed()


async def _status(ctx: GatewayContext, spec: BotSpec) -> BotStatus | None:
    status = (await ctx.statuses.all()).get(spec.id)
    return status if status is not None and status.user == spec.user else None


def _default_id(user: str, strategy: str, name: str | None) -> str:
    return "-".join(p for p in (user, strategy, name) if p)


# ---------------------------------------------------------------------- routes
@post("/", status_code=HTTP_201_CREATED, security=SECURED, summary="Create a bot")
async def create_bot(ctx: Ctx, principal: Caller, data: JSONBody[BotCreate]) -> Bot:
    """Create a bot of the caller's (module docstring)."""
    user = principal.user
    account = await account_info(ctx.pool, data.account)
    if account is None:
        raise invalid("account", f"no account {data.account!r}: add it first")
    if account.owner != user:
        raise ApiError(404, "not_found", f"no account {data.account!r}", field="account")
    if not account.active:
        raise invalid("account", f"account {data.account!r} was deleted")
    bot_id = data.id or _default_id(user, data.strategy, data.name)
    if not bot_id.startswith(f"{user}-"):
        raise invalid("id", f"must start with {user}- (your bots are named after you)")
    spec = BotSpec(
        id=BotId(bot_id),
        user=user,
        account=AccountId(data.account),
        strategy=data.strategy,
        venue=data.venue or account.data_venue,
        symbol=data.symbol,
        group=f"{user}-{data.group or data.strategy}",
        params=normalize_params(data.params),
        enabled=data.enabled,
        managed_by="api",
        execute_trades=data.execute_trades,
        dry_run_wallet=data.dry_run_wallet,
    )
    _problems(spec, ctx)
    try:
        revision = await create_spec(await ctx.bots.kv(), spec)
    except BotExists:
        raise ApiError(409, "conflict", f"bot id {bot_id!r} is taken", field="id") from None
    _changed(ctx)
    await ctx.audit.record(principal.actor(), "bot.create", f"bot:{spec.id}", user=user, after=spec)
    return Bot(id=spec.id, spec=spec, revision=revision, status=None)


@get("/", security=SECURED, summary="List bots")
async def list_bots(
    ctx: Ctx,
    principal: Caller,
    user: Annotated[
        str | None, Parameter(description="only this user's bots (admins)", max_length=64)
    ] = None,
) -> list[Bot]:
    """The caller's bots (admins: everyone's, or ``user``'s), by id, with live statuses."""
    specs = await ctx.bots.all()
    chosen = [
        (spec, revision)
        for spec, revision in specs.values()
        if principal.may_see(spec.user) and (user is None or spec.user == user)
    ]
    statuses = await ctx.statuses.all() if chosen else {}
    out = []
    for spec, revision in sorted(chosen, key=lambda item: item[0].id):
        status = statuses.get(spec.id)
        if status is not None and status.user != spec.user:
            status = None
        out.append(Bot(id=spec.id, spec=spec, revision=revision, status=status))
    return out


@get("/{bot_id:str}", security=SECURED, summary="One bot")
async def get_bot(ctx: Ctx, principal: Caller, bot_id: BotIdPath) -> Bot:
    """One bot with its revision and live status; 404 if it is not the caller's."""
    spec, revision = await visible_bot(ctx, principal, bot_id)
    return Bot(id=spec.id, spec=spec, revision=revision, status=await _status(ctx, spec))


@put("/{bot_id:str}", status_code=HTTP_200_OK, security=SECURED, summary="Change a bot")
async def update_bot(
    ctx: Ctx,
    principal: Caller,
    request: Request[Any, Any, Any],
    bot_id: BotIdPath,
    data: JSONBody[BotUpdate],
) -> Bot:
    """Replace a bot's params and/or enabled (module docstring)."""
    before, current_revision = await visible_bot(ctx, principal, bot_id)
    _editable(before)
    revision = _if_match(request, data.revision)
    after = msgspec.structs.replace(
        before,
        params=normalize_params(data.params) if data.params is not None else before.params,
        enabled=before.enabled if data.enabled is None else data.enabled,
    )
    _problems(after, ctx)
    try:
        new_revision = await update_spec(
            await ctx.bots.kv(), after, current_revision if revision is None else revision
        )
    except BotNotFound:
        raise not_found("bot", bot_id) from None
    except (BotChanged, BotManagedElsewhere) as exc:
        raise ApiError(409, "conflict", f"{exc}; read it again", field="revision") from None
    _changed(ctx)
    await ctx.audit.record(
        principal.actor(),
        "bot.update",
        f"bot:{bot_id}",
        user=before.user,
        before=before,
        after=after,
    )
    return Bot(id=after.id, spec=after, revision=new_revision, status=await _status(ctx, after))


@delete("/{bot_id:str}", status_code=HTTP_204_NO_CONTENT, security=SECURED, summary="Delete a bot")
async def delete_bot(
    ctx: Ctx, principal: Caller, request: Request[Any, Any, Any], bot_id: BotIdPath
) -> None:
    """Delete a bot (its host stops it); ``If-Match`` makes it conditional."""
    before, _ = await visible_bot(ctx, principal, bot_id)
    _editable(before)
    try:
        await delete_spec(await ctx.bots.kv(), bot_id, _if_match(request, None))
    except BotNotFound:
        raise not_found("bot", bot_id) from None
    except BotChanged as exc:
        raise ApiError(409, "conflict", f"{exc}; read it again", field="If-Match") from None
    _changed(ctx)
    await ctx.audit.record(
        principal.actor(), "bot.delete", f"bot:{bot_id}", user=before.user, before=before
    )


async def _command(
    ctx: GatewayContext, principal: Principal, bot_id: str, verb: str, mode: StartMode = "resume"
) -> CommandResult:
    spec, _ = await visible_bot(ctx, principal, bot_id)
    command = BotCommand(bot=spec.id, mode=mode, actor=principal.actor())
    try:
        reply = await send_command(ctx.nc, verb, command)
    except ControlError as exc:
        status = 503 if exc.error == "no_host" else 409
        raise ApiError(status, exc.error, exc.message) from None
    finally:
        ctx.statuses.changed()
    return CommandResult(
        bot=spec.id,
        command=verb,
        ok=reply.ok,
        message=reply.message,
        status=reply.status,
        host=reply.host,
    )


@post("/{bot_id:str}/start", status_code=HTTP_200_OK, security=SECURED, summary="Start a bot")
async def start_bot(
    ctx: Ctx, principal: Caller, bot_id: BotIdPath, data: JSONBody[StartRequest | None] = None
) -> CommandResult:
    """Start a stopped bot, resuming its state or ``fresh``."""
    return await _command(ctx, principal, bot_id, "start", data.mode if data else "resume")


@post("/{bot_id:str}/pause", status_code=HTTP_200_OK, security=SECURED, summary="Pause a bot")
async def pause_bot(ctx: Ctx, principal: Caller, bot_id: BotIdPath) -> CommandResult:
    """Stop placing new orders; keep the open ones."""
    return await _command(ctx, principal, bot_id, "pause")


@post("/{bot_id:str}/resume", status_code=HTTP_200_OK, security=SECURED, summary="Resume a bot")
async def resume_bot(ctx: Ctx, principal: Caller, bot_id: BotIdPath) -> CommandResult:
    """Trade again after a pause or stop."""
    return await _command(ctx, principal, bot_id, "resume")


@post("/{bot_id:str}/stop", status_code=HTTP_200_OK, security=SECURED, summary="Stop a bot")
async def stop_bot(ctx: Ctx, principal: Caller, bot_id: BotIdPath) -> CommandResult:
    """Stop; cancel its open orders if its ``cancel_on_exit`` says so."""
    return await _command(ctx, principal, bot_id, "stop")


@post(
    "/{bot_id:str}/average",
    status_code=HTTP_200_OK,
    security=SECURED,
    summary="Set a bot's average entry price",
)
async def set_bot_average(
    ctx: Ctx,
    principal: Caller,
    bot_id: BotIdPath,
    data: JSONBody[AverageRequest | None] = None,
) -> CommandResult:
    """Set the bot's average entry price by hand; the ledger journals the correction."""
    spec, _ = await visible_bot(ctx, principal, bot_id)  # 404 before anything else
    price = data.price if data is not None else None
    if price is None:
        raise invalid("price", "required")
    if not price.is_finite() or price <= 0:
        raise invalid("price", f"must be > 0 (got {price})")
    command = BotSetAverage(bot=spec.id, price=price, actor=principal.actor())
    try:
        reply = await set_average(ctx.nc, command)
    except ControlError as exc:
        status = 503 if exc.error == "no_host" else 409
        raise ApiError(status, exc.error, exc.message) from None
    finally:
        ctx.statuses.changed()
    return CommandResult(
        bot=spec.id,
        command="set-average",
        ok=reply.ok,
        message=reply.message,
        status=reply.status,
        host=reply.host,
    )


@post("/{bot_id:str}/flatten", status_code=HTTP_200_OK, security=SECURED, summary="Flatten a bot")
async def flatten_bot(ctx: Ctx, principal: Caller, bot_id: BotIdPath) -> CommandResult:
    """Force exit: cancel its open orders, close its position at market, then stop it
    (docs/strategies.md, "Force exit")."""
    return await _command(ctx, principal, bot_id, "flatten")


@get("/{bot_id:str}/dry-run", security=SECURED, summary="What a dry-run bot did")
async def dry_run_log(
    ctx: Ctx,
    principal: Caller,
    bot_id: BotIdPath,
    limit: Annotated[int, Parameter(description="the last N records", ge=1, le=10_000)] = 100,
) -> list[DryRunRecord]:
    """The last ``limit`` records of a dry-run bot (``execute_trades: false``), oldest
    first: each intent it emitted (never sent to its account) and each answer of its
    simulated venue (stream ``DRYRUN``); empty for a bot that never ran dry. 404 if it
    is not the caller's."""
    spec, _ = await visible_bot(ctx, principal, bot_id)
    return await dry_run_records(ctx.js, spec.user, spec.id, limit)


bots_router = Router(
    path="/api/v1/bots",
    route_handlers=[
        create_bot,
        list_bots,
        get_bot,
        update_bot,
        delete_bot,
        start_bot,
        pause_bot,
        resume_bot,
        stop_bot,
        set_bot_average,
        flatten_bot,
        dry_run_log,
    ],
    tags=["bots"],
)

__all__ = [
    "AverageRequest",
    "Bot",
    "BotCreate",
    "BotUpdate",
    "CommandResult",
    "bots_router",
    "visible_bot",
]
