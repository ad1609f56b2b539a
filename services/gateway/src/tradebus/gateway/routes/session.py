"""Signing in and out: ``/api/v1/auth/login``, ``/refresh``, ``/logout``, and ``/api/v1/me``.

* ``POST /api/v1/auth/login`` ``{"user": ..., "password": ...}`` answers an
  access token (a JWT, ``expires_in`` seconds) and a refresh token. Wrong
  name and wrong password get the same 401. After
  ``login_max_failures`` failures within ``login_window_seconds`` for one user
  name or from one address, further attempts get 429 with ``Retry-After``.
* ``POST /api/v1/auth/refresh`` ``{"refresh_token": ...}`` spends the token
  and answers a new pair (rotation). A spent token presented again revokes
  that whole sign-in (it was copied).
* ``POST /api/v1/auth/logout`` ``{"refresh_token": ..., "everywhere": false}``
  revokes that sign-in, or every sign-in of the caller. Access tokens already
  issued stay valid until they expire (minutes).
* ``GET /api/v1/me``: who the token belongs to.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from tradebus.common.ids import UserId
from tradebus.gateway.auth import SECURED, unauthorized
from tradebus.gateway.context import Caller, Ctx, GatewayContext
from tradebus.gateway.errors import ApiError
from tradebus.gateway.security import (
    MAX_PASSWORD_CHARS,
    new_family,
    new_refresh_token,
    refresh_token_hash,
)
from tradebus.ledger.users import Role

log = logging.getLogger(__name__)

NS = 1_000_000_000


class LoginRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Credentials: a user id and their password."""

    user: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PASSWORD_CHARS)]


class RefreshRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A refresh token to spend."""

    refresh_token: str


class LogoutRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The sign-in to end (by its refresh token), or all of the caller's (``everywhere``)."""

    refresh_token: str | None = None
    everywhere: bool = False


class Me(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in user as the API shows them."""

    id: UserId
    role: Role


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    """What signing in or refreshing answers. ``expires_in``: seconds the access token is
    valid; ``refresh_expires_in``: seconds the refresh token is."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user: Me


class LoggedOut(msgspec.Struct, frozen=True, kw_only=True):
    """How many refresh tokens were revoked."""

    revoked: int


async def issue_tokens(
    ctx: GatewayContext, user: UserId, role: Role, family: str | None = None
) -> TokenPair:
    """A new access token and refresh token for ``user``; the refresh token belongs to the
    sign-in ``family`` (a new sign-in when None)."""
    family = family or new_family()
    now = ctx.clock.now_ns()
    lifetime = ctx.settings.refresh_token_seconds
    token, token_hash = new_refresh_token()
    await ctx.sessions.add(token_hash, user, family, now, now + lifetime * NS)
    return TokenPair(
        access_token=ctx.tokens.issue(user, role),
        token_type="bearer",
        expires_in=ctx.tokens.lifetime_seconds,
        refresh_token=token,
        refresh_expires_in=lifetime,
        user=Me(id=user, role=role),
    )


def _count(ctx: GatewayContext, result: str) -> None:
    """Count a sign-in attempt by ``result`` (``ok``, ``refused``, ``throttled``)."""
    if ctx.metrics is not None:
        ctx.metrics.sign_ins.labels(result).inc()


def _address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


@post("/login", status_code=HTTP_200_OK, summary="Sign in")
async def login(
    request: Request[Any, Any, Any], ctx: Ctx, data: JSONBody[LoginRequest]
) -> TokenPair:
    """Check a user's password and start a sign-in (module docstring)."""
    keys = (f"user:{data.user.lower()}", f"addr:{_address(request)}")
    wait = ctx.throttle.retry_after(*keys)
    if wait > 0:
        _count(ctx, "throttled")
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed sign-ins; try again in {int(wait) + 1} s",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    user = await ctx.users.get(data.user)
    ok = await ctx.passwords.verify(user.password_hash if user else None, data.password)
    if not ok or user is None or not user.active:
        ctx.throttle.failed(*keys)
        _count(ctx, "refused")
        log.info("sign-in refused", extra={"user": data.user, "address": _address(request)})
        raise unauthorized("wrong user or password")
    ctx.throttle.succeeded(keys[0])
    _count(ctx, "ok")
    pair = await issue_tokens(ctx, user.id, user.role)
    await ctx.audit.record(
        str(user.id),
        "session.login",
        f"user:{user.id}",
        user=user.id,
        details={"address": _address(request)},
    )
    return pair


@post("/refresh", status_code=HTTP_200_OK, summary="Exchange a refresh token for new tokens")
async def refresh(ctx: Ctx, data: JSONBody[RefreshRequest]) -> TokenPair:
    """Spend a refresh token and issue the next pair of its sign-in (module docstring)."""
    outcome = await ctx.sessions.spend(refresh_token_hash(data.refresh_token), ctx.clock.now_ns())
    if outcome.reused:
        log.warning("a spent refresh token was presented again; its sign-in is revoked")
    if outcome.user is None or outcome.family is None:
        raise unauthorized("refresh token invalid, expired or revoked: sign in again")
    user = await ctx.users.get(outcome.user)
    if user is None or not user.active:
        raise unauthorized("this account is disabled or gone")
    return await issue_tokens(ctx, user.id, user.role, outcome.family)


@post("/logout", status_code=HTTP_200_OK, security=SECURED, summary="Sign out")
async def logout(ctx: Ctx, principal: Caller, data: JSONBody[LogoutRequest]) -> LoggedOut:
    """Revoke one sign-in (by its refresh token) or every sign-in of the caller."""
    now = ctx.clock.now_ns()
    if data.everywhere:
        revoked = await ctx.sessions.revoke_all(principal.user, now)
    elif data.refresh_token:
        hashed = refresh_token_hash(data.refresh_token)
        revoked = int(await ctx.sessions.revoke_family_of(hashed, principal.user, now))
    else:
        raise ApiError(
            400, "invalid_request", "give refresh_token, or everywhere: true", field="refresh_token"
        )
    await ctx.audit.record(
        principal.actor(),
        "session.logout",
        f"user:{principal.user}",
        user=principal.user,
        details={"everywhere": data.everywhere, "revoked": revoked},
    )
    return LoggedOut(revoked=revoked)


@get("/me", security=SECURED, summary="Who am I")
async def me(principal: Caller) -> Me:
    """The caller's user id and role."""
    return Me(id=principal.user, role=principal.role)


auth_router = Router(path="/api/v1/auth", route_handlers=[login, refresh, logout], tags=["auth"])
me_router = Router(path="/api/v1", route_handlers=[me], tags=["auth"])
