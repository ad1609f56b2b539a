"""People: admins create, list, change and disable users; everyone changes their own
password and gets their NATS credentials.

Admins only (403 for anyone else):

* ``POST /api/v1/users`` ``{"id", "password", "role"}``: a new user (the id is
  a subject token: their name on the bus, ``intent.<id>.>``). The password is
  stored as an argon2id hash only. With NATS accounts configured, the user's
  own NATS account is registered at once (when that fails the user is still
  created: ``GET /api/v1/me/nats-credentials`` registers it later).
* ``GET /api/v1/users``, ``GET /api/v1/users/{id}``: users as :class:`UserView`
  (never a password hash).
* ``PATCH /api/v1/users/{id}`` ``{"role"?, "disabled"?}``: change the role,
  disable (every sign-in revoked at once, their NATS account disabled) or
  enable again. The last active admin can be neither demoted nor disabled
  (409): tradebus always keeps someone who can administer it.

Everyone:

* ``PUT /api/v1/me/password`` ``{"current_password", "new_password"}``: the
  current password is checked (failures count against the sign-in throttle,
  429 beyond it); every sign-in of the user is revoked, and the answer is a
  fresh token pair, so the caller stays signed in and every other device is
  signed out.
* ``GET /api/v1/me/nats-credentials[?days=30]``: the text of a NATS ``.creds``
  file for the caller's own NATS account, valid ``days`` (1 to 365), for
  ``nats --creds``: their ``intent.<id>.>`` and ``exec.evt.<id>.>`` only. 503
  when the gateway manages no NATS accounts. The gateway keeps no copy.

Every change is audited (``user.create``, ``user.update``, ``user.password``,
``user.nats_credentials``) with the user's view before and after; never a
password or a credential.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import msgspec
from litestar import Response, Router, get, patch, post, put
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from tradebus.common.ids import UserId
from tradebus.common.subjects import TOKEN_PATTERN
from tradebus.gateway.auth import SECURED, require_admin
from tradebus.gateway.context import Caller, Ctx, GatewayContext
from tradebus.gateway.errors import ApiError, invalid, not_found
from tradebus.gateway.params import UserIdPath
from tradebus.gateway.routes.session import TokenPair, issue_tokens
from tradebus.gateway.security import MAX_PASSWORD_CHARS, PasswordRejected, check_new_password
from tradebus.ledger.users import Role, UserExists, UserRow

log = logging.getLogger(__name__)

UserIdText = Annotated[str, msgspec.Meta(pattern=TOKEN_PATTERN.pattern)]
Password = Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD_CHARS)]
DAY_SECONDS = 24 * 3600
DEFAULT_CREDENTIAL_DAYS = 30
MAX_CREDENTIAL_DAYS = 365

_admins = asyncio.Lock()
"""Serializes role and disable changes in this process, so two admins demoting each other
at once cannot leave no admin (one gateway replica; see docs/design.md)."""


class UserCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new user: ``id`` (a subject token, 1-64 of ``A-Z a-z 0-9 _ -``), their first
    ``password`` (10 to 256 characters) and ``role``."""

    id: UserIdText
    password: Password
    role: Role = "user"


class UserPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to change of a user: ``role``, and/or ``disabled`` (true disables, false enables
    again). Fields left out stay as they are."""

    role: Role | None = None
    disabled: bool | None = None


class PasswordChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The caller's current password and the new one (10 to 256 characters)."""

    current_password: Password
    new_password: Password


class UserView(msgspec.Struct, frozen=True, kw_only=True):
    """A user as the API shows them (never their password hash).

    ``nats_account``: the public key of their own NATS account, once
    registered; ``created_by``: who created them; times in ns since the epoch,
    ``disabled_ns`` None while active.
    """

    id: UserId
    role: Role
    disabled: bool
    nats_account: str | None
    created_by: str
    created_ns: int
    updated_ns: int
    disabled_ns: int | None


def view(row: UserRow) -> UserView:
    """The API's view of a ``users`` row."""
    return UserView(
        id=row.id,
        role=row.role,
        disabled=not row.active,
        nats_account=row.nats_account,
        created_by=row.created_by,
        created_ns=row.created_ns,
        updated_ns=row.updated_ns,
        disabled_ns=row.disabled_ns,
    )


def _audit_view(row: UserRow | None) -> dict[str, object] | None:
    """What the audit log keeps of a user: role, disabled, NATS account (no hash)."""
    if row is None:
        return None
    return {"id": row.id, "role": row.role, "disabled": not row.active, "nats": row.nats_account}


def _people_unavailable() -> ApiError:
    return ApiError(
        503,
        "unavailable",
        "this gateway manages no NATS accounts (TRADEBUS_NATS_SYS_CREDS and the signing keys"
        " are not configured); ask the operator for NATS credentials",
    )


async def _register_nats(ctx: GatewayContext, user: UserId) -> str | None:
    """Register ``user``'s NATS account and store its key; None (logged) if it failed."""
    if ctx.people is None:
        return None
    try:
        key = await ctx.people.register(user)
    except Exception as exc:
        log.warning("NATS account not registered", extra={"user": user, "error": repr(exc)})
        return None
    await ctx.users.set_nats_account(user, key, ctx.clock.now_ns())
    return key


@post("/users", status_code=HTTP_201_CREATED, guards=[require_admin], security=SECURED)
async def create_user(ctx: Ctx, principal: Caller, data: JSONBody[UserCreate]) -> UserView:
    """Create a user (admins; module docstring). 409 if the id is taken; 400 naming
    ``password`` if it breaks the rules."""
    try:
        check_new_password(data.password)
    except PasswordRejected as exc:
        raise invalid("password", str(exc)) from None
    hashed = await ctx.passwords.hash(data.password)
    try:
        row = await ctx.users.create(
            UserId(data.id), data.role, hashed, principal.actor(), ctx.clock.now_ns()
        )
    except UserExists:
        raise ApiError(409, "conflict", f"user {data.id!r} exists", field="id") from None
    if await _register_nats(ctx, row.id) is not None:
        row = await ctx.users.get(row.id) or row
    await ctx.audit.record(
        principal.actor(), "user.create", f"user:{row.id}", user=row.id, after=_audit_view(row)
    )
    return view(row)


@get("/users", guards=[require_admin], security=SECURED)
async def list_users(ctx: Ctx) -> list[UserView]:
    """Every user, by id (admins)."""
    return [view(row) for row in await ctx.users.list()]


@get("/users/{user_id:str}", guards=[require_admin], security=SECURED)
async def get_user(ctx: Ctx, user_id: UserIdPath) -> UserView:
    """One user (admins); 404 if there is none."""
    row = await ctx.users.get(user_id)
    if row is None:
        raise not_found("user", user_id)
    return view(row)


@patch("/users/{user_id:str}", guards=[require_admin], security=SECURED)
async def update_user(
    ctx: Ctx, principal: Caller, user_id: UserIdPath, data: JSONBody[UserPatch]
) -> UserView:
    """Change a user's role or disable/enable them (admins; module docstring).

    Raises 404 for no such user, 409 for the last active admin, 503 when their
    NATS account cannot be disabled (nothing is changed then).
    """
    async with _admins:
        before = await ctx.users.get(user_id)
        if before is None:
            raise not_found("user", user_id)
        demoted = data.role == "user" and before.role == "admin"
        disabling = data.disabled is True and before.active
        if (
            before.role == "admin"
            and before.active
            and (demoted or disabling)
            and await ctx.users.count_admins() <= 1
        ):
            raise ApiError(
                409,
                "conflict",
                f"{user_id!r} is the last active admin: make another admin first",
                field="role" if demoted else "disabled",
            )
        now = ctx.clock.now_ns()
        if data.disabled is not None and data.disabled == before.active:
            if ctx.people is not None and before.nats_account:
                try:
                    if data.disabled:
                        await ctx.people.disable(user_id, before.nats_account)
                    else:
                        await ctx.people.register(user_id)
                except Exception as exc:
                    log.warning(
                        "NATS account not changed", extra={"user": user_id, "error": repr(exc)}
                    )
                    raise ApiError(
                        503,
                        "unavailable",
                        "the user's NATS account could not be changed; nothing was changed,"
                        " try again",
                    ) from None
            await ctx.users.set_disabled(before.id, data.disabled, now)
        if data.role is not None and data.role != before.role:
            await ctx.users.set_role(before.id, data.role, now)
        after = await ctx.users.get(user_id) or before
    if _audit_view(after) != _audit_view(before):
        await ctx.audit.record(
            principal.actor(),
            "user.update",
            f"user:{user_id}",
            user=before.id,
            before=_audit_view(before),
            after=_audit_view(after),
        )
    return view(after)


@put("/me/password", status_code=HTTP_200_OK, security=SECURED)
async def change_password(ctx: Ctx, principal: Caller, data: JSONBody[PasswordChange]) -> TokenPair:
    """Change the caller's password (module docstring): every sign-in is revoked and a new
    token pair answered. 400 naming ``current_password`` if it is wrong (429 after too many
    tries) or ``new_password`` if it breaks the rules."""
    key = f"user:{principal.user.lower()}"
    wait = ctx.throttle.retry_after(key)
    if wait > 0:
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many wrong passwords; try again in {int(wait) + 1} s",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    row = await ctx.users.get(principal.user)
    if row is None or not await ctx.passwords.verify(row.password_hash, data.current_password):
        ctx.throttle.failed(key)
        raise invalid("current_password", "wrong password")
    try:
        check_new_password(data.new_password)
    except PasswordRejected as exc:
        raise invalid("new_password", str(exc)) from None
    now = ctx.clock.now_ns()
    await ctx.users.set_password(principal.user, await ctx.passwords.hash(data.new_password), now)
    revoked = await ctx.sessions.revoke_all(principal.user, now)
    await ctx.audit.record(
        principal.actor(),
        "user.password",
        f"user:{principal.user}",
        user=principal.user,
        details={"sign_ins_revoked": revoked},
    )
    return await issue_tokens(ctx, principal.user, row.role)


@get("/me/nats-credentials", security=SECURED, media_type="text/plain")
async def nats_credentials(
    ctx: Ctx,
    principal: Caller,
    days: Annotated[int, Parameter(ge=1, le=MAX_CREDENTIAL_DAYS)] = DEFAULT_CREDENTIAL_DAYS,
) -> Response[str]:
    """The text of a ``.creds`` file for the caller's NATS account (module docstring)."""
    if ctx.people is None:
        raise _people_unavailable()
    row = await ctx.users.get(principal.user)
    account = row.nats_account if row else None
    if account is None:
        account = await _register_nats(ctx, principal.user)
        if account is None:
            raise ApiError(
                503, "unavailable", "your NATS account could not be registered; try again"
            )
    try:
        creds = ctx.people.credentials(principal.user, account, days * DAY_SECONDS)
    except Exception as exc:
        log.warning(
            "NATS credentials not issued", extra={"user": principal.user, "error": repr(exc)}
        )
        raise ApiError(503, "unavailable", "NATS credentials could not be issued") from None
    await ctx.audit.record(
        principal.actor(),
        "user.nats_credentials",
        f"user:{principal.user}",
        user=principal.user,
        details={"days": days, "nats_account": account},
    )
    return Response(
        creds,
        media_type="text/plain",
        headers={
            "Content-Disposition": f'attachment; filename="{principal.user}.creds"',
            "Cache-Control": "no-store",
        },
    )


users_router = Router(
    path="/api/v1",
    route_handlers=[
        create_user,
        list_users,
        get_user,
        update_user,
        change_password,
        nats_credentials,
    ],
    tags=["users"],
)
